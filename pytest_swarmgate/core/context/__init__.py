"""What a section's voters see beside its diff: the context block, built once per run before any call.

A reviewer who sees only a hunk cannot tell where a parameter comes from or what the helper it
calls does. So each section carries a context (`model.Context`), within a per-section budget of
characters, made of parts that each name their source (path, line range, old or new side, where
the text was read):

- `scope`: each hunk grown to its enclosing definitions (headers, decorators, signatures, and the
  innermost function whole) in the new file, and the headers around removed lines in the old;
- `file`: the whole new file when it fits (modes `file` and `repo`), or the content of a renamed
  or copied file that shows no line (every mode);
- `map`: every changed file of the pull request, its change, +/- counts and the definitions it changes;
- `definition` and `caller` (mode `repo`, Python): what the changed lines call, import or inherit
  from, and where the PR's other files call what this section changes.

Texts come only from a `texts.FileSource` (git objects, or the base checkout with the hunks
applied in memory); nothing is executed or imported, and a file that does not parse leaves its
section with diff-only context and a note. The context is untrusted data like the diff: it goes
inside the section's fence (see core/prompt.py). The pull request's title and description are
never context.

- `scopes`: definitions per language (Python's `ast`, tree-sitter for Go, JavaScript, TypeScript, C, Java
  and shell in `treesitter`; brace and indentation scans as fallbacks);
- `parts`: a file's text as read, numbered excerpts, offers to the budget;
- `prmap`: the map of the pull request;
- `repo`: definitions and callers for the `repo` mode;
- `build`: the builder that fills each section's budget in order.
"""

from __future__ import annotations

from .build import ContextBuilder, build_contexts

__all__ = ["ContextBuilder", "build_contexts"]
