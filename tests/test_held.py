"""Changes the gate holds for a human: its own configuration, and code no voter could read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CLEAN_DIFF, validate_report, write_diff

from pytest_swarmgate.core.decision import broken
from pytest_swarmgate.core.diff import diff_sha256, parse_sections
from pytest_swarmgate.core.held import ci_files, held_changes, workflow_path
from pytest_swarmgate.core.model import Held, NotReviewed, Section, SectionResult, Vote
from pytest_swarmgate.core.texts import PatchTexts, Unknown
from pytest_swarmgate.exitcodes import REVIEW_INCOMPLETE


def file_diff(path: str, *changed: str, new: bool = False, context: str = "[pytest]") -> str:
    """A one-hunk diff of `path` adding `changed` lines (after one context line unless new)."""
    head = f"diff --git a/{path} b/{path}\n"
    head += "new file mode 100644\n--- /dev/null\n" if new else f"--- a/{path}\n"
    body = "".join(f"+{line}\n" for line in changed)
    start, shown = ("0,0", "") if new else ("1,1", f" {context}\n")
    return head + f"+++ b/{path}\n@@ -{start} +1,{len(changed) + (0 if new else 1)} @@\n{shown}{body}"


def held(text: str) -> list[str]:
    return [h.line() for h in held_changes(*parse_sections(text))]


def test_dedicated_config_files_are_held_whatever_the_change() -> None:
    assert held(file_diff("tests/conftest.py", "import os", new=True)) == [
        "tests/conftest.py: pytest runs this code in the gate's process"
    ]
    for path in (".gitattributes", "pytest.ini", "pytest.toml", ".gitlab-ci.yml", ".github/workflows/ci.yml"):
        assert held(file_diff(path, "x = 1", new=True)), path
    # An empty new pytest.ini silently replaces the pyproject settings: held too.
    empty = "diff --git a/pytest.ini b/pytest.ini\nnew file mode 100644\nindex 0000000..e69de29\n"
    assert held(empty) == ["pytest.ini: adds pytest.ini: pytest may choose it as its configuration"]


def test_renames_and_binary_entries_are_held_by_either_path() -> None:
    rename = (
        "diff --git a/conftest.py b/helpers.py\nsimilarity index 100%\nrename from conftest.py\nrename to helpers.py\n"
    )
    assert held(rename) == ["helpers.py: pytest runs this code in the gate's process"]
    binary = (
        "diff --git a/pytest.ini b/pytest.ini\nindex 1111111..2222222 100644\n"
        "Binary files a/pytest.ini and b/pytest.ini differ\n"
    )
    assert held(binary) == [
        "pytest.ini: changes pytest.ini, and without its full text the gate cannot show pytest reads the same"
    ]
    script = binary.replace("pytest.ini", "deploy.sh")
    assert held(script) == ["deploy.sh: a binary file that is not media: no voter could read it, and it may run"]
    assert held(binary.replace("pytest.ini", "_speedups.so"))
    assert held(binary.replace("pytest.ini", "logo.png")) == []
    assert held(rename.replace("conftest.py", "Conftest.py")), "case-insensitive file systems load it too"


def test_shared_ini_files_are_held_only_for_pytest_settings() -> None:
    assert held(file_diff("setup.cfg", "addopts = -p no:swarmgate", context="[tool:pytest]"))
    assert held(file_diff("setup.cfg", "addopts = -p no:swarmgate", context="[metadata]")) == [], (
        "pytest never reads it"
    )
    # A line inside the pytest section counts even without a telling key (a list item).
    # Without the full text a TOML line cannot be placed (a multi-line string may hold it): held.
    assert held(file_diff("pyproject.toml", '    "pytest>=9",', context="[project.optional-dependencies]"))
    # ini has no multi-line construct but indented continuations: the hunk shows each line's place.
    assert held(file_diff("tox.ini", "addopts = -p no:swarmgate", context="[ PyTest ]"))
    assert held(file_diff("tox.ini", "  --swarm-exclude=**", context="addopts = -ra")), "section not shown"
    assert held(file_diff("setup.cfg", "version = 2", context="[metadata]")) == []
    entry_points = (
        "diff --git a/setup.cfg b/setup.cfg\n--- a/setup.cfg\n+++ b/setup.cfg\n"
        "@@ -1,2 +1,3 @@\n [options.entry_points]\n {}\n+    b = b:b\n"
    )
    assert held(entry_points.format("bandit.plugins =")) == []
    assert held(entry_points.format("pytest11 ="))
    assert held(file_diff("setup.cfg", "# pytest11 = x", context="[options.entry_points]")) == [], "a comment"
    assert held(CLEAN_DIFF) == []


def run(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    path = write_diff(pytester.path, diff)
    return pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "-p", "no:cacheprovider", *args)


def test_excluding_everything_from_the_ini_does_not_pass_the_gate(pytester, stub) -> None:
    """The attack: the PR's own ini excludes every file, so nothing is reviewed."""
    pytester.makeini("[pytest]\nswarm_exclude = *\n")
    diff = CLEAN_DIFF + file_diff("tox.ini", "swarm_exclude = *")
    result = run(pytester, diff, "--swarm-json=r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*held for a human: tox.ini: *",
            f"*--swarm-allow-held={diff_sha256(diff)} *",
            "*gate: HELD*",
        ]
    )
    report = json.loads((pytester.path / "r.json").read_text())
    validate_report(report)
    assert (report["gate"]["outcome"], report["gate"]["passed"]) == ("HELD", False)


