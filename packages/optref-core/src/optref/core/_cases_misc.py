"""Conformance cases of the adaptive transforms beyond Adam, the utilities and their aliases."""

from __future__ import annotations

from ._case import Call, Case, Deviation
from ._factored import decay_rate_pow

__all__ = ["MISC_CASES", "factored_decay_rate"]

# Transforms that are not descent directions are applied as params - 0.01 * updates.
_T = -0.01
# SM3 in Optax indexes an empty list for a scalar parameter, and DoG returns shape (1,)
# for one: their cases run on the problems without scalar leaves.
_NO_SCALARS = ("rosenbrock", "mlp")


def factored_decay_rate() -> object:
    """The decay schedule of :func:`~optref.core.scale_by_factored_rms`, for both libraries.

    Passing optref's :func:`~optref.core._factored.decay_rate_pow` to Optax too takes Optax's
    float32 schedule out of the comparison, so the rest of the factored scaling is
    compared to float64 precision.
    """
    return decay_rate_pow


FACTORED_DECAY_FLOAT32 = Deviation(
    check="float64",
    reason=(
        "Optax's default Adafactor decay schedule 1 - (t+1)^(-c) is computed in float32 "
        "whatever the dtype of the params, so float64 runs differ from the float64 "
        "schedule at the 1e-8 level; optref computes it in the hyperparameters' dtype."
    ),
    link="https://github.com/google-deepmind/optax/blob/v0.2.8/optax/_src/factorized.py",
)

RPROP_STALE_UPDATE = Deviation(
    check="float64",
    reason=(
        "Optax's scale_by_rprop returns the previous step's update (zeroed where the "
        "gradient's sign flips) instead of the one it has just computed and stored: its "
        "updates lag one step behind and the first is zero. optref returns the current "
        "step; the states agree."
    ),
    link="https://github.com/google-deepmind/optax/pull/1725",
)

STDDEV_NEGATIVE_VARIANCE = Deviation(
    check="float64",
    reason=(
        "The centred second moment E[|g|^2] - |E[g]|^2 cancels (to exactly zero on the "
        "first bias-corrected step); rounding can make it negative, and Optax takes its "
        "root: NaN for real params, an imaginary root (a rotated, wrong-sized step) for "
        "complex ones. optref clamps the variance at zero."
    ),
    link="https://github.com/google-deepmind/optax/pull/1785",
)

