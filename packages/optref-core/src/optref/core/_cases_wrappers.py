"""Conformance cases of the wrappers and of hyperparameter injection."""

from __future__ import annotations

import importlib
from typing import Any

from ._case import Call, Case

__all__ = ["WRAPPER_CASES", "every_other_step", "injected", "rising_decay"]

# Transforms that are not descent directions are applied as params - 0.01 * updates.
_T = -0.01

ADAM = Call("optref.core.adam", "optax.adam", {"learning_rate": 0.01})
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
    **kwargs: Any,
) -> Case:
    return Case(
        f"core.inject_hyperparams-{name}",
        "optref.core._cases_wrappers.injected",
        {"inject": "optref.core.inject_hyperparams", "factory": f"optref.core.{factory}", **kwargs},
        "optref.core._cases_wrappers.injected",
        optax_kwargs={
            "inject": "optax.inject_hyperparams",
            "factory": f"optax.{factory}",
            **kwargs,
        },
        hyperparameters=hyperparameters,
        wrapper_invariance=wrapper_invariance,
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
]


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def injected(inject: str, factory: str, **kwargs: Any) -> Any:
    """``inject(factory)(**kwargs)``, the two named by dotted path (for either library).

    $$T = \\mathrm{inject}(\\mathrm{factory})(\\ldots)$$

    Lets a case name an injected optimizer: the runner calls it with optref's names for
    optref and with Optax's (``optax.inject_hyperparams``, ``optax.adam``) for Optax.
    """
    return _resolve(inject)(_resolve(factory))(**kwargs)


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