def test_a_human_releases_held_changes_for_one_exact_diff_typed_by_hand(pytester, stub) -> None:
    diff = CLEAN_DIFF + file_diff("tests/conftest.py", "import os", new=True)
    sha = diff_sha256(diff)
    released = run(pytester, diff, f"--swarm-allow-held={sha}", "--swarm-json=r.json")
    assert released.ret == 0
    released.stdout.fnmatch_lines(["swarmgate: released by hand: tests/conftest.py*"])
    assert json.loads((pytester.path / "r.json").read_text())["run"]["released"] == [
        {"path": "tests/conftest.py", "kind": "steering", "reason": "pytest runs this code in the gate's process"}
    ]
    wrong = run(pytester, diff, "--swarm-allow-held=0123456789ab")
    assert wrong.ret == pytest.ExitCode.USAGE_ERROR
    pytester.makeini(f"[pytest]\naddopts = --swarm-allow-held={sha}\n")
    assert run(pytester, diff).ret == pytest.ExitCode.TESTS_FAILED, "addopts is the PR's and cannot release"


def test_workers_hold_the_same_changes(pytester, stub) -> None:
    pytest.importorskip("xdist")
    diff = CLEAN_DIFF + file_diff(".github/workflows/ci.yml", "run: pytest", new=True)
    result = run(pytester, diff, "-n", "2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*held for a human: .github/workflows/ci.yml*"])


def test_held_changes_reach_every_ci_output(pytester, stub, monkeypatch) -> None:
    from conftest import official_sarif_validator

    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    diff = CLEAN_DIFF + file_diff("tests/conftest.py", "import os", new=True)
    result = run(pytester, diff, "--swarm-sarif=r.sarif")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["::error file=tests/conftest.py,title=swarm review%3A held for a human::*--swarm-allow-held=*"]
    )
    sarif = json.loads((pytester.path / "r.sarif").read_text())
    official_sarif_validator().validate(sarif)
    [held] = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "swarmgate/held"]
    assert held["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "tests/conftest.py"
    text = summary.read_text()
    assert "HELD for a human" in text and "### Held for a human" in text


def test_a_review_that_never_ran_is_never_a_pass(pytester, stub, script) -> None:
    from conftest import unsafe_finding

    from pytest_swarmgate.testing import Reply

    script.on(section="*", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding()]))
    pytester.makeconftest(
        "import pytest\n\ndef pytest_collection_finish(session):\n    pytest.exit('bye', returncode=0)\n"
    )
    result = run(pytester, CLEAN_DIFF)
    assert result.ret == REVIEW_INCOMPLETE  # not 1: nothing was judged, the review did not complete
    result.stdout.fnmatch_lines(["*the review did not run in this session, so the gate fails*"])


