"""One escaper per output channel, each for text that a pull request or a model wrote.

terminal (and any log a CI reads), Markdown (step summary, calibration Markdown), GitHub
workflow commands (message and property), SARIF message text, and a single collapsed line
for table cells and titles. Every other module escapes through these and nothing else.
"""

from __future__ import annotations

import re

from ..core.text import one_line, show_hidden

_WWW = re.compile(r"(?i)\b(www)\.")

__all__ = [
    "collapsed",
    "junit_text",
    "markdown",
    "markdown_code",
    "one_line",
    "sarif_text",
    "terminal",
    "visible",
    "workflow_data",
    "workflow_property",
]


def visible(text: str, keep: str = "") -> str:
    """Every control character but those in `keep` shown as its escape (ESC as `\\x1b`): text
    that cannot move a cursor, change a colour, set a window title (OSC) or ring a bell."""
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in show_hidden(text))


def terminal(text: str, limit: int | None = None) -> str:
    """Untrusted text for the terminal or a CI log: one line, control characters escaped.

    `::` and `##[` are broken up too: a CI log reader (GitHub Actions) takes a line that
    starts with `::` or holds `##[` as a command, and a file name must not be able to
    silence the gate's annotations (`::stop-commands::`) or fake one.
    """
    return one_line(text, limit).replace("::", ":\\:").replace("##[", "##\\[")


def terminal_block(line: str) -> str:
    """A report line escaped like `terminal`, its leading indent kept."""
    body = line.lstrip()
    return line[: len(line) - len(body)] + terminal(body)


def collapsed(text: str, limit: int | None = None) -> str:
    """Text on one line (any run of whitespace, newlines included, becomes a space), cut to `limit` chars."""
    text = one_line(" ".join(text.split()))
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def markdown(text: str, limit: int | None = None) -> str:
    """Untrusted text made safe for a Markdown table cell or list item: one line, no HTML, no links.

    Cut (by characters, before escaping, so an entity or escape is never split) to `limit`.
    """
    text = collapsed(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # GitHub turns `www.`, `scheme://` and `name@host` into links: an entity in the raw text breaks
    # the match and renders the same character, so a file name cannot become a link to click.
    text = _WWW.sub(r"\1&#46;", text).replace("://", "&#58;//").replace("@", "&#64;")
    return re.sub(r"([\\`*_\[\]|~])", r"\\\1", text)


def markdown_code(text: str, info: str = "") -> list[str]:
    """Untrusted text as a fenced Markdown code block (nothing in it renders): a fence longer than any run of
    backticks in it, so no line can close it early; control characters but tabs shown escaped."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *(visible(line, keep="\t") for line in text.splitlines()), fence]


def workflow_data(text: str) -> str:
    """Escape a workflow command's message, as @actions/core escapeData does.

    Other control characters are shown escaped too: the command is a line of the job's log,
    and ESC/BEL/OSC sequences there would drive whatever terminal shows it.
    """
    return visible(text, keep="\r\n").replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_property(text: str) -> str:
    """Escape a workflow command's property value, as @actions/core escapeProperty does."""
    return workflow_data(text).replace(":", "%3A").replace(",", "%2C")


def sarif_text(text: str) -> str:
    """Untrusted text escaped so it cannot form a SARIF embedded link; control characters but newlines shown escaped."""
    # SARIF 3.11.6: in plain-text messages `[text](n)` is an embedded link; escape the brackets.
    return re.sub(r"([\\\[\]])", r"\\\1", visible(text, keep="\n"))


def junit_text(text: str, limit: int | None = None) -> str:
    """Untrusted text for a JUnit property: one line, control characters escaped (XML 1.0 forbids most)."""
    return one_line(text, limit)
