"""Conformance cases of optref-linesearch against Optax (plain data; run by optref.audit).

The line searches are exercised through :func:`lbfgs`, whose chain feeds them a descent
direction, as Optax composes it. In the cases optref's line search runs with
``differentiable=True`` (the bounded loop, the same numbers as Optax's ``while_loop``),
so the differentiability check can go through it in reverse mode; Optax's cannot, which
the check reports as an Optax finding (Optax issue #1201). The stand-alone line searches
(after SGD) and the default ``while_loop`` form are cross-checked in
``tests/test_linesearch_optax.py``.

The differentiability check runs on a case's first problem and compares with finite
differences. L-BFGS scales its first step by $\\min(1, 1/\\lVert g_0\\rVert)$ under
``stop_gradient`` (a heuristic outside the map, Optax issue #1189), so the derivative is
exact only where $\\lVert g_0\\rVert < 1$: the cases with the scaled first step start with
``logistic``, the runner's only such problem. Logistic regression converges within about
17 steps, after which its curvature pairs are rounding noise where optref and Optax
differ on purpose (``LBFGS_DEGENERATE_PAIRS``); those cases run 15 steps, and
``lbfgs-zoom-to_convergence`` runs on to show the difference.
"""

from __future__ import annotations

from optref.core.conformance import Call, Case, Deviation

__all__ = ["CASES", "Call", "Case", "Deviation"]

EXTRA = ("value", "grad", "value_fn")

LBFGS_DEGENERATE_PAIRS = Deviation(
    check="float64",
    reason=(
        "At convergence the curvature pairs are rounding noise. When the newest pair "
        "carries no curvature (<s, y> = 0 after a zero step, or in cancellation), Optax "
        "scales the initial inverse Hessian by gamma = 1 (if y = 0) or 0 (if not), and it "
        "keeps pairs with a negative or, in float32, an overflowing 1 / <s, y>; optref "
        "rejects pairs with <s, y> <= eps |s| |y| and takes gamma from the newest reliable "
        "pair."
    ),
    link="https://github.com/google-deepmind/optax/issues/1203",
)

LBFGS_COMPLEX_GRADIENT = Deviation(
    check="float64",
    reason=(
        "For complex params the descent gradient is the conjugate of jax.grad's (Optax's "
        "own convention for the gradient passed to update). optref's line searches store "
        "that gradient and value_and_grad_from_state returns it; Optax's store jax.grad's "
        "unconjugated one, so the state's grad differs by a conjugation, and in Optax's own "
        "loop (value and grad from the state) its lbfgs() stalls on the complex quadratic "
        "at a loss of 27.7 after 30 steps (from 61.8), where optref's reaches 5e-46."
    ),
    link="https://github.com/google-deepmind/optax/issues/1141",
)

LBFGS_FIRST_STEP_LEAK = Deviation(
    check="differentiability",
    reason=(
        "Optax 0.2.4 computes the first step's scale min(1, 1/|g0|) without "
        "stop_gradient, so a derivative through the optimizer also flows through that "
        "heuristic: d(u0)/d(g0) gains -g0 d(1/|g0|)/d(g0) where |g0| > 1 (and is NaN at "
        "g0 = 0). optref holds the scale fixed, as Optax does from 0.2.5."
    ),
    link="https://github.com/google-deepmind/optax/issues/1189",
    optax_versions="==0.2.4",
)

LBFGS_UNSCALED_FIRST_STEP = Deviation(
    check="first_step",
    reason=(
        "Optax before 0.2.4 does not scale the first L-BFGS step: with no curvature pair "
        "its initial inverse Hessian is the identity, so u0 = -g0 where optref (and Optax "
        "from 0.2.4) takes u0 = -min(1, 1/|g0|) g0."
    ),
    optax_versions="<0.2.4",
)


def _first_step_deviations(kwargs: dict) -> tuple[Deviation, ...]:
    """The deviations of a case whose first step is scaled (``scale_init_precond``)."""
    if kwargs.get("scale_init_precond", True) is False:
        return ()
    return (LBFGS_FIRST_STEP_LEAK, LBFGS_UNSCALED_FIRST_STEP)


def _search(name: str, **kwargs: object) -> tuple[Call, Call]:
    """A line search for optref (bounded loop) and for Optax, with ``kwargs``."""
    return (
        Call(f"optref.linesearch.{name}", f"optax.{name}", {**kwargs, "differentiable": True}),
        Call(f"optref.linesearch.{name}", f"optax.{name}", dict(kwargs)),
    )


