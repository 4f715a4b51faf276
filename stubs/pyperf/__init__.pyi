# Stubs for the parts of pyperf 2.x that the benchmarks use; pyperf ships no
# type information.
import argparse
from collections.abc import Callable, Sequence
from typing import Any

__version__: str

class Runner:
    args: argparse.Namespace
    argparser: argparse.ArgumentParser
    metadata: dict[str, object]
    def __init__(
        self,
        values: int | None = None,
        processes: int | None = None,
        loops: int = 0,
        min_time: float = 0.1,
        metadata: dict[str, object] | None = None,
        show_name: bool = True,
        program_args: Sequence[str] | None = None,
        add_cmdline_args: Callable[[list[str], argparse.Namespace], None] | None = None,
        warmups: int = 1,
    ) -> None: ...
    def parse_args(self, args: Sequence[str] | None = None) -> argparse.Namespace: ...
    def bench_time_func(
        self,
        name: str,
        time_func: Callable[..., float],
        *args: Any,  # noqa: ANN401
        inner_loops: int | None = None,
        metadata: dict[str, object] | None = None,
    ) -> Benchmark | None: ...

class Benchmark:
    def get_name(self) -> str: ...
    def get_values(self) -> tuple[float, ...]: ...
    def get_nvalue(self) -> int: ...
    def median(self) -> float: ...
    def mean(self) -> float: ...
    def stdev(self) -> float: ...
    def get_metadata(self) -> dict[str, object]: ...

class BenchmarkSuite:
    @classmethod
    def load(cls, file: str) -> BenchmarkSuite: ...
    def get_benchmarks(self) -> list[Benchmark]: ...
    def get_benchmark(self, name: str) -> Benchmark: ...
    def get_metadata(self) -> dict[str, object]: ...
