"""Conformance cases of the optref-core kernel transforms and the first aliases."""

from __future__ import annotations

from ._case import Call, Case, Deviation

__all__ = ["KERNEL_CASES", "decaying_step"]

# Transforms that are not descent directions are applied as params - 0.01 * updates.
_T = -0.01

OPTIMISTIC_FIRST_STEP = Deviation(
    check="first_step",
    reason=(
        "Optax before 0.2.4 treated the missing previous gradient as zero, so the first "
        "step was (alpha + beta) * g0 instead of alpha * g0."
    ),
    link="https://github.com/google-deepmind/optax/issues/1082",
    optax_versions="<0.2.4",
)

KERNEL_CASES: list[Case] = [
    Case(
        "core.scale",
        "optref.core.scale",
        {"step_size": -0.05},
        "optax.scale",
        complex_params=True,
        hyperparameters=("step_size",),
    ),
    Case(
        "core.scale_by_learning_rate",
        "optref.core.scale_by_learning_rate",
        {"learning_rate": 0.05},
        "optax.scale_by_learning_rate",
        complex_params=True,
        hyperparameters=("learning_rate",),
    ),
    Case(
        "core.scale_by_schedule",
        "optref.core.scale_by_schedule",
        {
            "step_size_fn": Call(
                "optref.core._cases_kernel.decaying_step", "optref.core._cases_kernel.decaying_step"
            )
        },
        "optax.scale_by_schedule",
        complex_params=True,
    ),
    Case(
        "core.trace",
        "optref.core.trace",
        {"decay": 0.9},
        "optax.trace",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay",),
    ),
    Case(
        "core.trace-nesterov",
        "optref.core.trace",
        {"decay": 0.9, "nesterov": True},
        "optax.trace",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay",),
    ),
    Case(
        "core.add_decayed_weights",
        "optref.core.add_decayed_weights",
        {"weight_decay": 0.1},
        "optax.add_decayed_weights",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("weight_decay",),
    ),
    Case(
        "core.clip",
        "optref.core.clip",
        {"max_delta": 0.5},
        "optax.clip",
        step_scale=_T,
        hyperparameters=("max_delta",),
    ),
    Case(
        "core.clip_by_global_norm",
        "optref.core.clip_by_global_norm",
        {"max_norm": 1.0},
        "optax.clip_by_global_norm",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("max_norm",),
    ),
    Case(
        "core.scale_by_adam",
        "optref.core.scale_by_adam",
        {},
        "optax.scale_by_adam",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("b1", "b2"),
    ),
    Case(
        "core.scale_by_adam-eps_root",
        "optref.core.scale_by_adam",
        {"eps_root": 1e-8},
        "optax.scale_by_adam",
        step_scale=_T,
        hyperparameters=("b1", "b2", "eps_root"),
    ),
    Case(
        "core.scale_by_adam-nesterov",
        "optref.core.scale_by_adam",
        {"nesterov": True},
        "optax.scale_by_adam",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("b1", "b2"),
    ),
    Case(
        "core.scale_by_optimistic_gradient",
        "optref.core.scale_by_optimistic_gradient",
        {"alpha": 1.0, "beta": 0.5},
        "optax.scale_by_optimistic_gradient",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("alpha", "beta"),
        deviations=(OPTIMISTIC_FIRST_STEP,),
    ),
    Case(
        "core.sgd",
        "optref.core.sgd",
        {"learning_rate": 0.01},
        "optax.sgd",
        complex_params=True,
        hyperparameters=("learning_rate",),
    ),
    Case(
        "core.sgd-momentum",
        "optref.core.sgd",
        {"learning_rate": 0.01, "momentum": 0.9},
        "optax.sgd",
        complex_params=True,
        hyperparameters=("learning_rate", "momentum"),
    ),
    Case(
        "core.sgd-nesterov",
        "optref.core.sgd",
        {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True},
        "optax.sgd",
        complex_params=True,
        hyperparameters=("learning_rate", "momentum"),
    ),
    Case(
        "core.adam",
        "optref.core.adam",
        {"learning_rate": 0.01},
        "optax.adam",
        complex_params=True,
        hyperparameters=("learning_rate", "b1", "b2"),
    ),
    Case(
        "core.adam-eps_root",
        "optref.core.adam",
        {"learning_rate": 0.01, "eps_root": 1e-8},
        "optax.adam",
        hyperparameters=("learning_rate", "b1", "b2", "eps_root"),
    ),
    Case(
        "core.adam-schedule",
        "optref.core.adam",
        {
            "learning_rate": Call(
                "optref.core._cases_kernel.decaying_step", "optref.core._cases_kernel.decaying_step"
            )
        },
        "optax.adam",
        hyperparameters=("b1", "b2", "eps"),
    ),
    Case(
        "core.adamw",
        "optref.core.adamw",
        {"learning_rate": 0.01, "weight_decay": 0.05},
        "optax.adamw",
        complex_params=True,
        hyperparameters=("learning_rate", "weight_decay", "b1", "b2"),
    ),
    Case(
        "core.nadam",
        "optref.core.nadam",
        {"learning_rate": 0.01},
        "optax.nadam",
        complex_params=True,
        hyperparameters=("learning_rate", "b1", "b2"),
    ),
    Case(
        "core.nadamw",
        "optref.core.nadamw",
        {"learning_rate": 0.01, "weight_decay": 0.05},
        "optax.nadamw",
        complex_params=True,
        hyperparameters=("learning_rate", "weight_decay", "b1", "b2"),
    ),
    Case(
        "core.optimistic_gradient_descent",
        "optref.core.optimistic_gradient_descent",
        {"learning_rate": 0.01, "alpha": 1.0, "beta": 0.5},
        "optax.optimistic_gradient_descent",
        complex_params=True,
        hyperparameters=("learning_rate", "alpha", "beta"),
        deviations=(OPTIMISTIC_FIRST_STEP,),
    ),
]


def decaying_step(initial: float = 0.05, rate: float = 0.02):
    """A schedule for the cases that need one, free of optref-schedules: ``a / (1 + r t)``.

    $$\\alpha(t) = \\frac{a}{1 + r\\,t}$$
    """

    def schedule(count):
        return initial / (1 + rate * count)

    return schedule
