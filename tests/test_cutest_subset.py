"""A few small CUTEst problems through docs/examples/cutest_lbfgs.py (skipped without sif2jax).

The full benchmark (docs/linesearch_cutest.md) takes minutes; this runs the same code on
three problems with two or three variables, in seconds.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("sif2jax") is None:
    pytest.skip("sif2jax is not installed", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "examples" / "cutest_lbfgs.py"
PROBLEMS = ["ROSENBR", "BEALE", "BOX3"]


def _benchmark():
    spec = importlib.util.spec_from_file_location("cutest_lbfgs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_small_cutest_problems_are_solved_as_optax_solves_them() -> None:
    benchmark = _benchmark()
    problems = benchmark.load_problems(PROBLEMS)
    assert [p.name for p in problems] == PROBLEMS
    rows = benchmark.run(problems, max_iter=200, verbose=False)
    for row in rows:
        for solver in ("optref", "optax", "scipy"):
            assert row[solver].solved, (row["problem"], solver, row[solver])
        # The same algorithm in float64: the same iterations and evaluations.
        assert row["optref"].iterations == row["optax"].iterations, row["problem"]
        assert row["optref"].function_evaluations == row["optax"].function_evaluations
    table = benchmark.markdown(rows, "python docs/examples/cutest_lbfgs.py", [])
    assert "| ROSENBR | 2 | yes |" in table
