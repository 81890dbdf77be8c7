"""Diff source and sectioning: read a unified diff, split it into sections to review.

Pure apart from reading the diff source (`source`: a file, stdin or `git diff`): no network,
no pytest. The diff is untrusted input written by whoever opened the pull request, so every
way it can be malformed ends in one clear `DiffError`, never a traceback, and no path in it
is ever used to touch the filesystem.

The parser is the package's own, not unidiff's: it reads git's extended headers, quoted and
unquoted names with spaces (`Plan b/notes.md`, where unidiff's greedy header match fails),
any prefixes (`a/` `b/`, none, custom, `diff -ruN` trees), and it counts hunk lines, so a
`---` line inside a hunk stays a removed line. In the order the text flows:

- `pieces`: the bytes decoded a file entry at a time (`DiffText`), so a wide character widens its own file's str only;
- `entries`: the lines read into file entries (headers, hunks); lines that would hide a change refused;
- `names`: each entry's two names told apart, and the prefixes in front of them;
- `files`: what each entry is (`FileDiff`: paths, change, a note on what its lines do not show);
- `sections`: the files filtered by the run's globs and cut into the sections the panel judges.

`parse_diff` reads the text (a str, or a `DiffText`) once; `sections_of` applies filters and the budget to the result as
often as the caller needs.
"""

from __future__ import annotations

from .entries import DiffError
from .files import MEDIA_EXTENSIONS, FileDiff, is_media, media_only, parse_diff
from .pieces import DiffText
from .sections import crowded_directories, glob_match, parse_sections, sections_of
from .source import DiffTooLarge, decode, diff_sha256, git_diff, git_diff_text, read_diff, read_diff_file, too_large

__all__ = [
    "MEDIA_EXTENSIONS",
    "DiffError",
    "DiffText",
    "DiffTooLarge",
    "FileDiff",
    "crowded_directories",
    "decode",
    "diff_sha256",
    "git_diff",
    "git_diff_text",
    "glob_match",
    "is_media",
    "media_only",
    "parse_diff",
    "parse_sections",
    "read_diff",
    "read_diff_file",
    "sections_of",
    "too_large",
]
