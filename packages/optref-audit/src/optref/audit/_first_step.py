"""First-step behaviour: the derivative of the first update with respect to the gradient.

At step 0 a transformation has no history, and some set the first step by a heuristic:
L-BFGS scales it by $\\gamma_0 = \\min(1, 1/\\lVert g_0\\rVert)$. Such a heuristic is not
part of the map being differentiated, so optref computes it under ``stop_gradient``
(numerics rule 2): $\\partial u_0/\\partial g_0 = -\\gamma_0 I$, where differentiating
through it would add $-g_0\\,(\\partial\\gamma_0/\\partial g_0)$, a gradient that leaks out
of the heuristic (and is NaN at $g_0 = 0$). Where the two libraries' first updates agree
in value, the check compares the Jacobian-vector products
$\\frac{\\partial u_0}{\\partial g_0} v$ of both in float64 along a fixed random $v$.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import Case

from ._cases import build
from ._findings import Finding
from ._problems import Problem
from ._reproducer import optax_first_step_jvp_reproducer
from ._together import call_together
from ._versions import applicable_deviation

__all__ = [
    "FIRST_STEP_JVP_RTOL",
    "check_first_step_derivative",
    "derivative_error",
    "first_update_jvp",
]

#: Agreement of the two libraries' first-update derivatives (see :func:`derivative_error`).
FIRST_STEP_JVP_RTOL = 1e-8


def first_update_jvp(
    tx: Any, problem: Problem, params: Any, grads: Any, direction: Any, extra_args: tuple
) -> Any:
    """$(u_0, \\frac{\\partial u_0}{\\partial g_0} v)$: forward mode through ``tx``'s first
    update (the ``grad`` extra argument, where the case passes it, moves with the
    gradient). Traceable: the check compiles several of these as one program."""
    state = tx.init(params)

    def first_update(g: Any) -> Any:
        extra: dict[str, Any] = {}
        if "value" in extra_args:
            extra["value"] = problem.loss(params)
        if "grad" in extra_args:
            extra["grad"] = g
        if "value_fn" in extra_args:
            extra["value_fn"] = problem.loss
        return tx.update(g, state, params, **extra)[0]

    return jax.jvp(first_update, (grads,), (direction,))


def _rms(tree: Any) -> float:
    leaves = [np.abs(np.asarray(x, np.complex128)).ravel() for x in jax.tree.leaves(tree)]
    flat = np.concatenate(leaves) if leaves else np.zeros(1)
    return float(np.sqrt(np.mean(flat**2)))


def derivative_error(actual: Any, expected: Any, update: Any, grads: Any, direction: Any) -> float:
    """$\\mathrm{rms}(J_a v - J_e v) / s$, with the scale $s$ the larger of
    $\\mathrm{rms}(J_e v)$ and $\\mathrm{rms}(u_0)\\,\\mathrm{rms}(v) / \\mathrm{rms}(g_0)$, the
    size of the derivative of an update of that size with respect to a gradient of that
    size. Adam's first update, $-\\alpha g/(|g| + \\epsilon)$, has a derivative of about
    $\\alpha\\epsilon/g^2$ that cancels from terms of size $\\alpha/|g|$: measured against
    itself, its rounding would look like a disagreement."""
    difference = jax.tree.map(lambda a, e: np.asarray(a) - np.asarray(e), actual, expected)
    natural = _rms(update) * _rms(direction) / max(_rms(grads), np.finfo(np.float64).tiny)
    scale = max(_rms(expected), natural)
    if scale == 0.0:
        return 0.0 if _rms(difference) == 0.0 else float("inf")
    return _rms(difference) / scale


def check_first_step_derivative(
    case: Case,
    first_steps: list[tuple[Problem, Any, Any]],
    backend: str = "cpu",
    fast_compile: bool = False,
) -> list[Finding]:
    """A finding for each ``(problem, params, grads)`` of ``first_steps`` where Optax's
    $\\partial u_0/\\partial g_0\\,v$ differs from optref's (both libraries on every
    problem in one compiled program, with :data:`~optref.audit._together.FAST_COMPILE`
    where ``fast_compile``)."""
    calls, directions = [], []
    for problem, params, grads in first_steps:
        rng = np.random.default_rng(0)
        params, grads = jax.tree.map(jnp.asarray, (params, grads))
        direction = jax.tree.map(lambda g: jnp.asarray(rng.normal(size=g.shape), g.dtype), grads)
        directions.append(direction)
        for library in ("optref", "optax"):
            tx = build(case, library)
            calls.append(
                (first_update_jvp, (tx, problem, params, grads, direction, case.extra_args))
            )
    results = call_together(calls, fast_compile=fast_compile)
    findings = []
    for k, (problem, _, grads) in enumerate(first_steps):
        ours, theirs = results[2 * k], results[2 * k + 1]
        for result in (ours, theirs):
            if isinstance(result, Exception):
                raise result
        finding = _compare(case, problem, grads, directions[k], ours, theirs, backend)
        findings.extend([finding] if finding is not None else [])
    return findings


def _compare(
    case: Case, problem: Problem, grads: Any, direction: Any, ours: Any, theirs: Any, backend: str
) -> Finding | None:
    (update, ours), (_, theirs) = jax.device_get((ours, theirs))
    error = derivative_error(theirs, ours, update, grads, direction)
    if error <= FIRST_STEP_JVP_RTOL:
        return None
    deviation = applicable_deviation(case, "differentiability")
    gradient_norm = float(
        np.sqrt(sum(np.sum(np.abs(np.asarray(g)) ** 2) for g in jax.tree.leaves(grads)))
    )
    return Finding(
        case=case.name,
        check="first_step",
        severity="warning" if deviation else "error",
        library="optax" if deviation else "both",
        summary=f"first step: d(update)/d(gradient) differs (relative error {error:.3g} > "
        f"{FIRST_STEP_JVP_RTOL:g}) on {problem.name}, where |g0| = {gradient_norm:.3g}"
        + (f": {deviation.reason}" if deviation else ""),
        backend=backend,
        problem=problem.name,
        step=0,
        measured={
            "relative_error": error,
            "rtol": FIRST_STEP_JVP_RTOL,
            "gradient_norm": gradient_norm,
            "optref_jvp": repr(jax.tree.map(lambda x: np.asarray(x).tolist(), ours))[:400],
            "optax_jvp": repr(jax.tree.map(lambda x: np.asarray(x).tolist(), theirs))[:400],
        },
        reproducer=optax_first_step_jvp_reproducer(case, problem.name),
        link=deviation.link if deviation else "",
    )
