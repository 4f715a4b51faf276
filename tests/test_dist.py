"""The distributions: what they hold, and the wheel installed for real.

Builds the wheel and the sdist with ``python -m build`` (an isolated build,
as pip does), checks them with ``twine check``, checks their contents,
installs the wheel (not editable) into a fresh virtual environment, and there
checks the import, ``py.typed``, ``__version__``, the example program, and
pyright's ``--verifytypes`` report on the public type surface.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the freshly built wheel and sdist."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    """The built wheel."""
    (found,) = dist.glob("*.whl")
    return found


@pytest.fixture(scope="module")
def sdist(dist: Path) -> Path:
    """The built sdist."""
    (found,) = dist.glob("*.tar.gz")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtual environment with the wheel installed.

    With its ``redis`` extra, so that the Redis machines' types are checked
    as their users get them.
    """
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    run(
        python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        f"{wheel}[redis]",
    )
    return python


class TestDistributions:
    """What the wheel and the sdist contain."""

    def test_twine_check(self, wheel: Path, sdist: Path) -> None:
        """``twine check --strict`` passes on both."""
        run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)

    def test_wheel_holds_only_the_package(self, wheel: Path) -> None:
        """The package and its metadata, py.typed included; nothing else."""
        names = zipfile.ZipFile(wheel).namelist()
        roots = {name.split("/")[0] for name in names}
        assert roots == {
            "ordered_statemachine",
            wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info",
        }
        assert "ordered_statemachine/py.typed" in names
        assert "ordered_statemachine/__init__.py" in names

    def test_sdist_holds_what_the_tests_need(self, sdist: Path) -> None:
        """Tests, stubs, configuration and documents travel with the sdist."""
        with tarfile.open(sdist) as archive:
            names = {
                name.split("/", 1)[1] for name in archive.getnames() if "/" in name
            }
        for required in (
            "pyproject.toml",
            "mypy.ini",
            "README.md",
            "CHANGELOG.md",
            "LICENSE",
            "src/ordered_statemachine/py.typed",
            "tests/conftest.py",
            "tests/typing/contract_core.py",
            "stubs/aioxmpp/statemachine.pyi",
            "examples/connection_lifecycle.py",
        ):
            assert required in names, required


class TestInstalledWheel:
    """The wheel, installed (not editable) into a fresh virtual environment."""

    def test_imports_with_metadata_and_marker(
        self, installed: Path, tmp_path: Path
    ) -> None:
        """It imports from site-packages, ships py.typed, and knows its version."""
        probe = (
            "import importlib.metadata, importlib.resources, json\n"
            "import ordered_statemachine as o\n"
            "print(json.dumps([o.__file__, o.__version__,\n"
            "    importlib.metadata.version('ordered-statemachine'),\n"
            "    (importlib.resources.files(o.__name__) / 'py.typed').is_file()]))\n"
        )
        out = run(installed, "-c", probe, cwd=tmp_path).stdout
        location, version, metadata_version, typed = json.loads(out)
        assert "site-packages" in location
        assert version == metadata_version
        assert typed is True

    def test_example_runs_against_the_wheel(
        self, installed: Path, tmp_path: Path
    ) -> None:
        """The example program runs, outside the checkout, on the installed wheel."""
        example = ROOT / "examples" / "connection_lifecycle.py"
        out = run(installed, example, cwd=tmp_path).stdout
        assert "watcher: connection is closed" in out
        assert "because of ConnectionRefusedError" in out

    def test_public_surface_is_completely_typed(
        self, installed: Path, tmp_path: Path
    ) -> None:
        """Pyright --verifytypes: 100% of public symbols known, none ambiguous."""
        # verifytypes finds packages through the `python` on PATH (it ignores
        # --pythonpath): put the environment's first.
        path = f"{installed.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "basedpyright",
                "--verifytypes",
                "ordered_statemachine",
                "--outputjson",
            ],
            cwd=tmp_path,
            env={**os.environ, "PATH": path},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        report = json.loads(result.stdout)["typeCompleteness"]
        assert report["completenessScore"] == 1.0, result.stdout
        assert report["exportedSymbolCounts"]["withAmbiguousType"] == 0
        assert report["exportedSymbolCounts"]["withUnknownType"] == 0
        # The report's docstring counts include the standard library's
        # (asyncio, io); none of the diagnostics may be about our symbols.
        ours = [
            symbol
            for symbol in report["symbols"]
            if symbol["name"].startswith("ordered_statemachine")
        ]
        assert len(ours) > 20
        assert [s["name"] for s in ours if s.get("diagnostics")] == []
