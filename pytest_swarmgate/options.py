"""Every option once: its flag, ini key, default and help text, shared by addoption and addini.

Precedence: marker > command line > environment (where one applies) > ini > default.
Standard library and pytest only: this module is imported on every pytest start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from .core.choices import (
    AGGREGATE_MODES,
    CACHE_TTLS,
    CONTEXT_MODES,
    EFFORTS,
    INCONCLUSIVE_POLICIES,
    PREFLIGHT_MODES,
    PREWARM_MODES,
)

DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_LENSES = "security,correctness,data-flow,adversarial,concurrency"


class Option:
    """One setting: `--swarm-<name>` on the command line and `swarm_<name>` in the ini file."""

    # A plain class, not a dataclass: this module is imported on every pytest start, and
    # generating dataclass methods costs more than the rest of the module.
    __slots__ = ("const", "convert", "default", "flag", "help", "ini_type", "metavar", "name")
    # ini_type None: command line only (a setting the pull request's ini file must not give).

    def __init__(
        self,
        name: str,
        help: str,
        default: Any = None,
        convert: Callable[[str], Any] = str,
        ini_type: str | None = "string",
        flag: bool = False,
        metavar: str | None = None,
        const: str | None = None,
    ) -> None:
        self.name, self.help, self.default, self.convert = name, help, default, convert
        self.ini_type, self.flag, self.metavar = ini_type, flag, metavar
        # The value of the bare option, when its value may be left out (`--swarm-calibrate`).
        self.const = const

    @property
    def dest(self) -> str:
        return "swarm_" + self.name.replace("-", "_")

    @property
    def cli(self) -> str:
        return "--swarm-" + self.name


def bool_value(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _number(text: str, kind: Callable[[str], Any], ok: Callable[[Any], bool], expected: str) -> Any:
    """`text` as an int or float that passes `ok`; else a ValueError that says what was expected."""
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise ValueError(f"expected {expected}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return int(_number(text, int, lambda v: v >= 1, "a whole number of at least 1"))


def _non_negative_int(text: str) -> int:
    return int(_number(text, int, lambda v: v >= 0, "a whole number of at least 0"))


def _positive_float(text: str) -> float:
    # A finite ceiling: "inf" would mean a CI job that can hang forever.
    return float(_number(text, float, lambda v: 0 < v < float("inf"), "a finite number above 0"))


def _fraction(text: str) -> float:
    return float(_number(text, float, lambda v: 0.0 <= v <= 1.0, "a number from 0 to 1"))


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(text: str) -> str:
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {text!r}")
        return text

    return convert


def split_list(text: str) -> list[str]:
    """A comma (or newline) separated list, blanks dropped."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


