"""Mutation testing: every mutant of ``src/`` is killed, or listed as equivalent.

Usage (in an environment with the ``dev`` and ``mutation`` extras)::

    python tools/mutation.py            # mutmut run, then the check
    python tools/mutation.py --check    # only the check, on mutmut's last run

Runs ``mutmut run`` afresh (configured in ``pyproject.toml``: the whole test
suite except the ``slow``, ``typecheck`` and ``uninstrumented`` tests, with
the ``mutation`` hypothesis profile, which does not shrink), then reads
every mutant's status with ``mutmut results --all``. A mutant is detected if
the tests failed, crashed, or ran out of time. Each surviving mutant
must be listed in ``tests/mutation-equivalents.txt`` with a one-line reason
why no test can tell it from the original; a listed mutant that no longer
survives is an error too (the list must stay true). Prints the score, and
exits 1 if the check fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tests" / "mutation-equivalents.txt"


def equivalents() -> dict[str, str]:
    """Return the listed equivalent mutants, with their reasons."""
    listed: dict[str, str] = {}
    for line in EQUIVALENTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            msg = f"{EQUIVALENTS.name}: {name} has no reason"
            raise SystemExit(msg)
        listed[name] = reason.strip()
    return listed


def statuses() -> dict[str, str]:
    """Return every mutant's status from mutmut's last run."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(re.findall(r"^\s*(\S+): (.+)$", out, re.MULTILINE))


def main() -> int:
    """Run mutmut (unless ``--check``), then check the survivors."""
    parser = argparse.ArgumentParser(description="Mutation testing of src/.")
    parser.add_argument(
        "--check", action="store_true", help="only check mutmut's last run"
    )
    args = parser.parse_args()
    if not args.check:
        # A fresh run: mutmut reuses the results it finds in mutants/, which
        # may belong to older sources or tests.
        shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        # A mutant that a hypothesis test catches is killed by the first
        # failing example; shrinking it would only slow the run down.
        # ORDERED_STATEMACHINE_MUTATION: tests whose largest sizes only take
        # time (test_complexity) stop at the next size down.
        env = {
            **os.environ,
            "HYPOTHESIS_PROFILE": "mutation",
            "ORDERED_STATEMACHINE_MUTATION": "1",
        }
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run"], cwd=ROOT, env=env, check=False
        )
    found = statuses()
    listed = equivalents()
    counts = Counter(found.values())
    # "segfault" is mutmut's name for a test run killed by a signal (a mutant
    # that makes the queue grow without bound gets the run OOM-killed), and
    # "timeout" for one stopped at its time budget: every wait in a test is
    # bounded, so such a run was waiting out a bound (a test about to fail)
    # or looping without end. The tests did not pass: the mutant is detected.
    # Both are printed by name below, to be checked.
    detected = {"killed", "segfault", "timeout"}
    survivors = {name for name, status in found.items() if status not in detected}
    unexplained = sorted(survivors - set(listed))
    stale = sorted(set(listed) - survivors)
    killed = sum(counts[status] for status in detected)
    print(
        f"{len(found)} mutants: {killed} killed, {len(survivors & set(listed))} "
        f"listed as equivalent, {len(unexplained)} unexplained "
        f"({dict(counts)})"
    )
    for name in sorted(found):
        if found[name] in {"segfault", "timeout"}:
            print(f"  detected by {found[name]}: {name}; see: mutmut show {name}")
    for name in unexplained:
        print(f"  not killed: {name} ({found[name]}); see: mutmut show {name}")
    for name in stale:
        print(f"  listed as equivalent but killed or gone: {name}")
    return 1 if unexplained or stale else 0


if __name__ == "__main__":
    sys.exit(main())
