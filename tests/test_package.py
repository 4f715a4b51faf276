"""The package's public surface: names, version, marker file."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import inspect

import pytest

import ordered_statemachine


class TestPackage:
    """What ``import ordered_statemachine`` offers."""

    def test_all_is_sorted_and_complete(self) -> None:
        """``__all__`` is sorted, and every public attribute is listed in it."""
        names = ordered_statemachine.__all__
        assert names == sorted(names)
        public = {
            name
            for name in vars(ordered_statemachine)
            if not name.startswith("_")
            and name != "annotations"
            # A subpackage (the redis extra) once imported, not a name.
            and not inspect.ismodule(getattr(ordered_statemachine, name))
        }
        assert public | {"__version__"} == set(names)

    def test_source_of_every_public_class_is_found(self) -> None:
        """``inspect.getsource`` works on every public class.

        Regression: ``__init__`` rewrote their ``__module__`` to the package,
        whose file does not define them, and ``inspect.getsource`` raised
        OSError.
        """
        for name in ordered_statemachine.__all__:
            obj = getattr(ordered_statemachine, name)
            if isinstance(obj, type):
                assert f"class {name}(" in inspect.getsource(obj), name
                module = importlib.import_module(obj.__module__)
                assert getattr(module, name) is obj

    @pytest.mark.uninstrumented  # mutmut adds undocumented methods
    def test_every_public_name_and_method_has_a_docstring(self) -> None:
        """Classes, their public methods and properties all say what they do."""
        missing: list[str] = []
        for name in ordered_statemachine.__all__:
            obj = getattr(ordered_statemachine, name)
            if not isinstance(obj, type):
                continue
            if not obj.__doc__:
                missing.append(name)
            for attribute, value in vars(obj).items():
                public = not attribute.startswith("_") or attribute in {
                    "__init__",
                    "__aiter__",
                    "__anext__",
                    "__aenter__",
                    "__aexit__",
                }
                documented = callable(value) or isinstance(value, property)
                # Generated methods (a dataclass's or a Protocol's __init__)
                # are not ours to document.
                code = getattr(value, "__code__", None)
                written = code is None or "ordered_statemachine" in code.co_filename
                if public and documented and written and not value.__doc__:
                    missing.append(f"{name}.{attribute}")
        assert missing == []

    def test_version_comes_from_metadata(self) -> None:
        """``__version__`` is the installed distribution's version."""
        expected = importlib.metadata.version("ordered-statemachine")
        assert ordered_statemachine.__version__ == expected

    def test_py_typed_marker_is_shipped(self) -> None:
        """The PEP 561 marker is in the package."""
        marker = importlib.resources.files("ordered_statemachine") / "py.typed"
        assert marker.is_file()
