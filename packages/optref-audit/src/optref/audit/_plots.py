"""The report's plots, as base64 PNGs (matplotlib's Agg backend; none without matplotlib).

- the bilinear game ``min_x max_y x y``: the trajectories of Optax's and optref's
  ``optimistic_gradient_descent`` and ``sgd`` side by side (plain gradient descent-ascent
  spirals out; the optimistic method converges);
- low precision: the one-step error (in epsilons of the dtype) against the step, for both
  libraries, for each case with a low-precision finding.
"""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

import jax
import numpy as np

from optref.core.conformance import Case

from ._cases import build
from ._findings import Finding
from ._problems import PROBLEMS
from ._trajectory import run_trajectory

__all__ = ["draw_plots"]

#: The (optref, Optax) factories of the bilinear-game plot, with their arguments.
BILINEAR_METHODS = {
    "optimistic_gradient_descent": {"learning_rate": 0.1},
    "sgd": {"learning_rate": 0.1},
}
BILINEAR_STEPS = 100
#: Steps at which the low-precision error curves are measured.
ERROR_STEPS = (0, 1, 2, 4, 8, 16, 32)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _bilinear_path(library: str, name: str) -> np.ndarray:
    case = Case(
        f"plot.{name}",
        f"optref.core.{name}",
        BILINEAR_METHODS[name],
        f"optax.{name}",
        problems=("bilinear",),
        steps=BILINEAR_STEPS,
    )
    problem = PROBLEMS["bilinear"]
    with jax.enable_x64(True):
        run = run_trajectory(
            build(case, library), problem, problem.init(np.float64), BILINEAR_STEPS
        )
    return np.array([[float(p["x"][0]), float(p["y"][0])] for p in run.params])


def bilinear_plot() -> str:
    """Both libraries' trajectories on the bilinear game, side by side, as a base64 PNG."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharex=True, sharey=True)
    for axis, library in zip(axes, ("optax", "optref"), strict=True):
        for name, style in zip(BILINEAR_METHODS, ("-", "--"), strict=True):
            path = _bilinear_path(library, name)
            axis.plot(
                path[:, 0], path[:, 1], style, marker=".", markersize=3, label=f"{name} (lr 0.1)"
            )
        axis.plot([0], [0], "k*", markersize=10, label="equilibrium")
        axis.set_title(f"{library}: min_x max_y xy, {BILINEAR_STEPS} steps from (1, 1)")
        axis.set_xlabel("x")
        axis.set_aspect("equal", adjustable="box")
        axis.legend(fontsize=8)
    axes[0].set_ylabel("y")
    return _png(figure)


def error_plot(case: Case, dtype: str, problem: str) -> str:
    """One-step low-precision error against the step, both libraries, as a base64 PNG."""
    import matplotlib.pyplot as plt

    from ._check_low_precision import LOW_PRECISION_BOUND, one_step_errors

    steps = tuple(s for s in ERROR_STEPS if s < case.steps)
    figure, axis = plt.subplots(figsize=(6, 3.6))
    with jax.enable_x64(True):
        for library in ("optref", "optax"):
            errors = one_step_errors(case, library, jax.numpy.dtype(dtype), problem, steps)
            axis.plot(list(errors), list(errors.values()), marker="o", label=library)
    axis.axhline(LOW_PRECISION_BOUND, color="grey", linestyle=":", label="bound")
    axis.set_yscale("symlog", linthresh=1.0)
    axis.set_xlabel("step")
    axis.set_ylabel(f"one-step error ({dtype} eps)")
    axis.set_title(f"{case.name}, {dtype}, {problem}")
    axis.legend(fontsize=8)
    return _png(figure)


def draw_plots(cases: list[Case], findings: list[Finding]) -> dict[str, str]:
    """The report's plots by title; empty when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return {}
    plots: dict[str, str] = {}
    try:
        plots["Bilinear game: optimistic gradient descent and SGD, Optax vs optref"] = (
            bilinear_plot()
        )
    except Exception as error:  # a plot must never sink the report
        print(
            f"optref-audit: bilinear plot failed: {type(error).__name__}: {error}", file=sys.stderr
        )
    by_name = {c.name: c for c in cases}
    seen = set()
    for finding in findings:
        key = (finding.case, finding.dtype, finding.problem)
        if finding.check != "low_precision" or key in seen or finding.case not in by_name:
            continue
        seen.add(key)
        try:
            plots[f"Low precision: {finding.case} in {finding.dtype}"] = error_plot(
                by_name[finding.case], finding.dtype, finding.problem
            )
        except Exception as error:
            print(f"optref-audit: error plot for {finding.case} failed: {error}", file=sys.stderr)
    return plots
