"""Run the benchmark suite and print the table of figures against their targets.

Usage::

    python benchmarks/run.py                   # the full suite (about 15 minutes)
    python benchmarks/run.py --smoke           # small sizes, one value each
    python benchmarks/run.py --plot docs/performance.png
    python benchmarks/run.py --report          # table again from the last run

Runs ``suite.py`` under pyperf (timings, written to
``<out>/timings.json``) and ``memory.py`` (tracemalloc, ``<out>/memory.json``),
then prints a Markdown table of every figure, the ratio each target is about,
and whether it is met, and writes it to ``<out>/table.md``. Every ratio
compares measurements from this one run on this one machine. ``--plot``
also draws the cost of one assignment against the number of pending waiters,
and the cost per woken waiter against the number woken.

Exits 1 if a target is missed (except with ``--smoke``, whose single values
are too rough to judge).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyperf

if TYPE_CHECKING:
    from collections.abc import Sequence

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Figure:
    """One row of the table."""

    name: str
    values: dict[str, str]
    """Measured values by implementation, formatted."""
    ratio: float
    ratio_text: str
    """What the ratio is, e.g. ``ours / floor``."""
    target: str
    met: bool | None
    """Whether the target is met; None for a row that only informs."""


def _ns(seconds: float) -> str:
    nanoseconds = seconds * 1e9
    if nanoseconds >= 1e6:
        return f"{nanoseconds / 1e6:.2f} ms"
    if nanoseconds >= 1e4:
        return f"{nanoseconds / 1e3:.1f} µs"
    return f"{nanoseconds:.0f} ns"


class Results:
    """Median timings from pyperf's JSON and the memory figures."""

    def __init__(self, timings: Path, memory: Path) -> None:
        """Load ``timings`` (pyperf) and ``memory`` (memory.py's JSON)."""
        suite = pyperf.BenchmarkSuite.load(str(timings))
        self.time = {
            bench.get_name(): bench.median() for bench in suite.get_benchmarks()
        }
        self.memory: dict[str, dict[str, float]] = json.loads(memory.read_text())

    def get(self, name: str) -> float | None:
        """Return the median time of benchmark ``name``, if it ran."""
        return self.time.get(name)

    def row(self, names: dict[str, str]) -> dict[str, str]:
        """Format the timings ``names`` (implementation -> benchmark name)."""
        return {
            impl: _ns(value)
            for impl, name in names.items()
            if (value := self.get(name)) is not None
        }


