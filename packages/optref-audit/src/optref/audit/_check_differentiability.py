"""Differentiability: the loss after K steps, differentiated with respect to the initial
params and to hyperparameters, is finite and agrees with forward mode and with central
finite differences in float64; and Optax's derivative agrees with optref's.

For a target $x$ (the params, or one hyperparameter) and a direction $v$, the check
computes the directional derivative $f'(x)v$ of $f$ (the loss after K steps) three ways:
reverse mode $\\langle \\nabla f(x), v\\rangle$, forward mode (``jax.jvp``), and central
differences at two step sizes,

$$D(h) = \\frac{f(x + hv) - f(x - hv)}{2h},
\\qquad D_R = \\frac{4D(h) - D(2h)}{3} \\quad\\text{(Richardson)}.$$

$D(h) - f'(x)v \\approx c h^2$, so $|D(2h) - D(h)| \\approx 3|c|h^2$ estimates the
truncation error, and $\\varepsilon \\max|f| / h$ the rounding error; both enter the
tolerance, so a kink or rounding noise in $f$ (an exact-zero derivative) is not mistaken
for a wrong derivative, and a smooth $f$ is held to ``FD_RTOL``. The step is relative to
the distance from the value to the nearest boundary of its range, so $b_2 = 0.999$ is
stepped by $10^{-7}$, never past 1. The differences, the step and the estimates are
optref-core's (:class:`optref.core.conformance.CentralDifference`), shared with the
packages' own hypergradient tests.

Where optref holds a heuristic fixed (``stop_gradient`` on L-BFGS's first-step scaling,
numerics rule 2), finite differences see the heuristic move and optref does not; the
cross-library comparison (forward mode of both) shows where Optax's derivative differs
from the reference's. The first-step check compares the derivative of the first update
on every problem (``_first_step``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optref.core.conformance import (
    MULTIPLES,
    RELATIVE_STEP,
    Case,
    CentralDifference,
    difference_step,
)

from ._cases import build, resolve_name
from ._findings import Finding
from ._problems import PROBLEMS, descent_gradient
from ._reproducer import optax_derivative_reproducer
from ._together import call_together
from ._trajectory import extra_arguments, step_params
from ._versions import applicable_deviation

__all__ = ["check_differentiability", "derivatives"]

#: Agreement of reverse mode with forward mode, relative to the sum of the magnitudes of
#: the terms of the directional derivative (what rounding scales with).
AD_RTOL = 1e-9
#: Agreement of Optax's forward-mode derivative with optref's, on the same scale.
CROSS_RTOL = 1e-8
#: Agreement of forward mode with the extrapolated central difference, besides the
#: truncation and rounding estimates (:meth:`CentralDifference.tolerance`).
FD_RTOL = 1e-6


def _loss_after(
    case: Case, library: str, problem_name: str, steps: int
) -> Callable[[Any, dict[str, jax.Array]], jax.Array]:
    problem = PROBLEMS[problem_name]

    def loss(params: Any, hyper: dict[str, jax.Array]) -> jax.Array:
        tx = build(case, library, **hyper)

        def step(carry: tuple[Any, Any], _: None) -> tuple[tuple[Any, Any], None]:
            params, state = carry
            grads = descent_gradient(problem.loss, params)
            extra = extra_arguments(case.extra_args, problem, params, grads)
            updates, state = tx.update(grads, state, params, **extra)
            return (step_params(params, updates, case.step_scale), state), None

        carry = (params, tx.init(params))
        try:
            # One traced step for all K (a line search's loop is compiled once, not K
            # times), where the state keeps its types across a step.
            carry, _ = jax.lax.scan(step, carry, length=steps)
        except TypeError:
            for _ in range(steps):
                carry, _ = step(carry, None)
        return problem.loss(carry[0])

    return loss


def _axpy(a: float, v: Any, x: Any) -> Any:
    return jax.tree.map(lambda xi, vi: xi + a * vi, x, v)


def _vdot(a: Any, b: Any) -> jax.Array:
    return sum(
        (jnp.vdot(x, y).real for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)),
        start=jnp.zeros([]),
    )


def _abs_vdot(a: Any, b: Any) -> jax.Array:
    return sum(
        (
            jnp.sum(jnp.abs(jnp.conj(x) * y))
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
        ),
        start=jnp.zeros([]),
    )


def derivative_programs(
    f: Callable[[Any], jax.Array], x: Any, directions: list[Any], steps: list[float]
) -> list[tuple[Callable[..., Any], tuple]]:
    """The two computations behind :func:`derivatives`, as ``(function, arguments)`` for
    :func:`~optref.audit._together.call_together`: forward mode along every direction
    (``vmap`` over tangents) with ``f`` at ``x ± h v`` and ``x ± 2h v`` (``vmap`` over
    points, ``h`` the direction's entry of ``steps``); and the gradient."""
    tangents = jax.tree.map(lambda *leaves: jnp.stack(leaves), *directions)
    hs = jnp.asarray(steps)

    def evaluate(x: Any, tangents: Any, hs: jax.Array) -> tuple[jax.Array, jax.Array]:
        forward = jax.vmap(lambda t: jax.jvp(f, (x,), (t,))[1])(tangents)
        offsets = jnp.asarray(MULTIPLES)[None, :] * hs[:, None]  # (direction, multiple)

        def at(t: Any, offsets: jax.Array) -> jax.Array:
            return jax.vmap(lambda a: f(_axpy(a, t, x)))(offsets)

        return forward, jax.vmap(at)(tangents, offsets)

    return [(evaluate, (x, tangents, hs)), (jax.grad(f), (x,))]


def derivative_results(
    directions: list[Any], steps: list[float], evaluated: Any, gradient: Any
) -> list[dict[str, Any]]:
    """The results of :func:`derivatives` from the outputs of its two programs
    (``gradient`` the exception reverse mode raised, where it did)."""
    if isinstance(evaluated, Exception):
        raise evaluated
    forward, values = jax.device_get(evaluated)
    reverse_error = ""
    if isinstance(gradient, Exception):  # Optax's line searches: reverse mode through while_loop
        reverse_error, gradient = f"{type(gradient).__name__}: {gradient}"[:300], None
    gradient_finite = gradient is None or all(
        bool(np.all(np.isfinite(np.asarray(g)))) for g in jax.tree.leaves(gradient)
    )
    results = []
    for i, (v, h) in enumerate(zip(directions, steps, strict=True)):
        d: dict[str, Any] = {"forward": float(forward[i]), "step": h}
        if reverse_error:
            d["reverse_error"] = reverse_error
        elif gradient is not None:
            d["reverse"] = float(_vdot(gradient, v))
            d["terms"] = float(_abs_vdot(gradient, v))
        difference = CentralDifference.from_values(h, values[i])
        d["central"], d["central_2h"] = difference.central, difference.central_2h
        d["extrapolated"] = difference.extrapolated
        d["max_abs_f"] = difference.max_abs_f
        d["finite"] = bool(gradient_finite and np.isfinite(d["forward"]))
        results.append(d)
    return results


def derivatives(
    f: Callable[[Any], jax.Array],
    x: Any,
    directions: list[Any],
    steps: list[float],
) -> list[dict[str, Any]]:
    """The directional derivatives of ``f`` at ``x`` along each of ``directions``.

    One compiled program gives forward mode along every direction and ``f`` at
    ``x ± h v`` and ``x ± 2h v``, and the gradient (:func:`derivative_programs`). Each
    result has ``forward``; ``reverse`` and ``terms`` (the sum of the magnitudes of the
    terms of $\\langle\\nabla f, v\\rangle$) or ``reverse_error``; ``central``,
    ``central_2h``, ``extrapolated`` and ``max_abs_f``; and ``finite``.
    """
    evaluated, gradient = call_together(
        derivative_programs(f, x, directions, steps), fast_compile=True
    )
    return derivative_results(directions, steps, evaluated, gradient)


def disagreement(d: dict[str, Any]) -> str | None:
    """What is wrong with one target's derivatives, or ``None``.

    Reverse and forward mode must agree to :data:`AD_RTOL` of the sum of the magnitudes
    of the terms; forward mode and the extrapolated central difference to
    :data:`FD_RTOL` of the derivative plus the truncation estimate $2|D(2h) - D(h)|$
    plus the rounding estimate $16\\varepsilon\\max|f|/h$
    (:meth:`optref.core.conformance.CentralDifference.tolerance`).
    """
    if not d["finite"]:
        return "the gradient is not finite"
    forward = d["forward"]
    if "reverse" in d:
        scale = max(abs(d["reverse"]), abs(forward), d["terms"])
        if abs(d["reverse"] - forward) > AD_RTOL * scale:
            return "reverse and forward mode disagree"
    if "extrapolated" in d:
        if not np.isfinite(d["extrapolated"]):
            return "the loss is not finite near the point"
        difference = CentralDifference(d["step"], d["central"], d["central_2h"], d["max_abs_f"])
        d["fd_tolerance"] = difference.tolerance(forward, FD_RTOL)
        if not difference.agrees(forward, FD_RTOL):
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


def _hyperparameters(case: Case, library: str) -> dict[str, jax.Array]:
    kwargs = case.arguments(library)
    defaults = _defaults(case.optref if library == "optref" else case.optax)
    return {
        name: jnp.asarray(kwargs.get(name, defaults.get(name)), jnp.float64)
        for name in case.hyperparameters
    }


def _directions(params: Any, hyper: dict[str, jax.Array]) -> tuple[list, list, list[str]]:
    """One direction per target (a random one for the params, a unit one per
    hyperparameter), each with its difference step."""
    rng = np.random.default_rng(0)
    v_params = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), p.dtype), params)
    zero_hyper = {k: jnp.zeros_like(v) for k, v in hyper.items()}
    zero_params = jax.tree.map(jnp.zeros_like, params)
    flat = np.concatenate([np.abs(np.asarray(p)).ravel() for p in jax.tree.leaves(params)])
    scale = max(float(np.sqrt(np.mean(flat**2))), 1.0)
    directions, steps, names = [(v_params, zero_hyper)], [RELATIVE_STEP * scale], ["params"]
    for name, value in hyper.items():
        directions.append((zero_params, {**zero_hyper, name: jnp.ones_like(value)}))
        steps.append(difference_step(float(value)))
        names.append(name)
    return directions, steps, names


