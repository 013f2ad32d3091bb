"""The nightly report's plots: matplotlib (Agg backend) figures as inline SVG text.

Each function takes plain values gathered by :mod:`reelrec.report_html` (nights are ``YYYY-MM-DD``
strings in order) and returns one ``<svg>`` element, or ``None`` when there is nothing to draw, so
the page can say what is missing instead. SVG keeps the report one small self-contained file with
no JavaScript: text stays text (``svg.fonttype = none``) and element ids are salted with a constant,
so the same facts give the same bytes.

matplotlib is imported inside :func:`svg_of` and the plotting functions; the module itself stays
cheap to import.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

# Readable on a laptop screen at 100 % zoom and small as SVG.
FIGSIZE = (9.0, 3.6)
STYLE = {
    "svg.fonttype": "none",
    "svg.hashsalt": "reelrec",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
RETRIEVAL_METRICS = ("recall@100", "ndcg@10")
"""The two retrieval metrics plotted over the nights, one panel each (every method a line)."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: the report is built by an Airflow task or a shell
    import matplotlib.pyplot as plt

    return plt


def svg_of(fig: Any) -> str:
    """``fig`` as an ``<svg>`` element (no XML prolog, so it can sit inside HTML); closes ``fig``."""
    plt = _pyplot()
    buffer = io.StringIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "reelrec"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _figure(ncols: int = 1, figsize: tuple[float, float] = FIGSIZE) -> tuple[Any, Any]:
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, ncols, figsize=figsize)
    return fig, axes


def _thousands(minor: bool = False) -> Any:
    """Tick labels as plain numbers with thousands separators (no ``6x10^0`` on a log axis)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    return NullFormatter() if minor else FuncFormatter(lambda value, _: f"{value:,.0f}")


def _night_labels(ax: Any, nights: Sequence[str]) -> None:
    ax.set_xticks(range(len(nights)), [n[5:] for n in nights], rotation=45 if len(nights) > 10 else 0)
    ax.set_xlim(-0.6, len(nights) - 0.4)


def retrieval_over_nights(
    nights: Sequence[str], retrieval: Mapping[str, Mapping[str, Mapping[str, float]]]
) -> str | None:
    """One panel per metric of :data:`RETRIEVAL_METRICS`: every model and baseline over the nights.

    Args:
        nights: the nights on the x axis, in order.
        retrieval: ``{night: {method: {metric: value}}}`` (``metrics.json``'s ``retrieval``).
    """
    methods = sorted({m for night in retrieval.values() for m in night})
    if not methods:
        return None
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, axes = _figure(ncols=len(RETRIEVAL_METRICS), figsize=(11.0, 4.2))
        for ax, metric in zip(axes, RETRIEVAL_METRICS, strict=True):
            for method in methods:
                xs = [i for i, n in enumerate(nights) if metric in retrieval.get(n, {}).get(method, {})]
                ys = [retrieval[nights[i]][method][metric] for i in xs]
                if xs:
                    wide = method in ("final", "ranker")  # the serving list: drawn bold
                    ax.plot(xs, ys, marker="o", markersize=3, linewidth=2.4 if wide else 1.2, label=method)
            ax.set_title(metric)
            _night_labels(ax, nights)
        axes[-1].legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        return svg_of(fig)


def stacked_bars(
    nights: Sequence[str], values: Mapping[str, Mapping[str, float]], ylabel: str, title: str
) -> str | None:
    """Stacked bars per night: ``values`` is ``{night: {part: value}}`` (tasks, quarantine reasons)."""
    parts = sorted({p for night in values.values() for p, v in night.items() if v})
    if not parts:
        return None
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, ax = _figure(figsize=(11.0, 4.2))
        bottom = [0.0] * len(nights)
        colours = plt.get_cmap("tab20").colors
        for i, part in enumerate(parts):
            heights = [float(values.get(n, {}).get(part) or 0.0) for n in nights]
            ax.bar(range(len(nights)), heights, bottom=bottom, label=part, color=colours[i % len(colours)])
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        _night_labels(ax, nights)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), ncols=1 if len(parts) <= 16 else 2)
        return svg_of(fig)


def rows_over_nights(nights: Sequence[str], rows: Mapping[str, Mapping[str, int]]) -> str | None:
    """Rows of each table's ``dt=D`` partition over the nights (log scale when events dwarf the rest)."""
    tables = sorted({t for night in rows.values() for t in night})
    if not tables:
        return None
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, ax = _figure(figsize=(11.0, 4.2))
        for table in tables:
            xs = [i for i, n in enumerate(nights) if rows.get(n, {}).get(table)]
            if xs:
                ax.plot(xs, [rows[nights[i]][table] for i in xs], marker="o", markersize=3, label=table)
        counts = [v for night in rows.values() for v in night.values() if v]
        if max(counts) >= 50 * min(counts):  # events dwarf the catalogs: a log axis keeps both readable
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(_thousands())
            ax.yaxis.set_minor_formatter(_thousands(minor=True))
        ax.set_ylabel("rows of dt=D")
        ax.set_title("rows per table")
        _night_labels(ax, nights)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
        return svg_of(fig)


def histogram(values: Sequence[float] | Any, xlabel: str, title: str, integer: bool = False) -> str | None:
    """A histogram of ``values`` (a sequence or numpy array; ``integer``: one bar per whole number
    when that makes at most 60 bars)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return None
    plt = _pyplot()
    with plt.rc_context(STYLE):
        fig, ax = _figure(figsize=(5.4, 3.4))
        low, high = float(values.min()), float(values.max())
        if integer and high - low < 60:
            bins: Any = [x - 0.5 for x in range(int(low), int(high) + 2)]
        else:
            bins = 40
        ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        ax.set_title(title)
        return svg_of(fig)
