"""Set up a virtual environment for this Python and run the whole test suite.

Usage: ``python3 tools/run_tests.py [pytest arguments]``

Creates (or reuses) ``.venv/<python-tag>`` next to this checkout, installs the
package in editable mode with its ``dev`` extra, then runs pytest with
asyncio's debug mode on, in two passes: the tests not marked ``slow`` under
coverage, then the ``slow`` ones (stress, subprocesses, builds) without it;
and enforces 100% branch coverage of ``src``. Arguments are passed to both
passes. Exits non-zero if anything fails, including when no test runs
(pytest's exit status 5): without arguments, in either pass; with arguments,
in both.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NO_TESTS = 5
"""pytest's exit status when it collects no tests."""


def main(pytest_args: list[str]) -> int:
    """Create the environment, install, run the suite; return the exit status."""
    tag = f"{sys.implementation.name}-{sys.version_info.major}.{sys.version_info.minor}"
    env_dir = ROOT / ".venv" / tag
    python = env_dir / ("Scripts" if os.name == "nt" else "bin") / "python"
    if not python.exists():
        print(f"creating {env_dir}", flush=True)
        venv.create(env_dir, with_pip=True, clear=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]"], check=True)

    # Per-interpreter data files, so that several interpreters can run the
    # suite at once in one checkout (as .ci/run does).
    env = {
        **os.environ,
        "PYTHONASYNCIODEBUG": "1",
        "COVERAGE_FILE": str(ROOT / f".coverage.{tag}"),
    }
    print(f"running the test suite on {tag}", flush=True)
    coverage = [str(python), "-m", "coverage"]
    pytest = ["-m", "pytest", "-o", f"cache_dir=.pytest_cache/{tag}", *pytest_args]
    # Two passes: the tests that exercise the code, under coverage; then the
    # slow ones (stress, subprocesses, builds), which add no coverage and run
    # several times faster untraced.
    passes = [
        [*coverage, "run", *pytest, "-m", "not slow"],
        [str(python), *pytest, "-m", "slow"],
    ]
    statuses: list[int] = []
    for command in passes:
        status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        statuses.append(status)
        if status not in {0, NO_TESTS}:
            print(f"pytest failed with exit status {status}", flush=True)
            return status
    if (NO_TESTS in statuses and not pytest_args) or statuses == [NO_TESTS] * 2:
        # With no arguments both passes must run tests; with arguments that
        # select, say, one file, one pass may legitimately find none.
        print("pytest collected no tests", flush=True)
        return 1
    return subprocess.run(
        [*coverage, "report"], cwd=ROOT, env=env, check=False
    ).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