def check_differentiability(
    case: Case,
    libraries: tuple[str, ...] = ("optref", "optax"),
    steps: int = 3,
    backend: str = "cpu",
) -> list[Finding]:
    """Check d(loss after ``steps`` steps)/d(initial params) and /d(each hyperparameter).

    On the case's first problem each library's reverse mode, forward mode and finite
    differences must agree (:func:`disagreement`), and Optax's forward-mode derivatives
    must equal optref's to :data:`CROSS_RTOL`. Where they do not, a deviation recorded
    for this check, or for ``float64`` (the two libraries' steps differ on purpose, so
    their derivatives do), makes it an Optax warning with the deviation's reason and link.
    """
    findings: list[Finding] = []
    libraries = tuple(lib for lib in libraries if lib == "optref" or case.optax is not None)
    deviation = applicable_deviation(case, "differentiability")
    # Where the float64 trajectories differ on purpose, the two libraries compute
    # different maps, and so different derivatives.
    causes = {
        "optax": deviation,
        "both": deviation or applicable_deviation(case, "float64"),
    }

    def report(library: str, target: str, problem: str, text: str, measured: dict) -> None:
        # library: "optref" or "optax" for a library's own derivatives, "both" where
        # Optax's differ from optref's. A recorded deviation explains what Optax does.
        if library == "optref" and deviation is not None:
            return
        cause = causes.get(library)
        explained = cause is not None
        unexplained = library == "optref" or (library == "both" and not explained)
        findings.append(
            Finding(
                case=case.name,
                check="differentiability",
                severity="error" if unexplained else "warning",
                library="optax" if explained else library,  # type: ignore[arg-type]
                summary=f"d(loss after {steps} steps)/d({target}) on {problem}: {text}"
                + (f": {cause.reason}" if cause else ""),
                backend=backend,
                problem=problem,
                measured=measured,
                link=cause.link if cause else "",
                reproducer=""
                if library == "optref"
                else optax_derivative_reproducer(
                    case,
                    problem,
                    steps,
                    target,
                    None if target == "params" else float(_hyperparameters(case, "optax")[target]),
                ),
            )
        )

    problem = case.problems[0]
    params = PROBLEMS[problem].init(jnp.float64)
    forward: dict[str, list[dict]] = {}
    names: list[str] = []
    # Both libraries' derivatives in one compiled program.
    setups, calls = [], []
    for library in libraries:
        hyper = _hyperparameters(case, library)
        directions, hs, names = _directions(params, hyper)
        loss = _loss_after(case, library, problem, steps)
        setups.append((library, directions, hs))
        calls.extend(
            derivative_programs(lambda z, loss=loss: loss(*z), (params, hyper), directions, hs)
        )
    outputs = call_together(calls, fast_compile=True)
    for k, (library, directions, hs) in enumerate(setups):
        evaluated, gradient = outputs[2 * k : 2 * k + 2]
        if isinstance(evaluated, Exception):  # the library's steps or their derivatives
            text = f"{library}: differentiation raised {type(evaluated).__name__}: {evaluated}"
            report(library, "params", problem, text[:500], {})
            continue
        results = derivative_results(directions, hs, evaluated, gradient)
        forward[library] = results
        for name, d in zip(names, results, strict=True):
            if "reverse_error" in d and library == "optax":
                report(library, name, problem, "Optax: reverse mode raised", d)
                continue
            text = disagreement(d)
            if text is not None:
                report(library, name, problem, f"{library}: {text}", d)
    if len(forward) == 2:
        _compare_libraries(forward, names, problem, report)
    return findings


def _compare_libraries(
    forward: dict[str, list[dict]],
    names: list[str],
    problem: str,
    report: Callable[[str, str, str, str, dict], None],
) -> None:
    for name, ours, theirs in zip(names, forward["optref"], forward["optax"], strict=True):
        a, b = ours["forward"], theirs["forward"]
        if not (np.isfinite(a) and np.isfinite(b)):
            continue  # reported above where it is the first problem; robustness elsewhere
        scale = max(abs(a), abs(b), ours.get("terms", 0.0))
        if abs(a - b) > CROSS_RTOL * scale:
            measured = {"optref_derivative": a, "optax_derivative": b, "rtol": CROSS_RTOL}
            text = f"Optax's derivative {b:.6g} differs from optref's {a:.6g}"
            report("both", name, problem, text, measured)
