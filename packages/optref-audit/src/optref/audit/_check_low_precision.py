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
from ._reproducer import optax_low_precision_reproducer
from ._together import call_together
from ._trajectory import (
    Run,
    Trajectory,
    extra_arguments,
    flatten_state,
    run_trajectories,
    update_once,
)
from ._versions import applicable_deviation

__all__ = [
    "LOW_PRECISION_BOUND",
    "check_low_precision",
    "graft_state",
    "one_step_errors",
    "one_step_errors_together",
]

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
    pair = (library, jnp.dtype(dtype).name)
    return one_step_errors_together(case, [pair], problem_name, steps, runs)[pair]


def one_step_errors_together(
    case: Case,
    pairs: list[tuple[str, str]],
    problem_name: str,
    steps: tuple[int, ...],
    runs: dict[str, Trajectory] | None = None,
) -> dict[tuple[str, str], dict[int, float]]:
    """:func:`one_step_errors` for every ``(library, dtype)`` of ``pairs``: the float64
    runs in one compiled program, and at each step every pair's low-precision update and
    its oracle update in another."""
    problem = PROBLEMS[problem_name]
    runs = {} if runs is None else runs
    params64 = problem.init(jnp.float64)
    missing = sorted(({library for library, _ in pairs} | {"optref"}) - set(runs))
    own = [
        Run(build(case, name), problem, params64, case.step_scale, case.extra_args)
        for name in missing
    ]
    # The float64 runs give the inputs of the measured steps: their rounding does not
    # matter, so they compile fast, except a line search's (its branches follow it).
    fast = "value_fn" not in case.extra_args
    trajectories = run_trajectories(own, max(steps) + 1, fast_compile=fast)
    for name, run in zip(missing, trajectories, strict=True):
        if isinstance(run, Exception):
            raise run
        runs[name] = run
    tx_ref = build(case, "optref")
    ref_template = tx_ref.init(params64)
    extra_names = tuple(a for a in case.extra_args if a != "value_fn")
    setups = []
    for library, dtype in pairs:
        tx_low = build(case, library)
        low_template = tx_low.init(_cast(params64, dtype))
        ref_low_template = tx_ref.init(_cast(params64, dtype))
        same_layout = flatten_state(low_template).keys() == flatten_state(ref_template).keys()
        setups.append(
            (library, jnp.dtype(dtype), tx_low, low_template, ref_low_template, same_layout)
        )
    errors: dict[tuple[str, str], dict[int, float]] = {pair: {} for pair in pairs}
    for step in steps:
        calls = []
        for library, dtype, tx_low, low_template, ref_low_template, same_layout in setups:
            grads, params = runs[library].grads[step], runs[library].params[step]
            before = runs[library].states[step - 1] if step > 0 else low_template
            g_low, p_low = _cast(grads, dtype), _cast(params, dtype)
            s_low = graft_state(low_template, flatten_state(before))
            extra_low = extra_arguments(extra_names, problem, p_low, g_low)
            g_up, p_up = _cast(g_low, jnp.float64), _cast(p_low, jnp.float64)
            if same_layout:
                s_rounded = s_low
            else:
                ref_before = runs["optref"].states[step - 1] if step > 0 else ref_low_template
                s_rounded = graft_state(ref_low_template, flatten_state(ref_before))
            s_up = graft_state(ref_template, flatten_state(s_rounded))
            extra_up = extra_arguments(extra_names, problem, p_up, g_up)
            calls.append((update_once, (tx_low, g_low, s_low, p_low, extra_low, None)))
            calls.append((update_once, (tx_ref, g_up, s_up, p_up, extra_up, None)))
        results = call_together(calls)
        for k, (library, dtype, *_) in enumerate(setups):
            low, ref = results[2 * k], results[2 * k + 1]
            for result in (low, ref):
                if isinstance(result, Exception):
                    raise result
            errors[(library, dtype.name)][step] = units_of_epsilon(low[0], ref[0], dtype)
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
    warning where its error is both above the bound and over four times optref's. Not
    measured for a case whose updates hold random numbers (``draws_random_numbers``: each
    dtype draws its own) or that calls the loss (a line search).
    """
    if "value_fn" in case.extra_args or case.draws_random_numbers:
        return []
    problem = problem or case.problems[0]
    findings = []
    # Where Optax's float64 steps differ from optref's on purpose, its error against the
    # oracle measures that difference too; the finding says so.
    cause = applicable_deviation(case, "float64")
    present = [lib for lib in libraries if lib == "optref" or case.optax is not None]
    pairs = [(library, jnp.dtype(dtype).name) for dtype in dtypes for library in present]
    errors = one_step_errors_together(case, pairs, problem, steps)
    for dtype in dtypes:
        measured = {library: errors[(library, jnp.dtype(dtype).name)] for library in present}
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
            worst = max(measured["optax"], key=lambda step: measured["optax"][step])
            if theirs > LOW_PRECISION_BOUND and theirs > 4 * max(ours, 1.0):
                findings.append(
                    Finding(
                        case=case.name,
                        check="low_precision",
                        severity="warning",
                        library="optax",
                        summary=f"Optax's one-step {dtype} error is {theirs:.3g} eps, optref's "
                        f"{ours:.3g} eps on {problem}"
                        + (f" (the oracle computes another map: {cause.reason})" if cause else ""),
                        link=cause.link if cause else "",
                        backend=backend,
                        dtype=dtype,
                        problem=problem,
                        step=worst,
                        measured=measured,
                        reproducer=optax_low_precision_reproducer(
                            case, problem, jnp.dtype(dtype), worst
                        ),
                    )
                )
    return findings
