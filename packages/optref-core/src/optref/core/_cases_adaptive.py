"""Conformance cases of the Adam family, sign methods and trust ratios, with their aliases."""

from __future__ import annotations

from typing import Any

from ._case import Call, Case, Deviation
from ._cases_kernel import OPTIMISTIC_FIRST_STEP

__all__ = ["ADAPTIVE_CASES"]

# Transforms that are not descent directions are applied as params - 0.01 * updates.
_T = -0.01

RADAM_NAN_GRADIENT = Deviation(
    check="differentiability",
    reason=(
        "Optax's scale_by_radam evaluates the rectification sqrt((rho-4)(rho-2)...) on "
        "every step and selects it away with jnp.where while rho_t < 4: the square root of "
        "a negative number is NaN, and its cotangent (0 * NaN) makes gradients through the "
        "first steps NaN. optref evaluates it only where it applies (double where)."
    ),
    link="https://docs.jax.dev/en/latest/faq.html#gradients-contain-nan-where-using-where",
)

RADAM_RHO_CANCELLATION = Deviation(
    check="float64",
    reason=(
        "Optax computes RAdam's rho_t = rho_inf - 2 t b2^t / (1 - b2^t) by subtracting two "
        "numbers close to rho_inf (1999 for b2 = 0.999) after forming 1 - b2^t by "
        "subtraction too: the rectification r_t is off by ~1e-11 in float64 at b2 = 0.999 "
        "(~3e-9 at b2 = 0.9999) and by up to tens of percent in float32 (55% at b2 = 0.9999, "
        "t = 5). optref computes rho_t = t (1 - L(t h)) + L(h) with the Langevin function L "
        "and h = -log(b2) / 2, exact to rounding."
    ),
    link="https://github.com/google-deepmind/optax/blob/main/optax/_src/transform.py",
)

_RADAM = (RADAM_NAN_GRADIENT, RADAM_RHO_CANCELLATION)


# Weights, not biases. Masks are data, not functions: injection (and Optax's
# inject_hyperparams) would take a function for a schedule.
_MLP_WEIGHTS = {"hidden": {"w": True, "b": False}, "head": {"w": True, "b": False}}
_QUADRATIC_WEIGHTS = {"w": True, "b": False}
_SCHEDULE = Call(
    "optref.core._cases_kernel.decaying_step", "optref.core._cases_kernel.decaying_step"
)


def _transform(
    name: str,
    kwargs: dict,
    hyperparameters: tuple[str, ...] = (),
    *,
    variant: str = "",
    **options: Any,
) -> Case:
    """A case for the transform ``name``, applied as ``params - 0.01 * updates``."""
    return Case(
        f"core.{name}" + (f"-{variant}" if variant else ""),
        f"optref.core.{name}",
        kwargs,
        f"optax.{name}",
        step_scale=_T,
        complex_params=True,
        hyperparameters=hyperparameters,
        **options,
    )


def _alias(
    name: str,
    kwargs: dict,
    hyperparameters: tuple[str, ...] = ("learning_rate",),
    *,
    variant: str = "",
    **options: Any,
) -> Case:
    """A case for the optimizer ``name``, applied as ``params + updates``."""
    return Case(
        f"core.{name}" + (f"-{variant}" if variant else ""),
        f"optref.core.{name}",
        kwargs,
        f"optax.{name}",
        complex_params=True,
        hyperparameters=hyperparameters,
        **options,
    )


_LR = {"learning_rate": 0.01}