MISC_CASES: list[Case] = [
    # Transforms.
    Case(
        "core.scale_by_rss",
        "optref.core.scale_by_rss",
        {},
        "optax.scale_by_rss",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("initial_accumulator_value",),
    ),
    Case(
        "core.scale_by_rms",
        "optref.core.scale_by_rms",
        {},
        "optax.scale_by_rms",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay", "eps"),
    ),
    Case(
        "core.scale_by_rms-bias_correction",
        "optref.core.scale_by_rms",
        {"decay": 0.99, "eps_in_sqrt": False, "bias_correction": True, "initial_scale": 0.1},
        "optax.scale_by_rms",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("initial_scale", "decay"),
    ),
    Case(
        "core.scale_by_stddev",
        "optref.core.scale_by_stddev",
        {},
        "optax.scale_by_stddev",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay", "eps"),
    ),
    Case(
        "core.scale_by_stddev-bias_correction",
        "optref.core.scale_by_stddev",
        {"decay": 0.9, "eps": 1.0, "bias_correction": True},
        "optax.scale_by_stddev",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay", "eps"),
    ),
    Case(
        "core.scale_by_stddev-eps_outside",
        "optref.core.scale_by_stddev",
        {"decay": 0.95, "eps": 0.1, "eps_in_sqrt": False, "bias_correction": True},
        "optax.scale_by_stddev",
        step_scale=_T,
        complex_params=True,
        deviations=(STDDEV_NEGATIVE_VARIANCE,),
        hyperparameters=("eps",),
    ),
    Case(
        "core.scale_by_sm3",
        "optref.core.scale_by_sm3",
        {},
        "optax.scale_by_sm3",
        problems=_NO_SCALARS,
        step_scale=_T,
        hyperparameters=("b1",),
    ),
    Case(
        "core.scale_by_sm3-b2",
        "optref.core.scale_by_sm3",
        {"b1": 0.5, "b2": 0.9},
        "optax.scale_by_sm3",
        problems=_NO_SCALARS,
        step_scale=_T,
        hyperparameters=("b1", "b2", "eps"),
    ),
    Case(
        "core.scale_by_factored_rms",
        "optref.core.scale_by_factored_rms",
        {
            "min_dim_size_to_factor": 2,
            "decay_rate_fn": Call(
                "optref.core._cases_misc.factored_decay_rate",
                "optref.core._cases_misc.factored_decay_rate",
            ),
        },
        "optax.scale_by_factored_rms",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay_rate",),
    ),
    Case(
        "core.scale_by_factored_rms-default_decay",
        "optref.core.scale_by_factored_rms",
        {"min_dim_size_to_factor": 2, "decay_rate": 0.7},
        "optax.scale_by_factored_rms",
        step_scale=_T,
        complex_params=True,
        deviations=(FACTORED_DECAY_FLOAT32,),
        hyperparameters=("decay_rate",),
    ),
    Case(
        "core.scale_by_adadelta",
        "optref.core.scale_by_adadelta",
        {},
        "optax.scale_by_adadelta",
        step_scale=_T,
        hyperparameters=("rho", "eps"),
    ),
    Case(
        "core.scale_by_distance_over_gradients",
        "optref.core.scale_by_distance_over_gradients",
        {"reps_rel": 1e-3, "global_scale": -0.8, "param_dtype": None},
        "optax.scale_by_distance_over_gradients",
        problems=_NO_SCALARS,
        hyperparameters=("reps_rel", "global_scale"),
    ),
    Case(
        "core.scale_by_polyak",
        "optref.core.scale_by_polyak",
        {},
        "optax.scale_by_polyak",
        step_scale=_T,
        complex_params=True,
        extra_args=("value",),
        hyperparameters=("f_min",),
    ),
    Case(
        "core.scale_by_polyak-sps+",
        "optref.core.scale_by_polyak",
        {"variant": "sps+", "max_learning_rate": 0.5, "eps": 1e-3},
        "optax.scale_by_polyak",
        step_scale=_T,
        complex_params=True,
        extra_args=("value",),
        hyperparameters=("f_min", "eps"),
    ),
    Case(
        "core.scale_by_rprop",
        "optref.core.scale_by_rprop",
        {"learning_rate": 0.01},
        "optax.scale_by_rprop",
        step_scale=-1.0,
        hyperparameters=("learning_rate", "eta_plus", "eta_minus"),
        deviations=(RPROP_STALE_UPDATE,),
    ),
    Case(
        "core.ema",
        "optref.core.ema",
        {"decay": 0.9},
        "optax.ema",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay",),
    ),
    Case(
        "core.ema-no_debias",
        "optref.core.ema",
        {"decay": 0.9, "debias": False},
        "optax.ema",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("decay",),
    ),
    Case(
        "core.centralize",
        "optref.core.centralize",
        {},
        "optax.centralize",
        step_scale=_T,
        complex_params=True,
    ),
    Case(
        "core.add_noise",
        "optref.core.add_noise",
        {"eta": 0.01, "gamma": 0.55, "key": 0},
        "optax.add_noise",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("eta", "gamma"),
        wrapper_invariance=False,
        draws_random_numbers=True,
    ),
    Case(
        "core.clip_by_block_rms",
        "optref.core.clip_by_block_rms",
        {"threshold": 0.5},
        "optax.clip_by_block_rms",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("threshold",),
    ),
    Case(
        "core.adaptive_grad_clip",
        "optref.core.adaptive_grad_clip",
        {"clipping": 0.1},
        "optax.adaptive_grad_clip",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("clipping",),
    ),
    Case(
        "core.keep_params_nonnegative",
        "optref.core.keep_params_nonnegative",
        {},
        "optax.keep_params_nonnegative",
        step_scale=_T,
    ),
    Case(
        "core.zero_nans",
        "optref.core.zero_nans",
        {},
        "optax.zero_nans",
        step_scale=_T,
        complex_params=True,
    ),
    Case(
        "core.normalize_by_update_norm",
        "optref.core.normalize_by_update_norm",
        {},
        "optax.normalize_by_update_norm",
        step_scale=_T,
        complex_params=True,
        hyperparameters=("scale_factor", "eps"),
    ),
    # Aliases.
    Case(
        "core.adadelta",
        "optref.core.adadelta",
        {"learning_rate": 1.0},
        "optax.adadelta",
        hyperparameters=("learning_rate", "rho", "eps"),
    ),
    Case(
        "core.adadelta-weight_decay",
        "optref.core.adadelta",
        {"learning_rate": 0.5, "rho": 0.8, "weight_decay": 0.01},
        "optax.adadelta",
        hyperparameters=("learning_rate", "rho", "eps", "weight_decay"),
    ),
    Case(
        "core.adafactor",
        "optref.core.adafactor",
        {"learning_rate": 0.05, "min_dim_size_to_factor": 2},
        "optax.adafactor",
        complex_params=True,
        hyperparameters=("learning_rate", "decay_rate", "clipping_threshold"),
        deviations=(FACTORED_DECAY_FLOAT32,),
    ),
    Case(
        "core.adafactor-momentum",
        "optref.core.adafactor",
        {
            "learning_rate": 0.05,
            "min_dim_size_to_factor": 2,
            "momentum": 0.9,
            "weight_decay_rate": 0.01,
            "clipping_threshold": None,
            "dtype_momentum": "float64",
        },
        "optax.adafactor",
        deviations=(FACTORED_DECAY_FLOAT32,),
        hyperparameters=("learning_rate", "decay_rate", "momentum", "weight_decay_rate"),
    ),
    Case(
        "core.adagrad",
        "optref.core.adagrad",
        {"learning_rate": 0.1},
        "optax.adagrad",
        complex_params=True,
        hyperparameters=("learning_rate", "initial_accumulator_value", "eps"),
    ),
    Case(
        "core.fromage",
        "optref.core.fromage",
        {"learning_rate": 0.01},
        "optax.fromage",
        complex_params=True,
        hyperparameters=("learning_rate",),
    ),
    Case(
        "core.noisy_sgd",
        "optref.core.noisy_sgd",
        {"learning_rate": 0.01, "key": 0},
        "optax.noisy_sgd",
        complex_params=True,
        hyperparameters=("learning_rate", "eta", "gamma"),
        wrapper_invariance=False,
        draws_random_numbers=True,
    ),
    Case(
        "core.polyak_sgd",
        "optref.core.polyak_sgd",
        {"max_learning_rate": 0.1},
        "optax.polyak_sgd",
        complex_params=True,
        extra_args=("value",),
        hyperparameters=("max_learning_rate", "scaling"),
    ),
    Case(
        "core.polyak_sgd-sps+",
        "optref.core.polyak_sgd",
        {"max_learning_rate": 0.1, "scaling": 0.5, "variant": "sps+"},
        "optax.polyak_sgd",
        complex_params=True,
        extra_args=("value",),
        hyperparameters=("scaling", "max_learning_rate"),
    ),
    Case(
        "core.rmsprop",
        "optref.core.rmsprop",
        {"learning_rate": 0.01},
        "optax.rmsprop",
        complex_params=True,
        hyperparameters=("learning_rate", "decay", "eps"),
    ),
    Case(
        "core.rmsprop-centered",
        "optref.core.rmsprop",
        {
            "learning_rate": 0.01,
            "eps": 1.0,
            "centered": True,
            "momentum": 0.9,
            "nesterov": True,
            "bias_correction": True,
        },
        "optax.rmsprop",
        complex_params=True,
        hyperparameters=("learning_rate", "momentum", "decay", "eps"),
    ),
    Case(
        "core.rprop",
        "optref.core.rprop",
        {"learning_rate": 0.01},
        "optax.rprop",
        hyperparameters=("learning_rate", "eta_minus", "eta_plus"),
        deviations=(RPROP_STALE_UPDATE,),
    ),
    Case(
        "core.sm3",
        "optref.core.sm3",
        {"learning_rate": 0.05},
        "optax.sm3",
        problems=_NO_SCALARS,
        hyperparameters=("learning_rate", "momentum"),
    ),
]