def figures(results: Results, wake_n: int, pending_n: int) -> list[Figure]:
    """Compute every target row."""
    t = results.get
    rows: list[Figure] = []

    floor, ours0, aioxmpp0 = (
        t("assign[floor,0]"),
        t("assign[ours,0]"),
        t("assign[aioxmpp,0]"),
    )
    assert floor is not None
    assert ours0 is not None
    names = {i: f"assign[{i},0]" for i in ("ours", "aioxmpp", "condition", "floor")}
    rows.append(
        Figure(
            "assign a greater state, no waiters",
            results.row(names),
            ours0 / floor,
            "ours / floor",
            "≤ 1.25",
            ours0 / floor <= 1.25,
        )
    )
    if aioxmpp0 is not None:
        rows.append(
            Figure(
                "assign a greater state, no waiters",
                results.row(names),
                aioxmpp0 / ours0,
                "aioxmpp / ours",
                "≥ 2",
                aioxmpp0 / ours0 >= 2,
            )
        )

    ours_n = t(f"assign[ours,{pending_n}]")
    assert ours_n is not None
    names = {i: f"assign[{i},{pending_n}]" for i in ("ours", "aioxmpp", "condition")}
    aioxmpp_n = t(f"assign[aioxmpp,{pending_n}]")
    slowdown = (
        f" (aioxmpp: {aioxmpp_n / aioxmpp0:,.0f} times)"
        if aioxmpp_n is not None and aioxmpp0 is not None
        else ""
    )
    rows.append(
        Figure(
            f"assign with {pending_n:,} pending waiters, none due",
            results.row(names),
            ours_n / ours0,
            f"ours / ours with no waiters{slowdown}",
            "≤ 2",
            ours_n / ours0 <= 2,
        )
    )

    event, ours_wake = t(f"wake[event,{wake_n}]"), t(f"wake[ours,{wake_n}]")
    assert event is not None
    assert ours_wake is not None
    names = {
        i: f"wake[{i},{wake_n}]" for i in ("ours", "aioxmpp", "condition", "event")
    }
    rows.append(
        Figure(
            f"wake {wake_n:,} waiters, per woken waiter",
            results.row(names),
            ours_wake / event,
            "ours / asyncio.Event",
            "≤ 1.1",
            ours_wake / event <= 1.1,
        )
    )

    ours_hand, aioxmpp_hand = t("handoff[ours]"), t("handoff[aioxmpp]")
    floor_hand = t("handoff[floor]")
    assert ours_hand is not None
    assert floor_hand is not None
    names = {i: f"handoff[{i}]" for i in ("ours", "aioxmpp", "condition", "floor")}
    if aioxmpp_hand is not None:
        rows.append(
            Figure(
                "hand-off round trip",
                results.row(names),
                ours_hand / aioxmpp_hand,
                "ours / aioxmpp",
                "≤ 1.0",
                ours_hand / aioxmpp_hand <= 1.0,
            )
        )
    rows.append(
        Figure(
            "hand-off round trip",
            results.row(names),
            ours_hand / floor_hand,
            "ours / floor (a bare future, no bookkeeping)",
            "≤ 1.15",
            ours_hand / floor_hand <= 1.15,
        )
    )

    pending = results.memory["pending"]
    for kind in ("wait_for", "wait_for_at_least"):
        values = {
            "ours": pending[f"ours {kind}"],
            "condition": pending["condition"],
            "event": pending["event"],
            "floor": pending["floor"],
        }
        theirs = pending.get(f"aioxmpp {kind}")
        if theirs is not None:
            values["aioxmpp"] = theirs
        rows.append(
            Figure(
                f"bytes per pending waiter, task included: {kind}",
                {impl: f"{value:.0f} B" for impl, value in values.items()},
                values["ours"] / theirs if theirs is not None else values["ours"],
                "ours / aioxmpp" if theirs is not None else "ours, bytes",
                "≤ 1.0" if theirs is not None else "n/a",
                values["ours"] <= theirs if theirs is not None else None,
            )
        )

    abandoned = results.memory["abandoned"]
    rows.append(
        Figure(
            "bytes retained per abandoned wait",
            {impl: f"{value:.1f} B" for impl, value in abandoned.items()},
            abandoned["ours"],
            "ours, bytes",
            "0 (< 1)",
            abandoned["ours"] < 1,
        )
    )
    idle = results.memory["idle"]
    # Whole bytes: tracemalloc's own bookkeeping adds a few bytes per
    # measurement, a fraction of a byte once spread over the machines.
    # CPython 3.12 made every object with a weak reference slot 8 bytes larger.
    limit = 64 if sys.version_info < (3, 12) else 72
    rows.append(
        Figure(
            "bytes per idle machine",
            {impl: f"{value:.0f} B" for impl, value in idle.items()},
            idle["ours"],
            "ours, bytes",
            f"≤ {limit}",
            round(idle["ours"]) <= limit,
        )
    )
    return rows


THREAD_COLUMNS = {
    "threadsafe": "thread-safe",
    "ours": "plain machine",
    "tcondition": "threading.Condition",
    "idiom": "call_soon_threadsafe(event.set)",
    "tevent": "threading.Event",
}


def thread_figures(results: Results) -> list[Figure]:
    """Compute the rows of ThreadSafeOrderedStateMachine (benchmarks/threads.py)."""
    t = results.get
    rows: list[Figure] = []

    def row(  # noqa: PLR0913 (the parts of one row, by keyword)
        name: str,
        bench: str,
        *,
        impls: tuple[str, ...],
        against: str,
        target: float | None,
        text: str,
    ) -> None:
        ours, theirs = t(f"{bench}[threadsafe]"), t(f"{bench}[{against}]")
        assert ours is not None
        assert theirs is not None
        ratio = ours / theirs
        rows.append(
            Figure(
                name,
                results.row({impl: f"{bench}[{impl}]" for impl in impls}),
                ratio,
                text,
                "n/a" if target is None else f"≤ {target}",
                None if target is None else ratio <= target,
            )
        )

    row(
        "assign a greater state, uncontended",
        "tassign",
        impls=("threadsafe", "ours", "tcondition"),
        against="ours",
        target=2.5,
        text="thread-safe / plain machine",
    )
    row(
        "assign a greater state, uncontended",
        "tassign",
        impls=("threadsafe", "ours", "tcondition"),
        against="tcondition",
        target=None,
        text="thread-safe / threading.Condition",
    )
    row(
        "hand-off on one event loop",
        "handoff",
        impls=("threadsafe", "ours"),
        against="ours",
        target=None,
        text="thread-safe / plain machine",
    )
    row(
        "hand-off between two threads, blocking waits",
        "thandoff",
        impls=("threadsafe", "tcondition"),
        against="tcondition",
        target=None,
        text="thread-safe / threading.Condition",
    )
    row(
        "cross-thread wake: a thread assigns, a task on another loop resumes",
        "xwake",
        impls=("threadsafe", "idiom"),
        against="idiom",
        target=1.2,
        text="thread-safe / the hand-written idiom",
    )
    row(
        "blocking wake: a thread assigns, a blocked thread resumes",
        "bwake",
        impls=("threadsafe", "tevent"),
        against="tevent",
        target=1.2,
        text="thread-safe / threading.Event",
    )
    return rows