@pytest.mark.parametrize(
    ("addopts", "named"),
    [
        ("--co", "--collect-only"),
        ("-h", "--help"),  # before: pytest printed its help and exited 0, the review never decided
        ("--help", "--help"),
        ("--version", "--version"),
        ("--version --version", "--version"),  # before: pytest printed its plugins and exited 0
        ("--fixtures", "--fixtures"),
        ("--markers", "--markers"),
    ],
)
def test_info_modes_from_addopts_are_refused(pytester, stub, addopts, named) -> None:
    pytester.makeini(f"[pytest]\naddopts = {addopts}\n")
    result = run(pytester, CLEAN_DIFF)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: swarmgate: {named} came from addopts, not the command line*"])


def test_help_typed_by_the_job_is_help(pytester, stub, monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "--help")
    pytester.makeini("[pytest]\nswarm_diff = missing.patch\n")  # not read: help sets up no review
    result = run(pytester, CLEAN_DIFF)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--swarm-review*"])
    assert "came from addopts" not in result.stderr.str()


def test_the_jobs_pytest_addopts_counts_as_typed(pytester, stub, monkeypatch) -> None:
    path = write_diff(pytester.path, CLEAN_DIFF)
    monkeypatch.setenv("GITHUB_BASE_REF", "main")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"--swarm-review --swarm-diff={path}")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*diff: {path}, 1 section*"])


def test_allow_empty_cannot_come_from_the_ini_file(pytester, stub) -> None:
    pytester.makeini("[pytest]\naddopts = --swarm-allow-empty\n")
    assert run(pytester, "").ret == pytest.ExitCode.USAGE_ERROR


# --- Judged on what pytest reads: full old and new text, parsed as pytest parses it ---------


class Texts:
    """Old and new text of each path, as git or the patched tree would give them."""

    def __init__(self, old: dict[str, str | None], new: dict[str, str | None]) -> None:
        self.before, self.after = old, new

    def old(self, path: str) -> str | None:
        return self.before.get(path)

    def new(self, path: str) -> str | None:
        return self.after.get(path)


def held_edit(path: str, old: str | None, new: str | None, **kw: object) -> list[str]:
    """The held lines for one file edited from `old` to `new` (the diff text itself is not read)."""
    change = "added" if old is None else "deleted" if new is None else "modified"
    section = Section(id=path, path=path, old_path=None, change=change, text="")  # type: ignore[arg-type]
    return [h.line() for h in held_changes([section], [], texts=Texts({path: old}, {path: new}), **kw)]  # type: ignore[arg-type]


BASE_TOML = '[project]\nname = "x"\ndependencies = ["a>=1"]\n\n[tool.pytest.ini_options]\nmarkers = ["slow"]\n'


@pytest.mark.parametrize(
    "added",
    [
        '[tool."pytest".ini_options]\n"\\u0073warm_exclude" = ["*"]',  # an escaped key, a quoted table
        "[tool.pytest.ini_options]\n'swarm_exclude' = ['*']",  # a literal-string key
        '[tool."pytest".ini_options.x]\ny = 1',  # a quoted table name
        "[ tool . pytest ]\naddopts = '-p no:swarmgate'",  # pytest 9's native table, spaced
        "[tool]\npytest.ini_options.swarm_exclude = ['*']",  # dotted keys under [tool]
        "[tool.x]\n[tool]\npytest = {ini_options = {addopts = '-x'}}",  # an inline table
        '[project.entry-points."pytest11"]\nquiet = "app.quiet"',
        "[project.entry-points]\npytest11 = {quiet = 'app.quiet'}",
        "[Tool.Pytest.ini_options]\naddopts = '-x'",  # letter case (pytest ignores it; held anyway)
    ],
)
def test_toml_spellings_of_what_pytest_reads_are_held(added: str) -> None:
    plain = BASE_TOML.split("\n\n")[0] + "\n"
    [line] = held_edit("pyproject.toml", plain, plain + added + "\n")
    assert line.startswith("pyproject.toml: changes what pytest or the gate reads: "), line


def test_toml_changes_pytest_does_not_read_are_not_held() -> None:
    bump = BASE_TOML.replace('"a>=1"', '"a>=1.2",\n    "b"')
    assert held_edit("pyproject.toml", BASE_TOML, bump) == []
    assert held_edit("pyproject.toml", BASE_TOML, "# reformatted\n" + BASE_TOML.replace(" = ", "=")) == []
    assert (
        held_edit("pyproject.toml", BASE_TOML, BASE_TOML + '[project.entry-points."bandit.plugins"]\nb = "b"\n') == []
    )
    # Same values written another way: pytest reads the same.
    respelled = BASE_TOML.replace("[tool.pytest.ini_options]\nmarkers", '[tool]\n"pytest".ini_options.markers')
    assert held_edit("pyproject.toml", BASE_TOML, respelled) == []


