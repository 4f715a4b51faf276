"""The performance plot (used by ``benchmarks/run.py --plot``)."""

# matplotlib's annotations leave **kwargs untyped, which pyright's strict mode
# reports on every plotting call; everything else here is checked strictly.
# pyright: reportUnknownMemberType=false

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path


def draw(
    median: Callable[[str], float | None],
    path: Path,
    pending: Sequence[int],
    woken: Sequence[int],
) -> None:
    """Draw the two log-log panels into ``path`` (PNG).

    ``median`` gives a benchmark's median time by name (None if it did not
    run); ``pending`` and ``woken`` are the sizes to plot.
    """
    fig = plt.figure(figsize=(11, 4.2))
    left = fig.add_subplot(1, 2, 1)
    right = fig.add_subplot(1, 2, 2)
    styles = {
        "ours": ("ordered_statemachine", "C0", "o"),
        "aioxmpp": ("aioxmpp.statemachine", "C3", "s"),
        "condition": ("asyncio.Condition baseline", "C2", "^"),
        "event": ("asyncio.Event.set()", "k", ""),
    }
    for impl in ("ours", "aioxmpp", "condition"):
        points = [(n, t) for n in pending if n and (t := median(f"assign[{impl},{n}]"))]
        if points:
            label, colour, marker = styles[impl]
            xs, ys = zip(*points, strict=True)
            left.plot(
                xs, [y * 1e9 for y in ys], marker=marker, color=colour, label=label
            )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="pending waiters (none due)",
        ylabel="one assignment (ns)",
        title="Cost of an assignment",
    )
    for impl in ("ours", "aioxmpp", "condition", "event"):
        points = [(n, t) for n in woken if (t := median(f"wake[{impl},{n}]"))]
        if points:
            label, colour, marker = styles[impl]
            xs, ys = zip(*points, strict=True)
            right.plot(
                xs,
                [y * 1e9 for y in ys],
                marker=marker or None,
                linestyle="--" if impl == "event" else "-",
                color=colour,
                label=label,
            )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="waiters woken by one assignment",
        ylabel="per woken waiter, until all resumed (ns)",
        title="Cost of waking",
    )
    for axes in (left, right):
        axes.grid(visible=True, which="both", alpha=0.3)
        axes.legend(fontsize="small")
    fig.suptitle(
        f"Python {platform.python_version()}, {platform.machine()}", fontsize="small"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
