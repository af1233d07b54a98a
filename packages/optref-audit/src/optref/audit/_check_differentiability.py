"""Differentiability: the loss after K steps, differentiated with respect to the initial
params and to hyperparameters, is finite and agrees with forward mode and with central
finite differences in float64."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import Case

from ._cases import build, resolve_name
from ._findings import Finding
from ._problems import PROBLEMS, descent_gradient
from ._trajectory import extra_arguments, step_params
from ._versions import applicable_deviation

__all__ = ["check_differentiability", "derivatives"]

#: Agreement of reverse mode with forward mode, and of forward mode with finite differences.
AD_RTOL = 1e-9
FD_RTOL = 1e-5


def _loss_after(
    case: Case, library: str, problem_name: str, steps: int, **hyper: Any
) -> Callable[[Any], jax.Array]:
    problem = PROBLEMS[problem_name]

    def loss(params: Any) -> jax.Array:
        tx = build(case, library, **hyper)
        state = tx.init(params)
        for _ in range(steps):
            grads = descent_gradient(problem.loss, params)
            extra = extra_arguments(case.extra_args, problem, params, grads)
            updates, state = tx.update(grads, state, params, **extra)
            params = step_params(params, updates, case.step_scale)
        return problem.loss(params)

    return loss


def derivatives(
    f: Callable[[Any], jax.Array], x: Any, direction: Any, h: float = 1e-6
) -> dict[str, float]:
    """``<∇f(x), v>`` by reverse mode, forward mode, and central differences of step ``h``
    along ``v``."""
    gradient = jax.grad(f)(x)
    reverse = float(
        sum(
            jnp.vdot(g, v).real
            for g, v in zip(jax.tree.leaves(gradient), jax.tree.leaves(direction), strict=True)
        )
    )
    forward = float(jax.jvp(f, (x,), (direction,))[1])
    plus = jax.tree.map(lambda a, v: a + h * v, x, direction)
    minus = jax.tree.map(lambda a, v: a - h * v, x, direction)
    central = float((f(plus) - f(minus)) / (2 * h))
    finite = all(bool(np.all(np.isfinite(np.asarray(g)))) for g in jax.tree.leaves(gradient))
    return {"reverse": reverse, "forward": forward, "central": central, "finite": finite}


def _disagreement(d: dict[str, float]) -> str | None:
    if not d["finite"] or not np.isfinite(d["forward"]):
        return "the gradient is not finite"
    scale = max(abs(d["forward"]), abs(d["central"]), 1e-8)
    if abs(d["reverse"] - d["forward"]) > AD_RTOL * scale:
        return "reverse and forward mode disagree"
    if abs(d["forward"] - d["central"]) > FD_RTOL * scale:
        return "forward mode and central differences disagree"
    return None


def _defaults(dotted: str | None) -> dict[str, Any]:
    if dotted is None:
        return {}
    signature = inspect.signature(resolve_name(dotted))
    return {
        k: p.default
        for k, p in signature.parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def check_differentiability(
    case: Case,
    libraries: tuple[str, ...] = ("optref", "optax"),
    steps: int = 3,
    backend: str = "cpu",
) -> list[Finding]:
    """Check d(loss after ``steps`` steps)/d(initial params) and /d(each hyperparameter)."""
    problem = case.problems[0]
    params = PROBLEMS[problem].init(jnp.float64)
    direction = jax.tree.map(
        lambda p: jnp.asarray(np.random.default_rng(0).normal(size=p.shape), p.dtype), params
    )
    findings = []
    for library in libraries:
        if library == "optax" and case.optax is None:
            continue
        targets: list[tuple[str, Callable[[Any], jax.Array], Any, Any]] = [
            ("params", _loss_after(case, library, problem, steps), params, direction)
        ]
        kwargs = (
            case.kwargs if library == "optref" or case.optax_kwargs is None else (case.optax_kwargs)
        )
        defaults = _defaults(case.optref if library == "optref" else case.optax)
        for name in case.hyperparameters:
            value = jnp.asarray(kwargs.get(name, defaults.get(name)), jnp.float64)

            def of_hyper(h: jax.Array, name: str = name) -> jax.Array:
                return _loss_after(case, library, problem, steps, **{name: h})(params)

            # A relative step, so that a small hyperparameter (eps) stays in its range.
            targets.append((name, of_hyper, value, jnp.abs(value) + (value == 0)))
        for target, f, x, v in targets:
            try:
                d = derivatives(f, x, v, h=1e-6 if target == "params" else 1e-4)
                problem_text = _disagreement(d)
            except Exception as error:
                d, problem_text = (
                    {"error": f"{type(error).__name__}: {error}"[:500]},
                    ("differentiation raised"),
                )
            if problem_text is None:
                continue
            ours = library == "optref"
            deviation = applicable_deviation(case, "differentiability")
            if ours and deviation is not None:
                continue
            findings.append(
                Finding(
                    case=case.name,
                    check="differentiability",
                    severity="error" if ours else "warning",
                    library=library,
                    summary=f"{library}: d(loss after {steps} steps)/d({target}): {problem_text}"
                    + (f": {deviation.reason}" if deviation and not ours else ""),
                    backend=backend,
                    problem=problem,
                    measured=d,
                    link=deviation.link if deviation and not ours else "",
                )
            )
    return findings