def test_config_files_that_do_not_parse_or_appear_are_held() -> None:
    assert "does not parse" in held_edit("pyproject.toml", BASE_TOML, BASE_TOML + "[tool.pytest\n")[0]
    assert "does not parse" in held_edit("tox.ini", "[pytest]\n", "[pytest]\n[pytest]\n")[0]
    assert held_edit("pytest.toml", None, "") == [
        "pytest.toml: adds pytest.toml: pytest may choose it as its configuration"
    ]
    assert held_edit("sub/pyproject.toml", None, "[project]\n"), "a new rootdir candidate"
    assert held_edit("tox.ini", None, "[testenv]\ncommands = pytest\n") == [], (
        "pytest does not read tox.ini without [pytest]"
    )


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("tox.ini", "[tox]\n", "[tox]\n\n[ pytest ]\naddopts = -p no:swarmgate\n"),
        ("tox.ini", "[pytest]\naddopts = -ra\n", "[pytest]\naddopts = -ra\n    -p no:swarmgate\n"),
        ("tox.ini", "[PYTEST]\n", "[PYTEST]\nSWARM_EXCLUDE = *\n"),
        ("setup.cfg", "[metadata]\n", "[metadata]\n[tool:pytest]\nswarm_exclude = *\n"),
        ("setup.cfg", "[options.entry_points]\n", "[options.entry_points]\nPytest11 =\n    q = app.q\n"),
        ("pytest.ini", "[pytest]\n", "[pytest]\n\n[other]\nx = 1\n"),
        ("setup.cfg", "[options]\nzip_safe = 0\n", "[options]\nzip_safe = 0\nentry_points = file: ep.cfg\n"),
        # iniconfig splits lines as str.splitlines does: U+2028 starts a line of its own.
        ("setup.cfg", "[tool:pytest]\naddopts = -ra\n", "[tool:pytest]\naddopts = -ra\u2028swarm_exclude = *\n"),
    ],
)
def test_ini_spellings_of_what_pytest_reads_are_held(path: str, old: str, new: str) -> None:
    assert held_edit(path, old, new), (path, new)


def test_ini_changes_pytest_does_not_read_are_not_held() -> None:
    cfg = "[options.entry_points]\nbandit.plugins =\n    a = bandit.a:a\n\n[tool:pytest]\naddopts = -ra\n"
    assert held_edit("setup.cfg", cfg, cfg.replace("    a = bandit.a:a\n", "    a = bandit.a:a\n    b = b:b\n")) == []
    assert held_edit("setup.cfg", cfg, "# comment\n" + cfg) == []
    tox = "[testenv]\ndeps = pytest\ncommands = pytest\n\n[pytest]\naddopts = -ra\n"
    assert held_edit("tox.ini", tox, tox.replace("deps = pytest", "deps = pytest>=9")) == []


def test_steering_files_are_held_by_old_or_new_path_and_ci_by_what_runs_the_gate() -> None:
    assert held(file_diff("src/quiet.pth", "import app", new=True)) == [
        "src/quiet.pth: a .pth file: Python runs its import lines at start-up"
    ]
    for path in (
        "sitecustomize.py",
        "lib/usercustomize.py",
        "CODEOWNERS",
        "docs/CODEOWNERS",
        ".github/CODEOWNERS",
        "x.dist-info/entry_points.txt",
        ".gitlab/ci/test.yml",
        ".buildkite/pipeline.yml",
        "Jenkinsfile",
    ):
        assert held(file_diff(path, "x", new=True)), path
    assert held(file_diff("docs/entry_points.txt", "x", new=True)) == []
    assert held(file_diff(".pre-commit-config.yaml", "repos: []", new=True)) == [], "linters, judged by the panel"
    rename = (
        "diff --git a/.github/CODEOWNERS b/CODEOWNERS.old\nsimilarity index 100%\n"
        "rename from .github/CODEOWNERS\nrename to CODEOWNERS.old\n"
    )
    assert held(rename) == ["CODEOWNERS.old: CODEOWNERS decides who must approve changes to the gate"]
    other = file_diff(".github/workflows/lint.yml", "run: ruff", new=True)
    assert held(other), "CI file unknown: every CI file is held"
    assert held_changes(*parse_sections(other), ci_files=(".github/workflows/tests.yml",)) == []
    ci = file_diff(".github/workflows/tests.yml", "run: pytest", new=True)
    assert held_changes(*parse_sections(ci), ci_files=(".github/workflows/tests.yml",))


