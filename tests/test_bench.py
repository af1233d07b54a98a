"""docs/examples/bench.py at a tiny size: every contender compiles and steps in both
libraries (and unfused), and the tables that the benchmarks page shows are built from it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("example_bench", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(autouse=True)
def float32():
    """The suite times float32 steps (tests/conftest.py turns x64 on)."""
    with jax.enable_x64(False):
        yield


def test_every_optimizer_runs_in_both_libraries_and_makes_a_table_row(bench) -> None:
    model = bench.Model("3 leaves, 60", bench._leaves_model(3, (4, 5)))
    device = jax.devices()[0]
    results = []
    for name, optimizer in bench.OPTIMIZERS.items():
        timing = bench.bench_pair(
            model, optimizer, device, rounds=1, steps=2, compiles=1, unfused=True
        )
        expected = {"optref", "optax"} | ({"optref unfused"} if optimizer.fuses else set())
        assert set(timing) == expected, name
        for library, t in timing.items():
            # A slow step (L-BFGS's) has its own number of rounds.
            steps = 2 * (optimizer.rounds or 1)
            assert len(t.compile_s) == 1 and len(t.steps_s) == steps, (name, library)
            assert t.kernels > 0 and t.traffic_bytes > 0, (name, library)
        results.append((model, name, timing))
    rows = bench.table(results, bandwidth=1e10).splitlines()[2:]
    assert [row.split(" | ")[1] for row in rows] == list(bench.OPTIMIZERS)
    # Every row has the header's columns, the unfused one included.
    assert all(row.count("|") == rows[0].count("|") for row in rows)


def test_floor_steps_write_the_params_and_their_moments(bench) -> None:
    model = bench.Model("3 leaves, 60", bench._leaves_model(3, (4, 5)))
    device = jax.devices()[0]
    floors = [
        (
            model,
            3,
            60,
            moments,
            bench.bench_floor(model, device, moments=moments, rounds=1, steps=2),
        )
        for moments in (0, 2)
    ]
    # One kernel a leaf and an output: the params, then also each moment tree.
    assert [t.kernels for *_, t in floors] == [3, 9]
    assert bench.floor_table(floors).count("\n| 3 leaves, 60 |") == 2