ADAPTIVE_CASES: list[Case] = [
    # Transforms.
    _transform("scale_by_adamax", {"b1": 0.9, "b2": 0.999, "eps": 1e-8}, ("b1", "b2")),
    _transform("scale_by_adan", {"b1": 0.98, "b2": 0.92, "b3": 0.99}, ("b1", "b2", "b3")),
    # With the bias correction, nu_max is the first step's g**2 on the audit's quadratic:
    # d/d(b2) = 0, which forward and reverse mode compute as different rounding residues
    # (-4.6e-14 and -1.1e-13 at a loss of 57) of terms that cancel. So b2 is not listed.
    _transform("scale_by_amsgrad", {"b1": 0.9, "b2": 0.999}, ("b1",)),
    _transform(
        "scale_by_amsgrad",
        {"b2": 0.99, "bias_correction_mu": False, "bias_correction_nu": False},
        ("b1", "b2", "eps"),
        variant="paper",
    ),
    _transform("scale_by_belief", {"b1": 0.9, "b2": 0.999}, ("b1", "b2")),
    _transform("scale_by_belief", {"nesterov": True, "b1": 0.8}, ("b1", "b2"), variant="nesterov"),
    _transform("scale_by_lion", {"b1": 0.9, "b2": 0.99}),
    _transform(
        "scale_by_lion",
        {"mode": "smooth", "smooth_beta": 3.0},
        ("smooth_beta", "b1", "b2"),
        variant="smooth",
    ),
    _transform("scale_by_lion", {"mode": "refined", "b1": 0.5}, ("b1", "b2"), variant="refined"),
    _transform(
        "scale_by_novograd",
        {"b1": 0.9, "b2": 0.25, "weight_decay": 0.01},
        ("b1", "b2", "weight_decay"),
    ),
    _transform(
        "scale_by_radam",
        {"b1": 0.9, "b2": 0.999},
        ("b1",),
        deviations=_RADAM,
    ),
    _transform(
        "scale_by_radam",
        {"nesterov": True, "b2": 0.99, "threshold": 4.0},
        ("b1",),
        variant="nesterov",
        deviations=_RADAM,
    ),
    _transform(
        "scale_by_yogi",
        {"b1": 0.9, "b2": 0.999, "eps": 1e-3},
        ("b1", "b2", "eps", "initial_accumulator_value"),
    ),
    _transform(
        "scale_by_yogi",
        {"initial_accumulator_value": 0.5, "eps_root": 1e-8},
        ("initial_accumulator_value", "b1", "b2", "eps"),
        variant="accumulator",
    ),
    _transform("scale_by_trust_ratio", {"trust_coefficient": 0.5}, ("trust_coefficient",)),
    _transform(
        "scale_by_trust_ratio",
        {"min_norm": 2.0, "eps": 1e-3},
        ("eps", "trust_coefficient", "min_norm"),
        variant="min_norm",
    ),
    _transform("scale_by_param_block_norm", {"min_scale": 1e-3}),
    _transform("scale_by_param_block_rms", {"min_scale": 1e-3}),
    _transform("scale_by_param_block_rms", {"min_scale": 0.6}, ("min_scale",), variant="clipped"),
    _transform("scale_by_sign", {}),
    # Optimizers.
    _alias("adabelief", _LR, ("learning_rate", "b1", "b2")),
    _alias("adamax", _LR, ("learning_rate", "b1", "b2")),
    _alias(
        "adamaxw",
        {**_LR, "weight_decay": 0.05},
        ("learning_rate", "weight_decay", "b1", "b2"),
    ),
    _alias(
        "adan",
        {**_LR, "weight_decay": 0.05},
        ("learning_rate", "weight_decay", "b1", "b2", "b3", "eps_root"),
    ),
    _alias("amsgrad", _LR, ("learning_rate", "b1")),  # b2: as for scale_by_amsgrad
    _alias(
        "lamb",
        {**_LR, "weight_decay": 0.05},
        ("learning_rate", "weight_decay", "b1", "b2", "eps"),
    ),
    _alias(
        "lamb",
        {"learning_rate": _SCHEDULE, "mask": _QUADRATIC_WEIGHTS, "weight_decay": 0.05},
        ("weight_decay", "b1", "b2", "eps"),
        variant="schedule-mask",
        # Not the MLP: the trust ratio is 1 at its zero-initialised biases and tends to 0
        # next to them, a jump that no derivative check can pass.
        problems=("quadratic",),
    ),
    # trust_coefficient = 0.001 makes LARS's steps small: a larger rate for the checks.
    _alias(
        "lars",
        {"learning_rate": 1.0, "weight_decay": 0.05},
        ("learning_rate", "weight_decay", "trust_coefficient", "momentum"),
    ),
    _alias(
        "lars",
        {
            "learning_rate": 1.0,
            "weight_decay": 0.05,
            "weight_decay_mask": _MLP_WEIGHTS,
            "trust_ratio_mask": _MLP_WEIGHTS,
            "nesterov": True,
        },
        ("learning_rate", "trust_coefficient", "momentum"),
        variant="masks-nesterov",
        problems=("mlp",),
    ),
    _alias("lion", {"learning_rate": 0.001}, ("learning_rate", "weight_decay")),
    _alias(
        "novograd",
        {**_LR, "weight_decay": 0.05},
        ("learning_rate", "weight_decay", "b1", "b2", "eps"),
    ),
    _alias(
        "optimistic_adam_v2",
        {**_LR, "alpha": 1.0, "beta": 0.5},
        ("learning_rate", "alpha", "beta", "b1", "b2"),
        deviations=(OPTIMISTIC_FIRST_STEP,),
    ),
    _alias(
        "optimistic_adam",
        {**_LR, "optimism": 0.005},
        ("learning_rate", "optimism", "b1", "b2"),
        deviations=(OPTIMISTIC_FIRST_STEP,),
    ),
    _alias("radam", _LR, ("learning_rate", "b1"), deviations=_RADAM),
    _alias("yogi", _LR, ("learning_rate", "b1", "b2", "eps")),
    _alias("sign_sgd", _LR),
    _alias("signum", {**_LR, "beta": 0.9}, ("learning_rate",)),
]