def test_the_ci_files_that_run_the_gate_from_the_environment() -> None:
    assert ci_files({"GITHUB_ACTIONS": "true", "GITHUB_WORKFLOW_REF": "o/r/.github/workflows/t.yml@refs/x"}) == (
        ".github/workflows/t.yml",
    )
    assert ci_files({"GITLAB_CI": "true", "CI_CONFIG_PATH": "ci/main.yml"}) == (
        ".gitlab-ci.yml",
        ".gitlab/ci/",
        "ci/main.yml",
    )
    assert ci_files({"GITLAB_CI": "true", "CI_CONFIG_PATH": "ci.yml@group/other"}) == (".gitlab-ci.yml", ".gitlab/ci/")
    assert ci_files({}) is None, "not known: every CI file is held"
    gitlab = ci_files({"GITLAB_CI": "true"})
    assert held_changes(*parse_sections(file_diff(".github/workflows/t.yml", "x", new=True)), ci_files=gitlab) == []
    assert held_changes(*parse_sections(file_diff(".gitlab/ci/t.yml", "x", new=True)), ci_files=gitlab)


def test_the_workflow_path_from_github_workflow_ref() -> None:
    assert workflow_path("octo/app/.github/workflows/ci.yml@refs/pull/7/merge") == ".github/workflows/ci.yml"
    assert workflow_path("octo/app/.github/workflows/a@b.yml@refs/heads/main") == ".github/workflows/a@b.yml"
    assert workflow_path(None) is None
    assert workflow_path("octo/app/ci.yml@refs/heads/main") is None


def test_deleted_binaries_are_never_held_for_being_binary() -> None:
    deleted = NotReviewed("fixtures/old.so", "binary file", kind="binary", change="deleted")
    assert held_changes([], [deleted]) == []
    assert held_changes([], [NotReviewed("fixtures/new.so", "binary file", kind="binary")])
    # A config file nobody reads the text of is still held, so a human can release it.
    assert held_changes([], [NotReviewed("setup.cfg", "file mode 100644 -> 100755")])


def test_the_patch_applies_to_the_tree_forwards_or_backwards(tmp_path: Path) -> None:
    """The base-checkout recipe (tree = old) and the PR checkout (tree = new) both give full texts."""
    old = "[tool:pytest]\naddopts = -ra\n\n[metadata]\nname = x\nversion = 1\n"
    new = old.replace("version = 1", "version = 2")
    diff = (
        "diff --git a/setup.cfg b/setup.cfg\n--- a/setup.cfg\n+++ b/setup.cfg\n"
        "@@ -4,3 +4,3 @@\n [metadata]\n name = x\n-version = 1\n+version = 2\n"
    )
    sections, _ = parse_sections(diff)
    for tree in (old, new):
        (tmp_path / "setup.cfg").write_text(tree)
        texts = PatchTexts(tmp_path, sections, {"setup.cfg": "modified"})
        assert (texts.old("setup.cfg"), texts.new("setup.cfg")) == (old, new)
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\n")
    with pytest.raises(Unknown):
        PatchTexts(tmp_path, sections, {"setup.cfg": "modified"}).old("setup.cfg")
    for path in ("../setup.cfg", "/etc/passwd", "a/../setup.cfg"):
        with pytest.raises(Unknown):
            PatchTexts(tmp_path, [], {path: "modified"}).old(path)


def section(path: str) -> Section:
    return Section(id=path, path=path, old_path=None, change="modified", text="")


