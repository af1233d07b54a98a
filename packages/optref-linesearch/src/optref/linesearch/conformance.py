"""Conformance cases of optref-linesearch against Optax (plain data; run by optref.audit).

The line searches are exercised through :func:`lbfgs`, whose chain feeds them a descent
direction, as Optax composes it. In the cases optref's line search runs with
``differentiable=True`` (the bounded loop, the same numbers as Optax's
``while_loop``), so the differentiability check can go through it in reverse mode;
Optax's cannot, which the check reports as an Optax finding. The stand-alone line
searches (after SGD) and the default ``while_loop`` form are cross-checked in
``tests/test_linesearch_optax.py``.
"""

from __future__ import annotations

from optref.core.conformance import Call, Case, Deviation

__all__ = ["CASES", "Call", "Case", "Deviation"]

EXTRA = ("value", "grad", "value_fn")

LBFGS_DIFFERENTIABILITY = Deviation(
    check="differentiability",
    reason=(
        "Optax's line searches run in an unbounded while_loop, which reverse mode cannot "
        "differentiate (optref offers differentiable=True, a bounded loop); and its "
        "scale_by_lbfgs divides 0 by 0 in branches that jnp.where does not take (the "
        "scale <s, y> / |y|^2 and the weight 1 / <s, y> of a zero curvature pair, at a "
        "stationary point or after a zero step), which makes gradients through it NaN "
        "there; optref's divisions are safe."
    ),
    link="https://github.com/google-deepmind/optax/issues/1201",
)


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


def _zoom(**kwargs: object) -> tuple[Call, Call]:
    """The zoom line search for optref (bounded loop) and for Optax, with ``kwargs``."""
    return (
        Call(
            "optref.linesearch.scale_by_zoom_linesearch",
            "optax.scale_by_zoom_linesearch",
            {**kwargs, "differentiable": True},
        ),
        Call(
            "optref.linesearch.scale_by_zoom_linesearch",
            "optax.scale_by_zoom_linesearch",
            dict(kwargs),
        ),
    )


def _backtracking(**kwargs: object) -> tuple[Call, Call]:
    """The backtracking line search for optref (bounded loop) and for Optax."""
    return (
        Call(
            "optref.linesearch.scale_by_backtracking_linesearch",
            "optax.scale_by_backtracking_linesearch",
            {**kwargs, "differentiable": True},
        ),
        Call(
            "optref.linesearch.scale_by_backtracking_linesearch",
            "optax.scale_by_backtracking_linesearch",
            dict(kwargs),
        ),
    )


def _lbfgs_case(
    name: str,
    linesearch: tuple[Call, Call],
    problems: tuple[str, ...],
    deviations: tuple[Deviation, ...] = (),
    **kwargs: object,
) -> Case:
    ours, theirs = linesearch
    return Case(
        f"linesearch.lbfgs-{name}",
        "optref.linesearch.lbfgs",
        {**kwargs, "linesearch": ours},
        "optax.lbfgs",
        optax_kwargs={**kwargs, "linesearch": theirs},
        problems=problems,
        steps=30,
        extra_args=EXTRA,
        deviations=(LBFGS_DIFFERENTIABILITY, *deviations),
        wrapper_invariance=False,
    )


# wrapper_invariance=False: the runner's inject_hyperparams form would inject memory_size,
# an int that sets the memory's shape, as a traced array, which neither library accepts
# (Optax fails on its `memory_size < 1` check). The package tests check
# chain(identity(), lbfgs()) and inject_hyperparams(lbfgs, static_args="memory_size").
CASES: list[Case] = [
    # L-BFGS with its default line search (zoom, initial guess 1).
    _lbfgs_case(
        "zoom",
        _zoom(max_linesearch_steps=20, initial_guess_strategy="one"),
        ("quadratic", "ill_conditioned_quadratic", "rosenbrock", "mlp"),
    ),
    # Logistic regression converges within 20 steps; after that the pairs are rounding
    # noise (a zero step, s = y = 0), where optref's gamma comes from the last reliable
    # pair and Optax's is 1. (The other cases stay off it for that reason.)
    _lbfgs_case(
        "zoom-to_convergence",
        _zoom(max_linesearch_steps=20, initial_guess_strategy="one"),
        ("logistic",),
        (LBFGS_DEGENERATE_PAIRS,),
    ),
    _lbfgs_case(
        "zoom-memory3",
        _zoom(max_linesearch_steps=20, initial_guess_strategy="one"),
        ("ill_conditioned_quadratic", "rosenbrock"),
        memory_size=3,
    ),
    _lbfgs_case(
        "zoom-keep-no_approx",
        _zoom(
            max_linesearch_steps=15,
            initial_guess_strategy="keep",
            approx_dec_rtol=None,
            max_learning_rate=2.0,
        ),
        ("rosenbrock", "mlp"),
    ),
    _lbfgs_case(
        "zoom-unscaled",
        _zoom(max_linesearch_steps=20, initial_guess_strategy="one"),
        ("ill_conditioned_quadratic", "mlp"),
        scale_init_precond=False,
    ),
    _lbfgs_case(
        "backtracking",
        _backtracking(max_backtracking_steps=20),
        ("quadratic", "rosenbrock"),
    ),
    _lbfgs_case(
        "backtracking-store_grad",
        _backtracking(max_backtracking_steps=20, store_grad=True, decrease_factor=0.5),
        ("ill_conditioned_quadratic", "mlp"),
    ),
    # No line search: a fixed learning rate.
    Case(
        "linesearch.lbfgs-no_linesearch",
        "optref.linesearch.lbfgs",
        {"learning_rate": 0.1, "linesearch": None},
        "optax.lbfgs",
        problems=("quadratic", "rosenbrock"),
        steps=30,
        hyperparameters=("learning_rate",),
        deviations=(LBFGS_DIFFERENTIABILITY,),
        wrapper_invariance=False,
    ),
    # The direction alone, applied as params - 0.1 * direction.
    Case(
        "linesearch.scale_by_lbfgs",
        "optref.linesearch.scale_by_lbfgs",
        {},
        "optax.scale_by_lbfgs",
        step_scale=-0.1,
        complex_params=True,
        steps=30,
        deviations=(LBFGS_DIFFERENTIABILITY,),
        wrapper_invariance=False,
    ),
    Case(
        "linesearch.scale_by_lbfgs-memory2",
        "optref.linesearch.scale_by_lbfgs",
        {"memory_size": 2},
        "optax.scale_by_lbfgs",
        step_scale=-0.1,
        problems=("quadratic", "rosenbrock"),
        complex_params=True,
        steps=30,
        deviations=(LBFGS_DIFFERENTIABILITY,),
        wrapper_invariance=False,
    ),
    # Unscaled, a fixed step of 0.1 diverges on Rosenbrock: convex problems only.
    Case(
        "linesearch.scale_by_lbfgs-unscaled",
        "optref.linesearch.scale_by_lbfgs",
        {"scale_init_precond": False},
        "optax.scale_by_lbfgs",
        step_scale=-0.1,
        problems=("quadratic", "mlp"),
        complex_params=True,
        steps=30,
        deviations=(LBFGS_DIFFERENTIABILITY,),
        wrapper_invariance=False,
    ),
]