OPTIONS: tuple[Option, ...] = (
    Option(
        "review",
        "Review the diff with the swarm panel and fail the session on an UNSAFE section",
        False,
        bool_value,
        "bool",
        flag=True,
    ),
    Option(
        "only",
        "Run only the review (or calibration): collect none of the project's tests, import none of its modules "
        "(conftest.py files still load unless --noconftest)",
        False,
        bool_value,
        "bool",
        flag=True,
    ),
    Option("diff", "Diff to review: a patch file, or - for stdin (write --swarm-diff=PATH)", metavar="PATH"),
    Option("base", "Review `git diff BASE...HEAD` (default: origin/$GITHUB_BASE_REF in GitHub Actions)", metavar="REF"),
    Option("voters", "Panel size N", 5, _positive_int, metavar="N"),
    Option(
        "threshold",
        "SAFE votes needed for a SAFE outcome, 1 <= K <= N (default 4 of 5; ceil(0.8 N) for other N)",
        4,
        _positive_int,
        metavar="K",
    ),
    Option(
        "models",
        f"Comma list of models, cycled over the voters (default {DEFAULT_MODEL})",
        DEFAULT_MODEL,
        metavar="LIST",
    ),
    Option(
        "temperatures",
        "Comma list of temperatures 0.0-1.0, cycled over the voters; sent only where the endpoint accepts them",
        "",
        metavar="LIST",
    ),
    Option("effort", f"Comma list of efforts ({', '.join(EFFORTS)}), cycled over the voters", "", metavar="LIST"),
    # A lens per voter by default: five copies of one reviewer would vote without independence.
    Option(
        "lenses",
        "Comma list of review lenses, cycled over the voters (none for no lens)",
        DEFAULT_LENSES,
        metavar="LIST",
    ),
    Option(
        "panel",
        "Whole panel, one voter per line: MODEL [temperature=T] [effort=E] [lens=L] (ini only)",
        "",
        ini_type="linelist",
    ),
    Option(
        "on-inconclusive",
        "What an INCONCLUSIVE section does to the session: fail, warn or pass",
        "fail",
        _choice(INCONCLUSIVE_POLICIES),
        metavar="POLICY",
    ),
    Option("concurrency", "Calls in flight at once, over all sections and voters", 16, _positive_int, metavar="N"),
    Option(
        "timeout",
        "Seconds one vote may take, the SDK's retries included, before it is an ERROR vote",
        120.0,
        _positive_float,
        metavar="SECONDS",
    ),
    Option(
        "max-retries",
        "Retries the anthropic SDK makes on 5xx and connection errors (a 429 or 529 waits on the run's pacer instead)",
        2,
        _non_negative_int,
        metavar="N",
    ),
    Option(
        "deadline",
        "Seconds the whole review may take from its first call (the preflight's), rate-limit waits included; at the "
        "deadline the calls still running are cancelled and the review stops (exit 75)",
        1200.0,
        _positive_float,
        metavar="SECONDS",
    ),
    Option(
        "preflight",
        "Check the credentials, the endpoint and every model of the panel before the review (auto), with the "
        "cheapest call the endpoint answers: the model's record, the model list, a token count, a one-token "
        "message. Bare --swarm-preflight: only check, then stop (no review, no tests; typed by the job only). "
        "off: skip it, for an endpoint that answers none of these",
        "auto",
        _choice(PREFLIGHT_MODES),
        const="only",
        metavar="auto|off",
    ),
    Option("max-tokens", "Output token limit of one vote", 4096, _positive_int, metavar="N"),
    Option(
        "prewarm",
        "Write each large section into the prompt cache before its voters read it: auto (sections of 4000+ "
        "characters), on or off",
        "auto",
        _choice(PREWARM_MODES),
        metavar="MODE",
    ),
    Option(
        "cache-ttl",
        "Prompt cache lifetime of the policy: 5m, or 1h where the endpoint offers it (writes cost 2x input instead "
        "of 1.25x; reads 0.1x either way)",
        "5m",
        _choice(CACHE_TTLS),
        metavar="TTL",
    ),
    Option(
        "max-diff-bytes",
        "Largest diff the gate reads, in bytes (a memory ceiling): the gate holds about 3 times a diff in memory, "
        "so the default keeps a 7 GB CI runner safe; a larger diff is not read whole and not reviewed (exit 75)",
        200_000_000,
        _positive_int,
        metavar="BYTES",
    ),
    Option(
        "max-sections",
        "Most sections one review may send (a cost ceiling): a larger diff is not reviewed (exit 75)",
        200,
        _positive_int,
        metavar="N",
    ),
    Option(
        "section-budget",
        "Characters of diff in one section; a larger file is split along hunks",
        60_000,
        _positive_int,
        metavar="CHARS",
    ),
    Option(
        "context",
        "What each section's voters see beside its diff: off; scope (each hunk's enclosing definitions, a "
        "renamed file's content, the map of the pull request); file (also the whole file when it fits); repo (also "
        "the definitions the changed lines use and the callers in the PR's other files, Python)",
        "repo",
        _choice(CONTEXT_MODES),
        metavar="MODE",
    ),
    Option(
        "context-budget",
        "Characters of context per section; what does not fit is named in the prompt and the report",
        20_000,
        _positive_int,
        metavar="CHARS",
    ),
    Option(
        "max-section-chars",
        "Largest section sent to the panel (a cost ceiling): a larger one (a single hunk no split can cut) "
        "is held for a human, never sent",
        200_000,
        _positive_int,
        metavar="CHARS",
    ),
    Option(
        "max-input-tokens",
        "Most input tokens one review may send, estimated before any call at 1 token per 3 ASCII characters "
        "and per 2 bytes of other text of every call's prompt: a larger diff is not reviewed (exit 75)",
        2_000_000,
        _positive_int,
        metavar="N",
    ),
    Option("include", "Comma list of path globs to review (default: all)", "", metavar="GLOBS"),
    Option("exclude", "Comma list of path globs not to review", "", metavar="GLOBS"),
    Option(
        "cache-dir",
        "Vote cache directory (default: ~/.cache/pytest-swarmgate/votes, outside the checkout)",
        metavar="DIR",
    ),
    Option(
        "allow-empty",
        "Let an empty diff from a file or stdin pass as nothing to review (an empty git diff always may); command "
        "line only",
        False,
        bool_value,
        None,
        flag=True,
    ),
    Option("no-cache", "Do not read or write the vote cache", False, bool_value, "bool", flag=True),
    Option(
        "allow-held",
        "Release the changes held for a human (what steers the gate's run, unreadable code) for the one diff whose "
        "sha256 is SHA (64 hex digits, at least 32); command line only",
        None,
        str,
        None,
        metavar="SHA",
    ),
    Option(
        "aggregate",
        "One review for the author, synthesized from the panel's votes by one more call per section: for each "
        "section that fails the gate (blocked), also each one a voter dissents on (all), or none (off). It never "
        "changes an outcome",
        "blocked",
        _choice(AGGREGATE_MODES),
        metavar="MODE",
    ),
    Option("aggregator-model", "The model that writes the synthesis (default: the panel's first)", metavar="MODEL"),
    Option(
        "policy",
        "The team's own review guidance, appended to every voter's policy: a file of the base checkout (under "
        "--swarm-base, the merge base's); a pull request that changes it is held for a human",
        metavar="FILE",
    ),
    Option("json", "Write the full JSON report to PATH", metavar="PATH"),
    Option("sarif", "Write SARIF 2.1.0 to PATH", metavar="PATH"),
    Option("annotations-max", "Most GitHub annotations written in one run", 50, _non_negative_int, metavar="N"),
    Option(
        "calibrate", "Score the gate on a labeled corpus directory (default: the bundled one)", metavar="PATH", const=""
    ),
    Option(
        "calibration-report",
        "Write the calibration report to PATH.json and PATH.md (and PATH.png with matplotlib)",
        metavar="PATH",
    ),
    Option(
        "target-fpr", "False positive rate the recommended K must stay at or under", 0.05, _fraction, metavar="RATE"
    ),
    Option(
        "min-scored",
        "Share of the fixtures run that the panel must judge at some K before any K is recommended; below it the "
        "calibration fails",
        0.8,
        _fraction,
        metavar="RATE",
    ),
    Option(
        "batch",
        "Send calibration calls through the Message Batches API (half price, slower)",
        False,
        bool_value,
        "bool",
        flag=True,
    ),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def help_text(o: Option) -> str:
    """The help with its default, for `--help` and the ini listing alike."""
    if o.default in (None, "", False) or "default" in o.help:
        return o.help
    return f"{o.help} (default {o.default:g})" if isinstance(o.default, float) else f"{o.help} (default {o.default})"


def _ini_type(o: Option) -> str:
    """Numbers and lists typed, so pytest 9's native `[tool.pytest]` table takes 2 and ["a", "b"]."""
    if o.convert in (_positive_int, _non_negative_int):
        return "int"
    if o.convert in (_positive_float, _fraction):
        return "float"
    if o.metavar in ("LIST", "GLOBS"):
        # linelist, not args: a glob or a model name may hold a space.
        return "linelist"
    return o.ini_type or "string"


def _add_ini(parser: pytest.Parser, o: Option) -> None:
    try:
        parser.addini(o.dest, help_text(o), type=_ini_type(o), default=None)  # type: ignore[arg-type]
    except (AssertionError, ValueError):
        # A pytest without the "int"/"float" ini types: strings, converted by `get`.
        parser.addini(o.dest, help_text(o), type="string", default=None)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("swarmgate", "LLM review gate (pytest-swarmgate)")
    for o in OPTIONS:
        if o.name == "panel":
            pass  # a multi-line panel belongs in the ini file
        elif o.const is not None:
            group.addoption(
                o.cli, dest=o.dest, nargs="?", const=o.const, default=None, metavar=o.metavar, help=help_text(o)
            )
        elif o.flag:
            group.addoption(o.cli, dest=o.dest, action="store_true", default=None, help=help_text(o))
        else:
            group.addoption(o.cli, dest=o.dest, default=None, metavar=o.metavar, help=help_text(o))
        if o.ini_type is not None:
            _add_ini(parser, o)


def get(config: pytest.Config, name: str) -> Any:
    """The value of one option: command line, then ini, then default; bad values are UsageErrors."""
    o = BY_NAME[name]
    raw = getattr(config.option, o.dest, None)
    where = o.cli
    if raw is None:
        if o.ini_type is None:
            return o.default
        where = f"ini {o.dest}"
        try:
            raw = config.getini(o.dest)
        except (ValueError, TypeError, pytest.UsageError) as exc:
            # pytest checks typed ini values itself ("invalid literal for int()"): say it in our words.
            kind = {"int": "a whole number", "float": "a number"}.get(_ini_type(o))
            expected = f"expected {kind}, as {o.cli} takes" if kind else str(exc)
            raise pytest.UsageError(f"swarmgate: {where}: {expected}") from None
        if raw is None or raw == "" or raw == []:
            return o.default
    if isinstance(raw, (bool, list)) or o.convert is str:
        return raw
    try:
        return o.convert(str(raw))
    except ValueError as exc:
        raise pytest.UsageError(f"swarmgate: {where}: {exc}") from None


def early(config: pytest.Config, name: str) -> Any:
    """An option's value before pytest has parsed every option (in an early hook); a bad one gives the default.

    The bad value is reported later, by `get`, once the session starts.
    """
    o = BY_NAME[name]
    raw = getattr(config.known_args_namespace, o.dest, None) or config.getini(o.dest)
    try:
        return o.convert(str(raw)) if raw not in (None, "") else o.default
    except ValueError:
        return o.default


def literal_args(config: pytest.Config) -> list[str]:
    """The command line as the job gave it: PYTEST_ADDOPTS (the job's environment) then argv, not `addopts`."""
    import os
    import shlex

    return shlex.split(os.environ.get("PYTEST_ADDOPTS", "")) + list(config.invocation_params.args)


def typed_by_hand(config: pytest.Config, name: str) -> str | None:
    """The option's value as the job gave it ("" for a bare flag), else None.

    Not from `addopts`: the ini file is part of the pull request, and must not choose what
    the gate reviews or what it lets through. PYTEST_ADDOPTS is the job's, so it counts.
    """
    cli = BY_NAME[name].cli
    args = literal_args(config)
    found: str | None = None
    for i, arg in enumerate(args):
        if arg == cli:
            found = args[i + 1] if not BY_NAME[name].flag and i + 1 < len(args) else ""
        elif arg.startswith(cli + "="):
            found = arg[len(cli) + 1 :]
    return found


def preflight_mode(config: pytest.Config) -> str:
    """auto, off or only; "only" (check, then end the session with exit 0) only when the job typed it."""
    mode = str(get(config, "preflight"))
    if mode == "only" and typed_by_hand(config, "preflight") is None:
        raise pytest.UsageError(
            "swarmgate: swarm_preflight=only from the ini file or addopts would end the run after the preflight,"
            " unreviewed; only the job can ask for that (type --swarm-preflight in the CI step)"
        )
    return mode


def preflight_alone(config: pytest.Config) -> bool:
    """Whether the job typed a bare --swarm-preflight: check the set-up and stop, with or without --swarm-review."""
    return typed_by_hand(config, "preflight") is not None and get(config, "preflight") == "only"


def from_command_line(config: pytest.Config, name: str) -> bool:
    return getattr(config.option, BY_NAME[name].dest, None) is not None


# Every option that ends the session without running its items: pytest prints and exits 0.
INFO_MODES = {
    "help": ("--help", "-h"),
    "version": ("--version", "-V"),
    "collectonly": ("--collect-only", "--co"),
    "showfixtures": ("--fixtures",),
    "show_fixtures_per_test": ("--fixtures-per-test",),
    "markers": ("--markers",),
}


def info_mode(config: pytest.Config) -> bool:
    """A mode that runs no items (--help, --collect-only, ...): nothing to review, nothing to preflight."""
    return any(getattr(config.option, attr, False) for attr in INFO_MODES)


def refuse_untyped_info_modes(config: pytest.Config) -> None:
    """A mode that runs no review must be asked for in the job, not by the PR's `addopts`.

    Under --help pytest leaves the plugins' options unset, so "the review is asked for" is
    read from what the job typed and from the ini file, not from `config.option` alone.
    """
    if not (get(config, "review") or typed_by_hand(config, "review") is not None):
        return
    typed = literal_args(config)
    for attr, flags in INFO_MODES.items():
        if getattr(config.option, attr, False) and not any(a in flags for a in typed):
            raise pytest.UsageError(
                f"swarmgate: {flags[0]} came from addopts, not the command line: the gate does not skip its review "
                "for a setting the pull request can make"
            )
