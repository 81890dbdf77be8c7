"""The calibration report as aligned plain-text tables and as GitHub markdown tables.

The rows are built once (`_blocks`) and formatted twice, so the two channels never differ in
content. The caller escapes for its channel: the terminal text goes through `escape.terminal_block`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..core.agreement import Agreement
from ..core.calibration import CalibrationReport
from ..core.gate import Gate
from ..core.text import percent, plural


def render_text(report: CalibrationReport, *, brief: bool = False) -> str:
    """The report as aligned plain-text tables; brief: the K table, recommendation, agreement and cost."""
    return _render(_blocks(report, brief=brief), _text_table, lambda line: line)


def render_markdown(report: CalibrationReport) -> str:
    """The report as GitHub markdown tables."""
    return _render(_blocks(report), _markdown_table, lambda line: line + "\n")


@dataclass(frozen=True)
class _Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    left: int = 0  # how many leading columns are text (left-aligned); the rest are numbers


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def _blocks(r: CalibrationReport, *, brief: bool = False) -> list[_Table | str]:
    """The report's content, in order, as tables and lines of plain text (brief: no per-voter,
    per-category or pairwise table)."""
    policy = Gate(r.n, r.category_k, r.on_inconclusive).describe_inconclusive()
    blocks: list[_Table | str] = [
        _Table(
            f"Threshold K (N={r.n}; {plural(r.fixtures, 'fixture')}: {r.bad} UNSAFE, {r.good} SAFE; {policy}; "
            "rates over the fixtures scored at each K)",
            ("K", "scored", "not scored", "TP", "FN", "FP", "TN", "recall", "FPR", "precision", "score"),
            tuple(
                (
                    str(x.k),
                    str(x.scored),
                    str(x.not_scored),
                    str(x.tp),
                    str(x.fn),
                    str(x.fp),
                    str(x.tn),
                    percent(x.recall),
                    percent(x.fpr),
                    percent(x.precision),
                    _num(x.score),
                )
                for x in r.rows
            ),
        ),
        r.recommendation,
        _Table(
            "Voters (fixtures where the voter had an ERROR are excluded from its rates)",
            ("voter", "model", "TP", "FN", "FP", "TN", "TPR", "FPR", "errors", "excluded"),
            tuple(
                (
                    v.voter_id,
                    v.model,
                    str(v.tp),
                    str(v.fn),
                    str(v.fp),
                    str(v.tn),
                    percent(v.tpr),
                    percent(v.fpr),
                    str(v.errors),
                    str(v.excluded),
                )
                for v in r.voters
            ),
            left=2,
        ),
        _Table(
            f"Categories at K={r.category_k} (scored fixtures)",
            ("category", "UNSAFE", "caught", "recall", "SAFE", "FP", "FPR", "not scored"),
            tuple(
                (
                    c.category,
                    str(c.bad),
                    str(c.tp),
                    percent(c.recall),
                    str(c.good),
                    str(c.fp),
                    percent(c.fpr),
                    str(c.not_scored),
                )
                for c in r.categories
            ),
            left=1,
        ),
    ]
    if r.not_scored:
        blocks.append(
            _Table(
                f"Not scored at K={r.category_k} ({len(r.not_scored)} of {r.fixtures} fixtures: "
                "the panel did not judge them)",
                ("fixture", "label", "reason"),
                tuple((x.fixture_id, x.expected, x.reason) for x in r.not_scored),
                left=3,
            )
        )
    blocks.extend(_agreement_blocks(r.agreement))
    if brief:
        blocks = [b for b in blocks if not isinstance(b, _Table) or b.title.startswith("Threshold K")]
    la, cost = r.line_accuracy, r.cost
    blocks.append(
        f"line accuracy: {percent(la.accuracy)} ({la.hits}/{la.total} flagging voters pointed within "
        f"{la.tolerance} lines of the known flaw)"
    )
    usd = "unknown" if cost.usd is None else f"${cost.usd:.4f}"
    u = cost.usage
    blocks.append(
        f"tokens: {u.input_tokens} input, {u.output_tokens} output, {u.cache_write_tokens} cache write, "
        f"{u.cache_read_tokens} cache read; cost {usd} ({cost.note})"
    )
    return blocks


def _agreement_blocks(a: Agreement) -> list[_Table | str]:
    """The agreement table, the summary line and the warning, if any."""
    if not a.pairs:
        return ["agreement: needs at least two voters"]
    blocks: list[_Table | str] = [
        _Table(
            "Agreement between voters (per-fixture flags)",
            ("voter", "voter", "agreement", "fixtures"),
            tuple((p.a, p.b, percent(p.agreement), str(p.fixtures)) for p in a.pairs),
            left=2,
        ),
        (
            f"mean pairwise agreement {percent(a.mean)}; within-label Fleiss' kappa "
            f"{'undefined' if a.kappa is None else f'{a.kappa:.3f}'} over {plural(a.kappa_fixtures, 'fixture')}"
        ),
    ]
    if a.warning:
        blocks.append(f"WARNING: {a.warning}")
    return blocks


def _render(blocks: Iterable[_Table | str], table: Callable[[_Table], str], line: Callable[[str], str]) -> str:
    """Join blocks, formatting tables and lines with the given functions."""
    return "\n".join(table(b) if isinstance(b, _Table) else line(b) for b in blocks).rstrip("\n") + "\n"


def _text_table(t: _Table) -> str:
    """Title, then columns padded to their widest cell; text left, numbers right."""
    widths = [max(len(c) for c in col) for col in zip(t.headers, *t.rows, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < t.left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([t.title, fmt(t.headers), *(fmt(row) for row in t.rows), ""])


def _markdown_table(t: _Table) -> str:
    """A heading and a GitHub markdown table; numbers right-aligned."""

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("---" if i < t.left else "---:" for i in range(len(t.headers))) + "|"
    return "\n".join([f"### {t.title}", "", fmt(t.headers), rule, *(fmt(row) for row in t.rows), ""])
