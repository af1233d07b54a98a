"""Low-precision accuracy of both libraries against optref's float64 run (the oracle).

One step on identical inputs: the float64 trajectory's gradient, state and params at a
step are rounded to the low dtype; each library updates them in that dtype; the oracle
updates the same rounded values (upcast) in float64. The error is
``rms(u - u_oracle) / rms(u_oracle)`` in units of the low dtype's epsilon, which a
coordinate that cancels to zero cannot blow up. The steps measured are spread along the
float64 trajectory (the first and the tenth by default), each on identical inputs.
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
from ._trajectory import (
    Trajectory,
    extra_arguments,
    flatten_state,
    jitted_update,
    run_trajectory,
)

__all__ = ["LOW_PRECISION_BOUND", "check_low_precision", "graft_state", "one_step_errors"]

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


def graft_state(template: Any, leaves_by_path: dict[str, np.ndarray]) -> Any:
    """``template`` with each leaf replaced by the one at the same key path, cast to the
    template leaf's own dtype.

    The low-precision state of a library is its own ``init`` in the low dtype with the
    float64 run's values grafted in: a leaf the library keeps in float32 (an accumulator)
    or in the default float dtype (an injected hyperparameter) keeps that dtype, where
    rounding the whole state would turn ``b2 = 0.999`` into bfloat16's 1.0.
    """
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, old in paths_leaves:
        value = leaves_by_path[jax.tree_util.keystr(path)]
        if isinstance(old, jax.Array) and jnp.issubdtype(old.dtype, jax.dtypes.prng_key):
            leaves.append(
                jax.random.wrap_key_data(jnp.asarray(value), impl=jax.random.key_impl(old))
            )
        elif isinstance(old, jax.Array | np.ndarray | np.generic):
            leaves.append(jnp.asarray(value).astype(old.dtype))
        else:
            leaves.append(old)
    return treedef.unflatten(leaves)


def _init(tx: Any, params: Any) -> Any:
    return tx.init(params)


def _float64_run(case: Case, library: str, problem: Any, steps: int) -> Trajectory:
    return run_trajectory(
        build(case, library),
        problem,
        problem.init(jnp.float64),
        steps,
        step_scale=case.step_scale,
        extra_args=case.extra_args,
    )


def one_step_errors(
    case: Case,
    library: str,
    dtype: Any,
    problem_name: str,
    steps: tuple[int, ...],
    runs: dict[str, Trajectory] | None = None,
) -> dict[int, float]:
    """The one-step error of ``library`` in ``dtype``, in epsilons, at each of ``steps``.

    At each step the float64 run's gradient, params and state (``library``'s own run) are
    rounded to ``dtype`` (each state leaf to the dtype of that leaf in ``library``'s own
    low-precision ``init``); the library updates them in ``dtype`` and the oracle, optref
    in float64, updates the same rounded values upcast. ``runs`` holds the float64 runs
    by library, computed when missing; where the two libraries' state layouts differ,
    the oracle gets optref's own state, rounded the same way.
    """
    problem = PROBLEMS[problem_name]
    runs = {} if runs is None else runs
    for name in {library, "optref"}:
        if name not in runs:
            runs[name] = _float64_run(case, name, problem, max(steps) + 1)
    params64 = problem.init(jnp.float64)
    tx_low, tx_ref = build(case, library), build(case, "optref")
    low_template = _init(tx_low, _cast(params64, dtype))
    ref_template = _init(tx_ref, params64)
    ref_low_template = _init(tx_ref, _cast(params64, dtype))
    same_layout = flatten_state(low_template).keys() == flatten_state(ref_template).keys()
    extra_names = tuple(a for a in case.extra_args if a != "value_fn")
    errors = {}
    for step in steps:
        grads, params = runs[library].grads[step], runs[library].params[step]
        before = runs[library].states[step - 1] if step > 0 else low_template
        g_low, p_low = _cast(grads, dtype), _cast(params, dtype)
        s_low = graft_state(low_template, flatten_state(before))
        extra_low = extra_arguments(extra_names, problem, p_low, g_low)
        u_low = jitted_update(tx_low, g_low, s_low, p_low, extra_low, None)[0]
        g_up, p_up = _cast(g_low, jnp.float64), _cast(p_low, jnp.float64)
        if same_layout:
            s_rounded = s_low
        else:
            ref_before = runs["optref"].states[step - 1] if step > 0 else ref_low_template
            s_rounded = graft_state(ref_low_template, flatten_state(ref_before))
        s_up = graft_state(ref_template, flatten_state(s_rounded))
        extra_up = extra_arguments(extra_names, problem, p_up, g_up)
        u_ref = jitted_update(tx_ref, g_up, s_up, p_up, extra_up, None)[0]
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
    runs: dict[str, Trajectory] = {}  # the float64 runs, shared by every dtype
    for dtype in dtypes:
        measured = {}
        for library in libraries:
            if library == "optax" and case.optax is None:
                continue
            measured[library] = one_step_errors(
                case, library, jnp.dtype(dtype), problem, steps, runs
            )
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
