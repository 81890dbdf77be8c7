"""The calibration's K curve as a PNG: recall and FPR against K, with the target and the recommended K.

matplotlib is optional (the `plot` extra); without it nothing is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.calibration import CalibrationReport
from ..core.text import plural


def plot_k_curve(report: CalibrationReport, path: str | Path) -> bool:
    """Write a PNG of recall and FPR against K; False when matplotlib is not installed."""
    try:
        # Import the package first: a submodule already in sys.modules would otherwise
        # bypass a missing or blocked top-level package.
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    # A bare Figure on an Agg canvas: no pyplot, so no global backend switch or figure registry.
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ks = [r.k for r in report.rows]
    # Recall wide and solid with large open circles, FPR thin and dashed with small squares on
    # top: where the two coincide, both stay visible (the legend says so).
    curves: list[tuple[str, list[float | None], dict[str, Any]]] = [
        (
            "recall",
            [r.recall for r in report.rows],
            {"linestyle": "-", "linewidth": 4, "marker": "o", "markersize": 11, "markerfacecolor": "none", "zorder": 2},
        ),
        (
            "FPR (dashed, drawn on top)",
            [r.fpr for r in report.rows],
            {"linestyle": "--", "linewidth": 1.5, "marker": "s", "markersize": 5, "zorder": 3},
        ),
    ]
    for label, values, style in curves:
        points = [(k, v) for k, v in zip(ks, values, strict=True) if v is not None]
        if points:
            ax.plot([k for k, _ in points], [v for _, v in points], label=label, **style)
    ax.axhline(report.target_fpr, color="grey", linestyle=":", label=f"target FPR {report.target_fpr:.1%}")
    if report.recommended_k is not None:
        ax.axvline(report.recommended_k, color="green", linestyle="--", label=f"recommended K={report.recommended_k}")
    ax.set_xticks(ks)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("threshold K (SAFE votes needed)")
    ax.set_ylabel("rate")
    ax.set_title(f"Gate recall and FPR by K (N={report.n}, {plural(report.fixtures, 'fixture')})")
    ax.legend(loc="best", title="where lines coincide, FPR lies on recall")
    fig.savefig(str(path), format="png", dpi=100)
    return True