def test_the_promise_in_one_function() -> None:
    safe = SectionResult(section("a.py"), (Vote("a.py", "v1", "m", "SAFE"),), "SAFE", 1, 1)
    unsafe = SectionResult(section("b.py"), (Vote("b.py", "v1", "m", "UNSAFE"),), "UNSAFE", 1, 1)
    media = NotReviewed("logo.png", "media file: binary content is not reviewed", kind="media")
    assert broken([safe], [media], []) == []
    assert broken([safe, unsafe], [], []) == ["b.py: UNSAFE"]
    assert broken([safe], [], [Held("x.py", "config", "held")]) == ["held for a human: x.py: held"]
    assert broken([], [NotReviewed("docs/a.md", "excluded by exclude glob 'docs/**'", kind="excluded")], []) == []
    unread = NotReviewed("lib.so", "binary file", kind="binary")
    assert broken([], [unread], []) == ["lib.so: not reviewed (binary file), and only media may stay unreviewed"]
    assert broken([], [unread], [], released=[Held("lib.so", "unreadable", "a binary file that is not media")]) == []
    assert broken([], [NotReviewed("big.py", "over --swarm-max-section-chars", kind="oversized")], []) != []
    # The kind decides, never the words: a reason that reads like media changes nothing.
    assert broken([], [NotReviewed("tool.so", media.reason, kind="binary")], []) != []
    assert broken([], [NotReviewed("old.so", "binary file", kind="binary", change="deleted")], []) == [], (
        "deleting unreadable bytes adds nothing"
    )


def test_a_binary_is_media_only_by_every_path() -> None:
    from pytest_swarmgate.core.decision import may_stay_unreviewed

    def unread(old: str, new: str) -> NotReviewed:
        moved = f"similarity index 90%\nrename from {old}\nrename to {new}\n" if old != new else ""
        binary = f"index 1111111..2222222 100644\nBinary files a/{old} and b/{new} differ\n"
        diff = f"diff --git a/{old} b/{new}\n{moved}{binary}"
        [entry] = parse_sections(diff)[1]
        return entry

    assert may_stay_unreviewed(unread("logo.png", "logo.png"))
    assert may_stay_unreviewed(unread("old/logo.jpg", "logo.png"))
    # A library renamed to an image name and changed stays code nobody read.
    assert not may_stay_unreviewed(unread("tool.so", "logo.png"))
    assert not may_stay_unreviewed(unread("tool.so", "tool.so"))


def test_a_binary_renamed_to_a_media_name_is_held() -> None:
    """Before: held by neither path check; `tool.so` -> `logo.png` with new bytes passed unread."""
    text = (
        "diff --git a/tool.so b/logo.png\nsimilarity index 50%\nrename from tool.so\nrename to logo.png\n"
        "index 1111111..2222222 100644\nBinary files a/tool.so and b/logo.png differ\n"
    )
    sections, not_reviewed = parse_sections(text)
    assert [(n.path, n.old_path, n.reason) for n in not_reviewed] == [("logo.png", "tool.so", "binary file")]
    [held] = held_changes(sections, not_reviewed)
    assert held.kind == "unreadable" and held.line().startswith("logo.png: a binary file that is not media")


def test_start_up_modules_setup_py_and_lfs_pointers_are_held_only_where_they_can_steer() -> None:
    """Issue 16: the package forms of the start-up modules, `_distutils_hack`, a setup.py that can
    register a pytest plugin, and an LFS pointer standing for a file no voter sees."""
    for path in ("sitecustomize/__init__.py", "src/usercustomize/x.py", "_distutils_hack/override.py",
                 "sitecustomize.cpython-312-x86_64-linux-gnu.so", "SiteCustomize.py"):  # fmt: skip
        assert held(file_diff(path, "import os", new=True)), path
    for path in ("docs/sitecustomize.md", "app/site_customize.py", "distutils_hack.py"):
        assert held(file_diff(path, "x = 1", new=True)) == [], path
    plain = "from setuptools import setup\nsetup(name='x')\n"
    plugin = "from setuptools import setup\nsetup(name='x', entry_points={'pytest11': ['q = q']})\n"
    assert held_edit("setup.py", plain, plain.replace("'x'", "'y'")) == [], "an ordinary setup.py edit is judged"
    assert held_edit("setup.py", plain, plugin) == [
        "setup.py: setup.py can register a pytest plugin (a pytest11 entry point) when the package is installed"
    ]
    # Without the full text (a bare patch), what the rest of the file declares is unknown: held.
    assert held(file_diff("setup.py", "name='y'", context="setup(")) == [
        "setup.py: setup.py can register a pytest plugin (a pytest11 entry point) when the package is installed"
        " (its full text is not known here)"
    ]
    pointer = ("version https://git-lfs.github.com/spec/v1", "oid sha256:" + "ab" * 32, "size 9")
    assert held(file_diff("tools/run.bin", *pointer, new=True)) == [
        "tools/run.bin: a Git LFS pointer: the file it stands for is not in the diff, so no voter could read it"
    ]
    assert held(file_diff("art/logo.png", *pointer, new=True)) == [], "a pointer to media stands for media"
    assert held(file_diff(".gitmodules", "\tignore = all", context='[submodule "lib"]')) == [
        ".gitmodules: submodule settings decide what the diff shows"
    ]


