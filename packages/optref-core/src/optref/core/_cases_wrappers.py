"""Conformance cases of the wrappers and of hyperparameter injection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

from ._case import Call, Case, resolve_name

__all__ = [
    "WRAPPER_CASES",
    "combined",
    "every_other_step",
    "injected",
    "leaf_shrinkage",
    "rising_decay",
    "tree_shrinkage",
]

# Transforms that are not descent directions are applied as params - 0.01 * updates.
_T = -0.01

ADAM = Call("optref.core.adam", "optax.adam", {"learning_rate": 0.01})
CLIP = Call("optref.core.clip_by_global_norm", "optax.clip_by_global_norm", {"max_norm": 1.0})
SCALE_BY_ADAM = Call("optref.core.scale_by_adam", "optax.scale_by_adam")
_DECAYING = Call(
    "optref.core._cases_kernel.decaying_step", "optref.core._cases_kernel.decaying_step"
)
_RISING = Call(
    "optref.core._cases_wrappers.rising_decay", "optref.core._cases_wrappers.rising_decay"
)
_EVERY_OTHER = Call(
    "optref.core._cases_wrappers.every_other_step", "optref.core._cases_wrappers.every_other_step"
)


def _injected_case(
    name: str,
    factory: str,
    hyperparameters: tuple[str, ...] = (),
    wrapper_invariance: bool = True,
    inject: str = "inject_hyperparams",
    problems: tuple[str, ...] = ("quadratic", "rosenbrock", "mlp"),
    **kwargs: Any,
) -> Case:
    return Case(
        f"core.{inject}-{name}",
        "optref.core._cases_wrappers.injected",
        {"inject": f"optref.core.{inject}", "factory": f"optref.core.{factory}", **kwargs},
        "optref.core._cases_wrappers.injected",
        optax_kwargs={"inject": f"optax.{inject}", "factory": f"optax.{factory}", **kwargs},
        hyperparameters=hyperparameters,
        wrapper_invariance=wrapper_invariance,
        problems=problems,
    )


def _helper(name: str, **kwargs: Any) -> Call:
    """A Call of a helper below, the same function for both libraries."""
    dotted = f"optref.core._cases_wrappers.{name}"
    return Call(dotted, dotted, kwargs)


def _combined_case(combinator: str, members: tuple[Any, ...]) -> Case:
    # Injection cannot take transformations as hyperparameters: no injected form.
    helper = "optref.core._cases_wrappers.combined"
    return Case(
        f"core.{combinator}",
        helper,
        {"combinator": f"optref.core.{combinator}", "members": members},
        helper,
        optax_kwargs={"combinator": f"optax.{combinator}", "members": members},
        problems=("quadratic",),
        steps=20,
        wrapper_invariance=False,
    )


def _stateless_case(factory: str, helper: str) -> Case:
    # f is a callable, which injection would take for a schedule: no injected form.
    return Case(
        f"core.{factory}",
        f"optref.core.{factory}",
        {"f": _helper(helper, rate=0.1)},
        f"optax.{factory}",
        step_scale=_T,
        problems=("quadratic",),
        steps=20,
        wrapper_invariance=False,
    )


WRAPPER_CASES: list[Case] = [
    Case(
        "core.apply_if_finite",
        "optref.core.apply_if_finite",
        {"inner": ADAM, "max_consecutive_errors": 3},
        "optax.apply_if_finite",
    ),
    Case(
        "core.apply_every",
        "optref.core.apply_every",
        {"k": 3},
        "optax.apply_every",
        step_scale=_T,
        complex_params=True,
    ),
    Case(
        "core.MultiSteps",
        "optref.core.MultiSteps",
        {"opt": ADAM, "every_k_schedule": 3},
        "optax.MultiSteps",
    ),
    Case(
        "core.MultiSteps-sum",
        "optref.core.MultiSteps",
        {"opt": ADAM, "every_k_schedule": 2, "use_grad_mean": False},
        "optax.MultiSteps",
    ),
    Case("core.flatten", "optref.core.flatten", {"inner": ADAM}, "optax.flatten"),
    # A condition is a callable, which injection (in both libraries) would take for a
    # schedule unless named in static_args, so the injected form is not comparable.
    Case(
        "core.conditionally_mask",
        "optref.core.conditionally_mask",
        {"inner": ADAM, "should_transform_fn": _EVERY_OTHER},
        "optax.conditionally_mask",
        wrapper_invariance=False,
    ),
    # The skipped steps pass the gradient through: with a direction (not a step) inside,
    # every step is a small descent step.
    Case(
        "core.conditionally_transform",
        "optref.core.conditionally_transform",
        {"inner": SCALE_BY_ADAM, "should_transform_fn": _EVERY_OTHER},
        "optax.conditionally_transform",
        step_scale=_T,
        wrapper_invariance=False,
    ),
    _injected_case("adam", "adam", ("learning_rate", "b1"), learning_rate=0.01, b1=0.9),
    # Injected again, the schedules would drive the outer injection, whose values the inner
    # one (reading its own state) does not take: not a form that should be invariant.
    _injected_case(
        "adam-schedules", "adam", wrapper_invariance=False, learning_rate=_DECAYING, b1=_RISING
    ),
    _injected_case(
        "adamw", "adamw", ("learning_rate", "weight_decay"), learning_rate=0.01, weight_decay=0.05
    ),
    _injected_case(
        "sgd-momentum", "sgd", ("learning_rate", "momentum"), learning_rate=0.01, momentum=0.9
    ),
    _injected_case(
        "adam",
        "adam",
        ("b1",),
        wrapper_invariance=False,  # a schedule again: as adam-schedules above
        inject="inject_stateful_hyperparams",
        problems=("mlp",),
        learning_rate=_DECAYING,
        b1=0.85,
    ),
    _combined_case("chain", (CLIP, ADAM)),
    _combined_case("named_chain", (("clip", CLIP), ("adam", ADAM))),
    Case(
        "core.identity",
        "optref.core.identity",
        {},
        "optax.identity",
        step_scale=_T,
        problems=("quadratic",),
        steps=10,
        complex_params=True,
    ),
    Case(
        "core.set_to_zero",
        "optref.core.set_to_zero",
        {},
        "optax.set_to_zero",
        problems=("quadratic",),
        steps=10,
        complex_params=True,
    ),
    _stateless_case("stateless", "tree_shrinkage"),
    _stateless_case("stateless_with_tree_map", "leaf_shrinkage"),
]


def injected(inject: str, factory: str, **kwargs: Any) -> Any:
    """``inject(factory)(**kwargs)``, the two named by dotted path (for either library).

    $$T = \\mathrm{inject}(\\mathrm{factory})(\\ldots)$$

    Lets a case name an injected optimizer: the runner calls it with optref's names for
    optref and with Optax's (``optax.inject_hyperparams``, ``optax.adam``) for Optax.
    """
    return resolve_name(inject)(resolve_name(factory))(**kwargs)


def rising_decay(start: float = 0.8, end: float = 0.95, rate: float = 0.1):
    """A momentum that rises from ``start`` toward ``end``: a schedule for ``b1``.

    $$\\beta(t) = e - (e - s)\\,/\\,(1 + r\\,t)$$
    """

    def schedule(count):
        return end - (end - start) / (1 + rate * count)

    return schedule


def every_other_step():
    """A condition for the conditional wrappers: true at even steps, ``t mod 2 = 0``."""

    def condition(step):
        return step % 2 == 0

    return condition


def combined(combinator: str, members: Sequence[Any]) -> Any:
    """``combinator(*members)``: ``chain`` or ``named_chain`` (named by dotted path, for
    either library) of members that the case builds.

    $$T = \\mathrm{combinator}(T_1, \\ldots, T_n)$$
    """
    return resolve_name(combinator)(*members)


def tree_shrinkage(rate: float = 0.1) -> Callable[[Any, Any], Any]:
    """A function for ``stateless``: the update plus a multiple of the params.

    $$f(u, p) = u + r\\,p$$
    """

    def f(updates: Any, params: Any) -> Any:
        return jax.tree.map(lambda u, p: u + rate * p, updates, params)

    return f


def leaf_shrinkage(rate: float = 0.1) -> Callable[[Any, Any], Any]:
    """A function for ``stateless_with_tree_map``, leaf by leaf: $f(u, p) = u + r\\,p$."""

    def f(update: Any, param: Any) -> Any:
        return update + rate * param

    return f