def _lbfgs_case(
    name: str,
    linesearch: tuple[Call, Call] | None,
    problems: tuple[str, ...],
    steps: int = 15,
    deviations: tuple[Deviation, ...] = (),
    complex_params: bool = False,
    **kwargs: object,
) -> Case:
    ours, theirs = linesearch if linesearch is not None else (None, None)
    return Case(
        f"linesearch.lbfgs-{name}",
        "optref.linesearch.lbfgs",
        {**kwargs, "linesearch": ours},
        "optax.lbfgs",
        optax_kwargs={**kwargs, "linesearch": theirs},
        problems=problems,
        steps=steps,
        extra_args=EXTRA if linesearch is not None else (),
        deviations=(*deviations, *_first_step_deviations(kwargs)),
        complex_params=complex_params,
        wrapper_invariance=False,
    )


def _scale_by_lbfgs_case(suffix: str, problems: tuple[str, ...], **kwargs: object) -> Case:
    """The direction alone, applied as params - 0.1 * direction."""
    return Case(
        f"linesearch.scale_by_lbfgs{suffix}",
        "optref.linesearch.scale_by_lbfgs",
        kwargs,
        "optax.scale_by_lbfgs",
        step_scale=-0.1,
        problems=problems,
        complex_params=True,
        steps=20,
        wrapper_invariance=False,
        deviations=_first_step_deviations(kwargs),
    )


ZOOM = _search("scale_by_zoom_linesearch", max_linesearch_steps=20, initial_guess_strategy="one")

# wrapper_invariance=False: the runner's inject_hyperparams form would inject memory_size,
# an int that sets the memory's shape, as a traced array, which neither library accepts
# (Optax fails on its `memory_size < 1` check). The package tests check
# chain(identity(), .) and inject_hyperparams(., static_args=...) instead.
CASES: list[Case] = [
    # L-BFGS with its default line search (zoom, initial guess 1).
    _lbfgs_case(
        "zoom",
        ZOOM,
        ("logistic", "quadratic", "ill_conditioned_quadratic", "rosenbrock", "mlp"),
    ),
    _lbfgs_case("zoom-to_convergence", ZOOM, ("logistic",), 30, (LBFGS_DEGENERATE_PAIRS,)),
    # Complex params: the line search's stored gradient (see LBFGS_COMPLEX_GRADIENT).
    _lbfgs_case(
        "zoom-complex",
        ZOOM,
        ("quadratic",),
        3,
        (LBFGS_COMPLEX_GRADIENT,),
        complex_params=True,
        # |g0| > 1 on the quadratic: with the first step scaled, the derivative (the
        # scale held fixed) could not be compared with finite differences.
        scale_init_precond=False,
    ),
    _lbfgs_case(
        "zoom-memory3",
        ZOOM,
        ("logistic", "rosenbrock"),
        memory_size=3,
    ),
    _lbfgs_case(
        "zoom-keep-no_approx",
        _search(
            "scale_by_zoom_linesearch",
            max_linesearch_steps=15,
            initial_guess_strategy="keep",
            approx_dec_rtol=None,
            max_learning_rate=2.0,
        ),
        ("logistic", "mlp"),
    ),
    _lbfgs_case(
        "zoom-unscaled",
        ZOOM,
        ("rosenbrock", "ill_conditioned_quadratic"),
        scale_init_precond=False,
    ),
    _lbfgs_case(
        "backtracking",
        _search("scale_by_backtracking_linesearch", max_backtracking_steps=20),
        ("logistic", "rosenbrock"),
    ),
    _lbfgs_case(
        "backtracking-store_grad",
        _search(
            "scale_by_backtracking_linesearch",
            max_backtracking_steps=20,
            store_grad=True,
            decrease_factor=0.5,
        ),
        ("logistic", "mlp"),
    ),
    # No line search: a fixed learning rate.
    _lbfgs_case("no_linesearch", None, ("logistic", "quadratic"), 20, learning_rate=0.1),
    _scale_by_lbfgs_case("", ("logistic", "quadratic", "mlp")),
    _scale_by_lbfgs_case("-memory2", ("logistic", "rosenbrock"), memory_size=2),
    # Unscaled, a fixed step of 0.1 diverges on Rosenbrock: convex problems only.
    _scale_by_lbfgs_case("-unscaled", ("quadratic",), scale_init_precond=False),
]