TROJAN = 'if access_level != "user\u202e \u2066// check if admin\u2069 \u2066":\n'


def test_characters_a_reader_cannot_see_reach_voters_escaped_and_hold_the_section(pytester, stub, monkeypatch) -> None:
    """Issue 16: bidirectional and invisible characters (Trojan Source) in added lines were sent raw
    and unannounced; now every voter sees `<U+202E>` with a note, the section is held until a human
    releases this exact diff, and the step summary turns no file name into a link."""
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    diff = file_diff("app/auth.py", TROJAN.rstrip("\n"), new=True) + file_diff(
        "www.login-github.example/verify.py", "x = 1", new=True
    )
    result = run(pytester, diff, "--swarm-json=r.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*held for a human: app/auth.py: added lines hold characters a reader cannot see (U+202E, U+2066, U+2069)*"]
    )
    prompts = {c.voter: json.dumps(c.body) for c in stub.calls(section="app/auth.py")}
    assert len(prompts) == 5
    for prompt in prompts.values():
        assert "<U+202E>" in prompt and "\\u202e" not in prompt and "note: the section holds characters" in prompt
    report = json.loads((pytester.path / "r.json").read_text())
    assert {"path": "app/auth.py", "kind": "hidden"} in [
        {k: h[k] for k in ("path", "kind")} for h in report["run"]["held"]
    ]
    text = summary.read_text()
    assert "www&#46;login-github" in text and "www.login-github" not in text
    released = run(pytester, diff, f"--swarm-allow-held={diff_sha256(diff)}")
    assert released.ret == 0, released.stdout.str()


def test_hidden_characters_are_named_in_every_channel() -> None:
    from pytest_swarmgate.core.text import hidden_characters, one_line, show_hidden

    assert hidden_characters(TROJAN) == ["U+202E", "U+2066", "U+2069"]
    assert show_hidden("a\u200bb\U000e0041") == "a<U+200B>b<U+E0041>"
    assert one_line("x\u3164y") == "x<U+3164>y", "a printable filler is still shown"
    assert held(file_diff("ok.py", "name = 'caf\u00e9 \u4e2d\u6587'", new=True)) == [], (
        "ordinary non-ASCII is not hidden"
    )


def test_hidden_text_and_lfs_pointers_are_held_only_on_their_own_added_lines() -> None:
    """The held check skips a text that holds neither anywhere; where one does, it reads the lines as before."""
    pointer = "version https://git-lfs.github.com/spec/v1"
    assert held(file_diff("tools/run.bin", "x = 1", context=pointer)) == [], "a pointer in a context line"
    assert held(file_diff("tools/run.bin", f"x = 1  # {pointer}")) == [], "a pointer inside a line"
    assert held(file_diff("tools/run.bin", f"x = 1\u2028+{pointer}")) != [], "a line split where str.splitlines splits"
    assert held(file_diff("app.py", "x = 1", context="# caf\u00e9 \u202e")) == [], "hidden text in a context line"
    assert held(file_diff("app.py", "x = 'caf\u00e9'")) == [], "ordinary non-ASCII text"
    assert held(file_diff("app.py", "x = 'caf\u00e9\u200b'")) == ["app.py: added lines hold characters a reader cannot"
        " see (U+200B): bidirectional or invisible text can make code run differently from how it reads"]  # fmt: skip
