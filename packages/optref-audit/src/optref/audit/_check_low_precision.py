"""Low-precision accuracy of both libraries against optref's float64 run (the oracle).

One step on identical inputs: the float64 trajectory's gradient, state and params at a
step are rounded to the low dtype; each library updates them in that dtype; the oracle
updates the same rounded values (upcast) in float64. The error is
``rms(u - u_oracle) / rms(u_oracle)`` in units of the low dtype's epsilon, which a
coordinate that cancels to zero cannot blow up. Along a trajectory: each library runs
the whole way in the low dtype, and the params are compared with the float64 run's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import Case

from ._cases import build
from ._findings import Finding
from ._metrics import units_of_epsilon
from ._problems import PROBLEMS
from ._trajectory import extra_arguments, flatten_state, run_trajectory

__all__ = ["LOW_PRECISION_BOUND", "check_low_precision", "one_step_errors"]

LOW_PRECISION_BOUND = 16.0
"""The one-step error, in epsilons of the dtype, above which optref fails its own check."""
DEFAULT_DTYPES = ("float32", "bfloat16", "float16")


def _cast(tree: Any, dtype: Any) -> Any:
    def leaf(x: Any) -> Any:
        x = jnp.asarray(x)
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            return x.astype(jnp.promote_types(dtype, jnp.complex64))
        if jnp.issubdtype(x.dtype, jnp.floating):
            return x.astype(dtype)
        return x

    return jax.tree.map(leaf, tree)


def _graft(template: Any, leaves_by_path: dict[str, np.ndarray]) -> Any:
    """``template`` with its leaves replaced by the ones at the same key paths."""
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    return treedef.unflatten(
        [jnp.asarray(leaves_by_path[jax.tree_util.keystr(p)]) for p, _ in paths_leaves]
    )


def one_step_errors(
    case: Case, library: str, dtype: Any, problem_name: str, steps: tuple[int, ...]
) -> dict[int, float]:
    """The one-step error of ``library`` in ``dtype``, in epsilons, at each of ``steps``."""
    problem = PROBLEMS[problem_name]
    params64 = problem.init(jnp.float64)
    last = max(steps) + 1
    tx_low, tx_ref = build(case, library), build(case, "optref")
    trajectory = run_trajectory(
        build(case, library),
        problem,
        params64,
        last,
        step_scale=case.step_scale,
        extra_args=case.extra_args,
    )
    ref_template = tx_ref.init(params64)
    update_low = jax.jit(lambda g, s, p, e: tx_low.update(g, s, p, **e)[0])
    update_ref = jax.jit(lambda g, s, p, e: tx_ref.update(g, s, p, **e)[0])
    errors = {}
    for step in steps:
        state_before = (
            trajectory.states[step - 1] if step > 0 else build(case, library).init(params64)
        )
        grads, params = trajectory.grads[step], trajectory.params[step]
        g_low, s_low, p_low = (_cast(x, dtype) for x in (grads, state_before, params))
        extra_low = {
            k: v
            for k, v in extra_arguments(
                tuple(a for a in case.extra_args if a != "value_fn"), problem, p_low, g_low
            ).items()
        }
        u_low = update_low(g_low, s_low, p_low, extra_low)
        g_up, p_up = _cast(g_low, jnp.float64), _cast(p_low, jnp.float64)
        s_up = _graft(
            ref_template, {k: _cast(v, jnp.float64) for k, v in flatten_state(s_low).items()}
        )
        extra_up = {
            k: v
            for k, v in extra_arguments(
                tuple(a for a in case.extra_args if a != "value_fn"), problem, p_up, g_up
            ).items()
        }
        u_ref = update_ref(g_up, s_up, p_up, extra_up)
        errors[step] = units_of_epsilon(u_low, u_ref, dtype)
    return errors


def check_low_precision(
    case: Case,
    dtypes: tuple[str, ...] = DEFAULT_DTYPES,
    libraries: tuple[str, ...] = ("optref", "optax"),
    steps: tuple[int, ...] = (0, 9),
    backend: str = "cpu",
    problem: str | None = None,
) -> list[Finding]:
    """One-step low-precision errors of each library; a finding where one is poor.

    optref fails when its error exceeds :data:`LOW_PRECISION_BOUND` epsilons; Optax gets a
    warning where its error is both above the bound and over four times optref's.
    """
    if "value_fn" in case.extra_args:
        return []
    problem = problem or case.problems[0]
    findings = []
    for dtype in dtypes:
        measured = {}
        for library in libraries:
            if library == "optax" and case.optax is None:
                continue
            measured[library] = one_step_errors(case, library, jnp.dtype(dtype), problem, steps)
        ours = max(measured["optref"].values())
        if ours > LOW_PRECISION_BOUND and case.deviation("low_precision") is None:
            findings.append(
                Finding(
                    case=case.name,
                    check="low_precision",
                    severity="error",
                    library="optref",
                    summary=f"optref's one-step {dtype} error is {ours:.3g} eps (bound "
                    f"{LOW_PRECISION_BOUND:g}) on {problem}",
                    backend=backend,
                    dtype=dtype,
                    problem=problem,
                    measured=measured,
                )
            )
        if "optax" in measured:
            theirs = max(measured["optax"].values())
            if theirs > LOW_PRECISION_BOUND and theirs > 4 * max(ours, 1.0):
                findings.append(
                    Finding(
                        case=case.name,
                        check="low_precision",
                        severity="warning",
                        library="optax",
                        summary=f"Optax's one-step {dtype} error is {theirs:.3g} eps, optref's "
                        f"{ours:.3g} eps on {problem}",
                        backend=backend,
                        dtype=dtype,
                        problem=problem,
                        measured=measured,
                    )
                )
    return findings