def thread_table(rows: list[Figure]) -> str:
    """Render the thread rows as a Markdown table."""
    names = list(THREAD_COLUMNS)
    header = (
        "| figure | "
        + " | ".join(THREAD_COLUMNS.values())
        + " | ratio | target | met |\n|"
        + "---|" * (len(names) + 4)
        + "\n"
    )
    lines = [
        f"| {row.name} | "
        + " | ".join(row.values.get(impl, "n/a") for impl in names)
        + f" | {row.ratio_text}: {row.ratio:.2f} | {row.target} | "
        + f"{_verdict(met=row.met)} |"
        for row in rows
    ]
    return header + "\n".join(lines) + "\n"


def _verdict(*, met: bool | None) -> str:
    return "n/a" if met is None else "yes" if met else "**no**"


def table(rows: list[Figure]) -> str:
    """Render the rows as a Markdown table."""
    impls = ["ours", "aioxmpp", "condition", "event", "floor"]
    header = (
        "| figure | ours | aioxmpp | Condition | Event | floor | ratio | target"
        " | met |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines: list[str] = []
    for row in rows:
        cells = [row.values.get(impl, "n/a") for impl in impls]
        value = (
            f"{row.ratio:.1f} B"
            if row.ratio_text.endswith("bytes")
            else (f"{row.ratio:.2f}")
        )
        lines.append(
            f"| {row.name} | {' | '.join(cells)} | {row.ratio_text}: {value} | "
            f"{row.target} | {_verdict(met=row.met)} |"
        )
    return header + "\n".join(lines) + "\n"


def _measure(
    timings: Path, memory: Path, *, smoke: bool, processes: int, values: int
) -> None:
    """Run the timing suite and the memory figures into the two JSON files."""
    timings.unlink(missing_ok=True)
    pyperf_args = (
        ["--debug-single-value", "--smoke"]
        if smoke
        else ["--processes", str(processes), "--values", str(values)]
    )
    suite = [sys.executable, str(HERE / "suite.py"), "--quiet", *pyperf_args]
    subprocess.run([*suite, "-o", str(timings)], check=True)
    measured = subprocess.run(
        [sys.executable, str(HERE / "memory.py"), *(["--smoke"] if smoke else [])],
        check=True,
        capture_output=True,
        text=True,
    )
    memory.write_text(measured.stdout)


def main() -> int:
    """Run everything; print the table; return 1 if a target is missed."""
    sys.path.insert(0, str(HERE))
    import suite  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        description="Run the benchmark suite and print the table of figures."
    )
    parser.add_argument("--smoke", action="store_true", help="prove it runs, quickly")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="directory")
    parser.add_argument("--plot", type=Path, help="write the plot to this PNG")
    parser.add_argument(
        "--processes", type=int, default=6, help="pyperf worker processes"
    )
    parser.add_argument("--values", type=int, default=3, help="values per process")
    parser.add_argument(
        "--report",
        action="store_true",
        help="measure nothing: rebuild the table (and plot) from <out>'s results",
    )
    args = parser.parse_args()
    smoke: bool = args.smoke
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    timings, memory = out / "timings.json", out / "memory.json"
    if not args.report:
        _measure(
            timings, memory, smoke=smoke, processes=args.processes, values=args.values
        )

    results = Results(timings, memory)
    pending: Sequence[int] = suite.SMOKE_SIZES if smoke else suite.PENDING_SIZES
    woken: Sequence[int] = suite.SMOKE_SIZES[1:] if smoke else suite.WAKE_SIZES
    rows = figures(
        results,
        wake_n=woken[-1] if smoke else 20_000,
        pending_n=pending[-1] if smoke else 10_000,
    )
    threads = thread_figures(results)
    text = (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.machine()}, {platform.system()}; medians of pyperf values, "
        "garbage collector on (at its default thresholds)"
        f"{' (smoke run: single values, not figures)' if smoke else ''}\n\n"
        + table(rows)
        + "\nThreadSafeOrderedStateMachine (benchmarks/threads.py):\n\n"
        + thread_table(threads)
    )
    (out / "table.md").write_text(text)
    print(text)
    if args.plot is not None:
        import plot  # noqa: PLC0415 (matplotlib only with --plot)

        plot.draw(results.get, args.plot, pending, woken)
        print(f"plot written to {args.plot}")
    met = all(row.met is not False for row in [*rows, *threads])
    return 0 if smoke or met else 1


if __name__ == "__main__":
    sys.exit(main())
