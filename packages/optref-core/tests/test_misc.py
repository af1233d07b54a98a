"""The adaptive transforms beyond Adam, the utilities and their aliases.

RSS (Adagrad), RMS, standard deviation (centred RMSProp), SM3, factored RMS (Adafactor),
Adadelta, DoG, Polyak, Rprop, EMA, centralisation, gradient noise, block-RMS clipping,
adaptive gradient clipping, non-negativity, NaN zeroing, normalisation, gradient scaling.
Formulas on hand-computed examples, validation messages, low-precision robustness,
``None`` leaves and ``jit``. No Optax here: the cross-check is ``tests/test_core_misc_optax.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc
from optref.core._factored import decay_rate_pow

jax.config.update("jax_enable_x64", True)

#: Every transform and alias of the family, with arguments that make them work.
ALL_FACTORIES: dict[str, Callable[[], oc.GradientTransformation]] = {
    "scale_by_rss": oc.scale_by_rss,
    "scale_by_rms": oc.scale_by_rms,
    "scale_by_rms-bias_correction": lambda: oc.scale_by_rms(
        eps_in_sqrt=False, bias_correction=True
    ),
    "scale_by_stddev": oc.scale_by_stddev,
    # Bias-corrected, the first variance is exactly zero up to rounding: with eps inside the
    # root that rounding does not reach the update.
    "scale_by_stddev-bias_correction": lambda: oc.scale_by_stddev(eps=1.0, bias_correction=True),
    "scale_by_sm3": oc.scale_by_sm3,
    "scale_by_factored_rms": lambda: oc.scale_by_factored_rms(min_dim_size_to_factor=2),
    "scale_by_adadelta": oc.scale_by_adadelta,
    "scale_by_distance_over_gradients": oc.scale_by_distance_over_gradients,
    "scale_by_polyak": oc.scale_by_polyak,
    "scale_by_rprop": lambda: oc.scale_by_rprop(0.1),
    "ema": lambda: oc.ema(0.9),
    "centralize": oc.centralize,
    "add_noise": lambda: oc.add_noise(0.01, 0.55, key=0),
    "clip_by_block_rms": lambda: oc.clip_by_block_rms(1.0),
    "adaptive_grad_clip": lambda: oc.adaptive_grad_clip(0.1),
    "keep_params_nonnegative": oc.keep_params_nonnegative,
    "zero_nans": oc.zero_nans,
    "normalize_by_update_norm": oc.normalize_by_update_norm,
    "adadelta": lambda: oc.adadelta(1.0, weight_decay=0.1),
    "adafactor": lambda: oc.adafactor(0.1, min_dim_size_to_factor=2, momentum=0.9),
    "adagrad": lambda: oc.adagrad(0.1),
    "fromage": lambda: oc.fromage(0.1),
    "noisy_sgd": lambda: oc.noisy_sgd(0.1, key=1),
    "polyak_sgd": oc.polyak_sgd,
    "rmsprop": lambda: oc.rmsprop(0.1, centered=True, momentum=0.9),
    "rprop": lambda: oc.rprop(0.1),
    "sm3": lambda: oc.sm3(0.1),
}


# These tests compile many small programs; XLA's backend optimisations buy nothing here.
FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


def _run(
    tx: oc.GradientTransformation, params: Any, grads: list[Any], **extra: Any
) -> tuple[list[Any], Any]:
    state, out = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params, **extra)
        out.append(u)
    return out, state


def _close(a: Any, b: Any, rtol: float = 1e-12) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-300)


# --- validation ----------------------------------------------------------------------------

BAD = [
    (oc.scale_by_rss, "initial_accumulator_value", -0.1, "[0, ∞)"),
    (oc.scale_by_rss, "eps", -1.0, "[0, ∞)"),
    (oc.scale_by_rms, "decay", 1.5, "[0, 1]"),
    (oc.scale_by_rms, "initial_scale", -1.0, "[0, ∞)"),
    (oc.scale_by_stddev, "decay", -0.1, "[0, 1]"),
    (oc.scale_by_stddev, "eps", float("nan"), "[0, ∞)"),
    (oc.scale_by_sm3, "b1", 1.1, "[0, 1]"),
    (oc.scale_by_sm3, "b2", -0.5, "[0, 1]"),
    (oc.scale_by_factored_rms, "decay_rate", -0.8, "[0, ∞)"),
    (oc.scale_by_factored_rms, "epsilon", -1e-30, "[0, ∞)"),
    (oc.scale_by_adadelta, "rho", 2.0, "[0, 1]"),
    (oc.scale_by_distance_over_gradients, "reps_rel", 0.0, "(0, ∞)"),
    (oc.scale_by_polyak, "max_learning_rate", -1.0, "[0, ∞)"),
    (oc.scale_by_polyak, "eps", -1.0, "[0, ∞)"),
    (oc.ema, "decay", 1.0, "[0, 1)"),
    (oc.add_noise, "eta", -0.01, "[0, ∞)"),
    (oc.add_noise, "gamma", -1.0, "[0, ∞)"),
    (oc.clip_by_block_rms, "threshold", 0.0, "(0, ∞)"),
    (oc.adaptive_grad_clip, "clipping", -0.1, "(0, ∞)"),
    (oc.adaptive_grad_clip, "eps", -1.0, "[0, ∞)"),
    (oc.normalize_by_update_norm, "eps", -1e-6, "[0, ∞)"),
    (oc.scale_by_rprop, "learning_rate", 0.0, "(0, ∞)"),
    (oc.scale_by_rprop, "eta_minus", 1.5, "(0, 1]"),
    (oc.scale_by_rprop, "eta_plus", 0.5, "[1, ∞)"),
    (oc.scale_by_rprop, "max_step_size", 1e-7, "[1e-06, ∞)"),
]

_REQUIRED = {
    "scale_by_rprop": {"learning_rate": 0.1},
    "ema": {"decay": 0.9},
    "add_noise": {"eta": 0.01, "gamma": 0.5, "key": 0},
    "clip_by_block_rms": {"threshold": 1.0},
    "adaptive_grad_clip": {"clipping": 0.1},
}


@pytest.mark.parametrize(("factory", "argument", "value", "interval"), BAD)
def test_bad_hyperparameters_name_the_argument_and_the_range(
    factory: Callable[..., Any], argument: str, value: float, interval: str
) -> None:
    kwargs = {**_REQUIRED.get(factory.__name__, {}), argument: value}
    expected = re.escape(f"{factory.__name__}: {argument} must be in {interval}")
    if interval.endswith("∞)"):  # an unbounded interval may be written closed or open
        expected = expected[: -len(re.escape(")"))] + r"[)\]]"
    with pytest.raises(oc.HyperparameterError, match=expected):
        factory(**kwargs)


def test_bias_corrected_rms_needs_a_decay_below_one() -> None:
    oc.scale_by_rms(decay=1.0, initial_scale=1.0)  # a constant scaling: allowed
    with pytest.raises(oc.HyperparameterError, match=re.escape("decay must be in [0, 1)")):
        oc.scale_by_rms(decay=1.0, bias_correction=True)


def test_unknown_polyak_variant_is_named() -> None:
    with pytest.raises(ValueError, match=r"scale_by_polyak: variant must be one of"):
        oc.scale_by_polyak(variant="sps-")


def test_transforms_that_need_params_say_so() -> None:
    g = {"w": jnp.ones(3)}
    for tx in (
        oc.scale_by_distance_over_gradients(),
        oc.adaptive_grad_clip(0.1),
        oc.keep_params_nonnegative(),
        oc.adadelta(1.0),
    ):
        with pytest.raises(ValueError, match="update needs params"):
            tx.update(g, tx.init(g))


def test_polyak_needs_the_value() -> None:
    tx = oc.scale_by_polyak()
    with pytest.raises(TypeError, match=r"scale_by_polyak: update needs the objective's value"):
        tx.update({"w": jnp.ones(2)}, tx.init(None))


@pytest.mark.parametrize(
    "factory", [oc.scale_by_sm3, lambda: oc.scale_by_rprop(0.1), oc.keep_params_nonnegative]
)
def test_ordering_transforms_reject_complex_params_by_path(factory: Callable[[], Any]) -> None:
    params = {"real": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)}
    with pytest.raises(TypeError, match=r"complex params are not supported .* at \['z'\]"):
        factory().init(params)


def test_noise_key_arguments() -> None:
    with pytest.warns(DeprecationWarning, match="seed"):
        oc.add_noise(0.1, 0.5, seed=3)
    with pytest.raises(ValueError, match="not both"), pytest.warns(DeprecationWarning):
        oc.add_noise(0.1, 0.5, key=1, seed=3)
    with pytest.warns(UserWarning, match="no key given"):
        oc.noisy_sgd(0.1)
    raw = jax.random.PRNGKey(4)  # a legacy uint32[2] key
    typed = jax.random.key(4)
    g = {"w": jnp.zeros(3)}
    a = oc.add_noise(0.1, 0.5, key=raw)
    b = oc.add_noise(0.1, 0.5, key=typed)
    _close(a.update(g, a.init(g))[0]["w"], b.update(g, b.init(g))[0]["w"], rtol=0)


# --- formulas ----------------------------------------------------------------------------


def test_rss_divides_by_the_root_of_the_sum_of_squares_and_is_zero_where_it_is_zero() -> None:
    tx = oc.scale_by_rss(initial_accumulator_value=0.0, eps=0.0)
    (u1, u2), state = _run(
        tx, jnp.zeros(3), [jnp.array([3.0, 0.0, -1.0]), jnp.array([4.0, 0.0, 1.0])]
    )
    _close(u1, [1.0, 0.0, -1.0])
    _close(u2, [4.0 / 5.0, 0.0, 1.0 / math.sqrt(2)])
    _close(state.sum_of_squares, [25.0, 0.0, 2.0])
    (u,), _ = _run(oc.scale_by_rss(), jnp.zeros(1), [jnp.array([2.0])])
    _close(u, [2.0 / math.sqrt(0.1 + 4.0 + 1e-7)])


def test_rms_variants() -> None:
    g = jnp.array([2.0, -0.5])
    (u,), state = _run(oc.scale_by_rms(decay=0.9, eps=1e-8), jnp.zeros(2), [g])
    _close(u, g / np.sqrt(0.1 * g**2 + 1e-8))
    _close(state.nu, 0.1 * g**2)
    # Bias-corrected with eps outside the root: the first step is g / (|g| + eps).
    tx = oc.scale_by_rms(decay=0.9, eps=1e-3, eps_in_sqrt=False, bias_correction=True)
    (u1, u2), state = _run(tx, jnp.zeros(2), [g, 2 * g])
    _close(u1, g / (np.abs(g) + 1e-3))
    nu_hat = (0.9 * 0.1 * g**2 + 0.1 * 4 * g**2) / (1 - 0.9**2)
    _close(u2, 2 * g / (np.sqrt(nu_hat) + 1e-3))
    assert int(state.count) == 2


def test_stddev_uses_the_centred_second_moment_and_clamps_it_at_zero() -> None:
    g = jnp.array([1.0, -3.0])
    (u,), _ = _run(oc.scale_by_stddev(decay=0.9, eps=0.0), jnp.zeros(2), [g])
    _close(u, g / np.sqrt(0.1 * g**2 - 0.01 * g**2))  # variance 0.09 g^2
    # A constant gradient has zero variance: bias-corrected, the difference is pure
    # rounding, which must not turn into the root of a negative number.
    # (Its root is at most ~1e-8 |g| here, the size of eps: the update is about g / eps.)
    tx = oc.scale_by_stddev(decay=0.9, eps=1e-8, eps_in_sqrt=False, bias_correction=True)
    g = jnp.array([0.1, 1e3, -7.0, 3e-5, 1.0 / 3.0])
    updates, _ = _run(tx, jnp.zeros(5), [g] * 5)
    for u in updates:
        assert bool(jnp.all(jnp.isfinite(u)))
        assert bool(jnp.all(jnp.sign(u) == jnp.sign(g)))
        assert bool(jnp.all(jnp.abs(u) <= jnp.abs(g) / 1e-8 * (1 + 1e-12)))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_stddev_variance_is_formed_without_cancelling(dtype) -> None:
    # One gradient has zero variance, so the first bias-corrected step is g / eps. The
    # difference of the new moments left a rounding residue of order eps_mach g^2, whose
    # root, of order sqrt(eps_mach) g, moved that step by up to 3e-7 in float64 and 5e-3
    # in float32 (10,000 gradients, docs/hardening.md); formed from the previous moments,
    # the variance is zero and the step is g / eps to rounding.
    g = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, 10000), dtype)
    tx = oc.scale_by_stddev(decay=0.95, eps=0.1, eps_in_sqrt=False, bias_correction=True)
    (u, u2), _ = _run(tx, jnp.zeros_like(g), [g, 2 * g])
    exact = 10 * np.asarray(g, np.float64)
    assert np.max(np.abs(np.asarray(u, np.float64) - exact) / exact) <= np.finfo(dtype).eps
    # The second step from the moments in exact arithmetic: c1 = 0.05, c2 = 0.0975,
    # mu2 = 0.95 * 0.05 g + 0.05 * 2g, nu2 = 0.95 * 0.05 g^2 + 0.05 * 4 g^2; the variance,
    # 0.249 g^2, is a difference of terms of 4.8 g^2 (condition 19; the root halves it).
    g64 = np.asarray(g, np.float64)
    mu, nu = (0.95 * 0.05 + 0.1) * g64 / 0.0975, (0.95 * 0.05 + 0.2) * g64**2 / 0.0975
    expected = 2 * g64 / (np.sqrt(nu - mu**2) + 0.1)
    _close(u2, expected, rtol=64 * float(np.finfo(dtype).eps))
    # With an initial second moment s, the first step's variance is decay * s / (1 - decay).
    tx = oc.scale_by_stddev(
        decay=0.9, eps=0.1, eps_in_sqrt=False, bias_correction=True, initial_scale=2.0
    )
    (u,), _ = _run(tx, jnp.zeros_like(g), [g])
    _close(u, g64 / (np.sqrt(0.9 * 2.0 / 0.1) + 0.1), rtol=4 * float(np.finfo(dtype).eps))


def test_sm3_keeps_per_axis_maxima_and_takes_their_minimum() -> None:
    tx = oc.scale_by_sm3(b1=0.0, b2=1.0, eps=0.0)
    p = jnp.zeros((2, 2))
    g1 = jnp.array([[1.0, 2.0], [3.0, 0.0]])
    g2 = jnp.array([[1.0, 1.0], [1.0, 1.0]])
    (u1, u2), state = _run(tx, p, [g1, g2])
    _close(u1, [[1.0, 1.0], [1.0, 0.0]])  # g / sqrt(g^2), zero where g^2 = 0
    rows, cols = np.array([4.0, 9.0]), np.array([9.0, 4.0])  # max of g1^2 per row / column
    accumulator = 1.0 + np.minimum(rows[:, None], cols[None, :])
    _close(u2, 1.0 / np.sqrt(accumulator))
    _close(state.mu[0], accumulator.max(axis=1))
    _close(state.mu[1], accumulator.max(axis=0))
    # A vector has one accumulator per element; a scalar keeps one () accumulator.
    params = {"v": jnp.zeros(2), "s": jnp.zeros(())}
    (u,), state = _run(
        oc.scale_by_sm3(b1=0.0), params, [{"v": jnp.array([3.0, 4.0]), "s": jnp.array(2.0)}]
    )
    _close(u["v"], [3.0 / np.sqrt(9.0 + 1e-8), 4.0 / np.sqrt(16.0 + 1e-8)])
    assert state.mu["s"][0].shape == ()


def test_sm3_with_b2_below_one_averages_the_squares() -> None:
    tx = oc.scale_by_sm3(b1=0.5, b2=0.9, eps=0.0)
    (u,), state = _run(tx, jnp.zeros(2), [jnp.array([2.0, -1.0])])
    # accumulator 0.1 g^2, scaled gradient g / sqrt(0.1 g^2), momentum 0.5 of it.
    _close(u, 0.5 * np.array([2.0, -1.0]) / np.sqrt(0.1 * np.array([4.0, 1.0])))
    _close(state.nu, u)


@pytest.mark.parametrize(
    ("name", "kwargs"), [("scale_by_rss", {}), ("scale_by_sm3", {"b1": 0.0})], ids=["rss", "sm3"]
)
def test_a_nan_or_infinite_gradient_makes_the_accumulator_ratio_nan_not_a_silent_zero(
    name: str, kwargs: dict
) -> None:
    """A NaN or infinite gradient gives a NaN update there, as in Optax, and a NaN left in
    the accumulator keeps the later updates NaN: it is seen, rather than turned into a zero
    step now and on every later step (where Optax's later steps are zero)."""
    tx = getattr(oc, name)(**kwargs)
    g = jnp.array([1.0, jnp.nan, jnp.inf, -2.0])
    (u1, u2), _ = _run(tx, jnp.zeros(4), [g, jnp.ones(4)])
    assert np.array_equal(np.isnan(u1), [False, True, True, False])
    assert np.isnan(u2[1]) and np.all(np.isfinite(np.asarray(u2)[[0, 3]]))
    optax = pytest.importorskip("optax")
    reference = getattr(optax, name)(**kwargs)
    expected, _ = reference.update(g, reference.init(jnp.zeros(4)))
    assert np.array_equal(np.isnan(u1), np.isnan(expected))


def test_adafactor_decay_schedule() -> None:
    _close(decay_rate_pow(0, 0.8), 0.0)
    _close(decay_rate_pow(1, 0.8), 1 - 2.0**-0.8)
    _close(decay_rate_pow(9, 0.5), 1 - 10.0**-0.5)
    assert decay_rate_pow(3, jnp.float64(0.8)).dtype == jnp.float64


def test_factored_rms_estimates_the_second_moment_from_row_and_column_means() -> None:
    tx = oc.scale_by_factored_rms(min_dim_size_to_factor=2, epsilon=0.0)
    g = jnp.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 1.0]])
    params = {"m": jnp.zeros((2, 3)), "v": jnp.zeros(3)}
    (u,), state = _run(tx, params, [{"m": g, "v": jnp.array([2.0, -1.0, 0.5])}])
    sq = np.asarray(g) ** 2
    row, col = sq.mean(axis=1), sq.mean(axis=0)  # first step: decay 0, the means themselves
    estimate = row[:, None] * col[None, :] / row.mean()
    _close(u["m"], np.asarray(g) / np.sqrt(estimate))
    _close(u["v"], [1.0, -1.0, 1.0])  # unfactored: g / sqrt(g^2)
    _close(state.v_row["m"], row)
    _close(state.v_col["m"], col)
    assert state.v["m"].shape == (1,) and state.v_row["v"].shape == (1,)
    assert int(state.count) == 1


def test_factored_rms_second_step_uses_the_decay_schedule() -> None:
    tx = oc.scale_by_factored_rms(factored=False, decay_rate=0.8, epsilon=0.0)
    (_, u2), state = _run(tx, jnp.zeros(2), [jnp.array([1.0, 2.0]), jnp.array([3.0, -1.0])])
    beta = 1 - 2.0**-0.8
    v = beta * np.array([1.0, 4.0]) + (1 - beta) * np.array([9.0, 1.0])
    _close(state.v, v)
    _close(u2, np.array([3.0, -1.0]) / np.sqrt(v))


def test_adadelta_first_steps() -> None:
    rho, eps = 0.9, 1e-6
    g = jnp.array([1.0, -2.0])
    (u1, u2), state = _run(oc.scale_by_adadelta(rho, eps), jnp.zeros(2), [g, g])
    e_g = (1 - rho) * g**2
    expected1 = np.sqrt(eps) / np.sqrt(e_g + eps) * g
    _close(u1, expected1)
    e_x = (1 - rho) * expected1**2
    e_g2 = rho * e_g + (1 - rho) * g**2
    _close(u2, np.sqrt(e_x + eps) / np.sqrt(e_g2 + eps) * g)
    _close(state.e_g, e_g2)


def test_dog_first_step_and_growing_distance() -> None:
    tx = oc.scale_by_distance_over_gradients(reps_rel=0.1, eps=0.0, param_dtype=None)
    p0 = jnp.array([3.0, 4.0])
    g = jnp.array([1.0, 0.0])
    state = tx.init(p0)
    u, state = tx.update(g, state, p0)
    _close(u, 0.1 * (1 + 5.0) * g / 1.0)  # r_eps = 0.1 (1 + |x0|), sqrt(sum |g|^2) = 1
    p1 = p0 + jnp.array([0.0, 2.0])
    u, state = tx.update(g, state, p1)
    _close(u, 2.0 * g / np.sqrt(2.0))  # the distance moved, 2, now dominates
    _close(state.grad_sum_of_squares, [2.0])
    assert state.init_params.dtype == jnp.float64


@pytest.mark.parametrize("param_dtype", [None, jnp.float32])
def test_dog_takes_numpy_params_and_a_state_brought_back_to_the_host(param_dtype) -> None:
    # The state holds a copy of the initial params, passed through unchanged: it must be
    # arrays also when the params are NumPy, or the state was fetched (a checkpoint).
    tx = oc.scale_by_distance_over_gradients(param_dtype=param_dtype)
    p0 = {"w": np.array([3.0, 4.0], np.float32), "b": np.float32(1.0)}
    g = {"w": jnp.array([1.0, 0.5], jnp.float32), "b": jnp.float32(0.5)}
    state = tx.init(p0)
    expected = tx.update(g, tx.init(jax.tree.map(jnp.asarray, p0)), p0)
    got = tx.update(g, jax.device_get(state), p0)
    _close(got[0]["w"], expected[0]["w"])
    for x in jax.tree.leaves(got[1].init_params):
        assert isinstance(x, jax.Array)


def test_polyak_step_size() -> None:
    tx = oc.scale_by_polyak(max_learning_rate=10.0)
    g = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}
    u, _ = tx.update(g, tx.init(g), value=5.0)
    _close(u["a"], [3.0 * 5.0 / 25.0])
    u, _ = tx.update(g, tx.init(g), value=1e6)  # capped
    _close(u["b"], [40.0])
    zero = jax.tree.map(jnp.zeros_like, g)
    u, _ = tx.update(zero, tx.init(g), value=1.0)  # a vanishing gradient: no step
    _close(u["a"], [0.0])
    tx = oc.scale_by_polyak(f_min=2.0, variant="sps+")
    u, _ = tx.update(g, tx.init(g), value=1.0)  # below f_min: the positive part is zero
    _close(u["a"], [0.0])


def test_rprop_returns_the_current_step() -> None:
    """Optax returns the previous step (0, 0.1, 0.12, 0, 0); Rprop moves by the current one."""
    tx = oc.scale_by_rprop(learning_rate=0.1, eta_minus=0.5, eta_plus=1.2)
    grads = [jnp.array([g]) for g in (1.0, 1.0, 1.0, -1.0, 1.0)]
    updates, state = _run(tx, jnp.zeros(1), grads)
    _close(np.concatenate(updates), [0.1, 0.12, 0.144, 0.0, 0.072])
    _close(state.step_sizes, [0.072])
    _close(state.prev_updates, [0.072])


def test_rprop_sign_changes_of_tiny_gradients_are_seen() -> None:
    """The product of two tiny values underflows; the product of their signs does not."""
    tx = oc.scale_by_rprop(learning_rate=0.1)
    tiny = float(np.finfo(np.float64).tiny)
    updates, state = _run(tx, jnp.zeros(1), [jnp.array([tiny]), jnp.array([-tiny])])
    _close(updates[1], [0.0])
    _close(state.step_sizes, [0.05])


def test_ema_debiasing() -> None:
    g1, g2 = jnp.array([1.0, 2.0]), jnp.array([3.0, -1.0])
    (u1, u2), _ = _run(oc.ema(0.5), jnp.zeros(2), [g1, g2])
    _close(u1, g1)
    _close(u2, (0.5 * g2 + 0.25 * g1) / 0.75)
    (u1, u2), state = _run(oc.ema(0.5, debias=False), jnp.zeros(2), [g1, g2])
    _close(u2, 0.5 * g2 + 0.25 * g1)
    _close(state.ema, u2)


def test_ema_float32_accumulator_does_not_round_the_update() -> None:
    g = jnp.array([1.0 / 3.0])
    (u,), state = _run(oc.ema(0.5, debias=False, accumulator_dtype=jnp.float32), jnp.zeros(1), [g])
    assert state.ema.dtype == jnp.float32 and u.dtype == jnp.float64
    _close(u, g / 2, rtol=1e-15)


def test_ema_real_accumulator_dtype_keeps_complex_averages_complex() -> None:
    g = jnp.array([1.0 + 2.0j])
    (u,), state = _run(
        oc.ema(0.5, accumulator_dtype=jnp.float32), jnp.zeros(1, jnp.complex128), [g]
    )
    assert state.ema.dtype == jnp.complex64
    _close(u, g)
    _close(state.ema, 0.5 * g, rtol=1e-7)


def test_centralize() -> None:
    tx = oc.centralize()
    g = {"m": jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), "v": jnp.array([1.0, 2.0])}
    u, _ = tx.update(g, tx.init(g))
    _close(u["m"], [[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]])
    _close(u["v"], g["v"])


def test_noise_is_reproducible_and_has_the_annealed_variance() -> None:
    tx = oc.add_noise(eta=4.0, gamma=2.0, key=3)
    g = {"w": jnp.zeros(20000)}
    (u1, u2), state = _run(tx, g, [g, g])
    (v1, _), _ = _run(oc.add_noise(eta=4.0, gamma=2.0, key=3), g, [g, g])
    _close(u1["w"], v1["w"], rtol=0)
    # sigma_t^2 = eta / t^gamma: 4 at t = 1, 1 at t = 2.
    assert abs(float(jnp.std(u1["w"])) - 2.0) < 0.05
    assert abs(float(jnp.std(u2["w"])) - 1.0) < 0.03
    assert int(state.count) == 2
    (w,), _ = _run(oc.add_noise(eta=4.0, gamma=2.0, key=4), g, [g])
    assert not np.allclose(w["w"], u1["w"])


def test_clip_by_block_rms() -> None:
    tx = oc.clip_by_block_rms(threshold=1.0)
    g = {"big": jnp.array([2.0, -2.0, 2.0, -2.0]), "small": jnp.array([0.5, -0.5])}
    u, _ = tx.update(g, tx.init(g))
    _close(u["big"], g["big"] / 2)  # rms 2 -> 1
    _close(u["small"], g["small"])


def test_adaptive_grad_clip_is_unitwise() -> None:
    tx = oc.adaptive_grad_clip(clipping=0.5, eps=1e-3)
    # Rank 2: units are columns (axis 0 is the fan-in).
    p = jnp.array([[3.0, 0.0], [4.0, 0.0]])  # column norms 5 and 0 (-> eps)
    g = jnp.array([[6.0, 1.0], [8.0, 0.0]])  # column norms 10 and 1
    u, _ = tx.update(g, tx.init(p), p)
    _close(u[:, 0], np.array([6.0, 8.0]) * 2.5 / 10.0)
    _close(u[:, 1], np.array([1.0, 0.0]) * 0.5e-3 / 1.0)
    small = jnp.array([[0.1, 0.0], [0.0, 0.0]])
    u, _ = tx.update(small, tx.init(p), p)
    _close(u[:, 0], small[:, 0])
    with pytest.raises(ValueError, match="cannot infer the unit axes"):
        x = jnp.ones((2,) * 6)
        tx.update(x, tx.init(x), x)
    by_axis = oc.adaptive_grad_clip(0.5, axis=(0, 1))
    x = jnp.ones((2,) * 6)
    u, _ = by_axis.update(x, by_axis.init(x), x)
    _close(u, x * 0.5)  # every unit (2 x 2 slice) has the same norm as its params


def test_keep_params_nonnegative_stops_at_zero() -> None:
    tx = oc.keep_params_nonnegative()
    p = jnp.array([1.0, 0.5, 0.0])
    u, _ = tx.update(jnp.array([-2.0, 0.1, -1.0]), tx.init(p), p)
    _close(u, [-1.0, 0.1, 0.0])
    assert bool(jnp.all(p + u >= 0))


def test_zero_nans_zeroes_and_records() -> None:
    tx = oc.zero_nans()
    g = {"a": jnp.array([1.0, jnp.nan, jnp.inf]), "b": jnp.array([2.0]), "c": None}
    u, state = tx.update(g, tx.init(g))
    _close(u["a"], [1.0, 0.0, np.inf])
    assert u["c"] is None
    assert bool(state.found_nan["a"]) and not bool(state.found_nan["b"])


def test_normalize_by_update_norm() -> None:
    tx = oc.normalize_by_update_norm(scale_factor=-2.0, eps=0.0)
    g = {"a": jnp.array([3.0]), "b": jnp.array([4.0])}
    u, _ = tx.update(g, tx.init(g))
    _close(u["a"], [-2.0 * 3.0 / 5.0])
    zero = jax.tree.map(jnp.zeros_like, g)
    u, _ = tx.update(zero, tx.init(g))  # eps = 0 and a zero update: zero, not 0/0
    _close(u["b"], [0.0])


def test_scale_gradient() -> None:
    x = jnp.array([1.0, 2.0])
    _close(oc.scale_gradient(x, 0.5), x)
    grad = jax.grad(lambda x, s: jnp.sum(oc.scale_gradient(x, s) ** 2))(x, 0.5)
    _close(grad, 0.5 * 2 * x)
    grad = jax.grad(lambda x: jnp.sum(oc.scale_gradient(x, 0) ** 2))(x)
    _close(grad, [0.0, 0.0])
    ds = jax.grad(lambda s: jnp.sum(oc.scale_gradient(x, s) ** 2))(jnp.float64(3.0))
    _close(ds, 0.0)
    half = jax.grad(lambda x: jnp.sum(oc.scale_gradient(x, jnp.float64(-1.0))))(
        x.astype(jnp.float32)
    )
    assert half.dtype == jnp.float32
    _close(half, [-1.0, -1.0])


# --- aliases -------------------------------------------------------------------------------


def test_aliases_compose_as_in_optax() -> None:
    p = {"w": jnp.array([1.0, -2.0, 0.5])}
    g = {"w": jnp.array([0.3, 0.1, -0.2])}
    cases = [
        (oc.adagrad(0.1), oc.chain(oc.scale_by_rss(), oc.scale_by_learning_rate(0.1))),
        (oc.rprop(0.1), oc.chain(oc.scale_by_rprop(0.1), oc.scale(-1.0))),
        (oc.sm3(0.1), oc.chain(oc.scale_by_sm3(0.9), oc.scale(-0.1))),
        (
            oc.rmsprop(0.1, centered=True, momentum=0.9),
            oc.chain(oc.scale_by_stddev(), oc.scale_by_learning_rate(0.1), oc.trace(0.9)),
        ),
        (
            oc.adadelta(0.5, weight_decay=0.1),
            oc.chain(
                oc.add_decayed_weights(0.1), oc.scale_by_adadelta(), oc.scale_by_learning_rate(0.5)
            ),
        ),
    ]
    for alias, composed in cases:
        (a,), _ = _run(alias, p, [g])
        (b,), _ = _run(composed, p, [g])
        _close(a["w"], b["w"], rtol=0)
    assert isinstance(oc.rmsprop(0.1).transformations[2], oc.Identity)
    assert isinstance(oc.adadelta().transformations[2], oc.Identity)


def test_adafactor_members() -> None:
    default = oc.adafactor()
    names = [type(t).__name__ for t in default.transformations]
    assert names == ["ScaleByFactoredRms", "ClipByBlockRms", "ScaleByParamBlockRms", "Scale"]
    full = oc.adafactor(0.1, momentum=0.9, weight_decay_rate=0.01, clipping_threshold=None)
    names = [type(t).__name__ for t in full.transformations]
    assert names == [
        "ScaleByFactoredRms",
        "ScaleByLearningRate",
        "ScaleByParamBlockRms",
        "Ema",
        "AddDecayedWeights",
        "Scale",
    ]
    assert full.transformations[3].accumulator_dtype == jnp.float32


def test_fromage_shrinks_towards_the_origin() -> None:
    lr = 0.1
    p = jnp.array([3.0, 4.0])
    g = jnp.array([1.0, 0.0])
    (u,), _ = _run(oc.fromage(lr), p, [g])
    mult = 1 / math.sqrt(1 + lr**2)
    _close(p + u, mult * (p - lr * 5.0 * g))  # trust ratio |p| / |g| = 5
    (v,), _ = _run(oc.fromage(lambda count: lr), p, [g])
    _close(u, v)
    # The negative rate m - 1 keeps its digits for a small learning rate.
    small = oc.fromage(jnp.float32(1e-4)).transformations[2].weight_decay
    _close(small, -5e-9, rtol=1e-6)


def test_noisy_sgd_adds_the_noise_before_the_rate() -> None:
    g = {"w": jnp.ones(3)}
    (u,), _ = _run(oc.noisy_sgd(0.5, eta=0.01, key=2), g, [g])
    (n,), _ = _run(oc.add_noise(0.01, 0.55, key=2), g, [g])
    _close(u["w"], -0.5 * n["w"])


def test_polyak_sgd_sees_the_scaled_gradient() -> None:
    g = {"w": jnp.array([3.0, 4.0])}
    (u,), _ = _run(oc.polyak_sgd(max_learning_rate=10.0, scaling=0.5), g, [g], value=5.0)
    _close(u["w"], -0.5 * g["w"] * 5.0 / (0.25 * 25.0))


# --- low precision, None leaves, jit --------------------------------------------------


def _special(params: Any, kind: str) -> Any:
    def leaf(p: jax.Array) -> jax.Array:
        info = jnp.finfo(p.dtype)
        size = {"zero": 0.0, "tiny": float(info.tiny), "huge": 0.01 * float(info.max)}[kind]
        signs = jnp.where(jnp.arange(p.size).reshape(p.shape) % 2 == 0, 1.0, -1.0)
        return (signs * size).astype(p.dtype)

    return jax.tree.map(leaf, params)


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
def test_zero_tiny_and_huge_low_precision_gradients_give_no_nan_or_inf(name: str) -> None:
    """Updates stay finite and nothing is NaN, for float16 and bfloat16 leaves (in one tree,
    so one compilation). A state that holds the square of a huge gradient is +inf where
    that number is not representable in the state's dtype."""
    tx = ALL_FACTORIES[name]()
    params = {
        str(jnp.dtype(dtype)): {
            "w": jnp.array([[0.5, 1.0], [2.0, 0.25]], dtype),
            "b": jnp.array([0.1], dtype),
        }
        for dtype in (jnp.float16, jnp.bfloat16)
    }
    step = jax.jit(
        lambda g, s, p: tx.update(g, s, p, value=jnp.asarray(1.0, jnp.float16)),
        compiler_options=FAST_COMPILE,
    )
    for kind in ("zero", "tiny", "huge"):
        grads, state = _special(params, kind), tx.init(params)
        for _ in range(3):
            updates, state = step(grads, state, params)
            for p, u in zip(jax.tree.leaves(params), jax.tree.leaves(updates), strict=True):
                assert u.dtype == p.dtype and bool(jnp.all(jnp.isfinite(u))), (kind, u)
            for s in jax.tree.leaves(state):
                if jnp.issubdtype(s.dtype, jnp.inexact):
                    assert not bool(jnp.any(jnp.isnan(s))), (kind, s)


def test_float16_zero_gradient_is_a_zero_update_not_nan() -> None:
    """Optax evaluates eps in float16, where 1e-8 is zero, and returns 0/0 (its #1784)."""
    g = jnp.zeros(4, jnp.float16)
    for tx in (oc.scale_by_rms(), oc.scale_by_stddev(), oc.scale_by_rms(eps_in_sqrt=False)):
        u, _ = tx.update(g, tx.init(g))
        assert u.dtype == jnp.float16
        _close(u.astype(jnp.float32), np.zeros(4))


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
def test_none_leaves_pass_through_and_jit_matches_eager(name: str) -> None:
    tx = ALL_FACTORIES[name]()
    params = {"w": jnp.array([0.5, 1.0, 2.0]), "frozen": None, "b": jnp.array(0.3)}
    grads = {"w": jnp.array([0.1, 0.2, -0.3]), "frozen": None, "b": jnp.array(-0.5)}
    state = tx.init(params)
    eager, _ = tx.update(grads, state, params, value=jnp.float64(1.0))
    jitted, _ = eqx.filter_jit(lambda t, g, s, p: t.update(g, s, p, value=jnp.float64(1.0)))(
        tx, grads, state, params
    )
    assert eager["frozen"] is None and jitted["frozen"] is None
    assert eager["b"].shape == ()
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: oc.scale_by_rss(initial_accumulator_value=0.0, eps=0.0),
        lambda: oc.scale_by_rms(eps=0.0, eps_in_sqrt=False),
        lambda: oc.scale_by_stddev(eps=1e-8, eps_in_sqrt=False, bias_correction=True),
        lambda: oc.scale_by_sm3(eps=0.0),
        lambda: oc.scale_by_factored_rms(min_dim_size_to_factor=2, epsilon=0.0),
        lambda: oc.scale_by_adadelta(eps=0.0),
        lambda: oc.scale_by_distance_over_gradients(eps=0.0),
        lambda: oc.normalize_by_update_norm(eps=0.0),
        lambda: oc.clip_by_block_rms(1.0),
        lambda: oc.adaptive_grad_clip(0.1),
    ],
)
def test_gradients_through_steps_with_zero_gradients_are_finite(factory: Callable[[], Any]) -> None:
    """Where a gradient coordinate (or a whole leaf) is zero, differentiating the loss after
    a few steps with respect to the initial params gives no NaN (no 0/0 or sqrt'(0))."""
    tx = factory()

    def loss(p: Any) -> jax.Array:
        return jnp.sum(p["m"][0] ** 2) + jnp.sum(p["v"] ** 2)  # row 1 of m has no gradient

    def final_loss(p0: Any) -> jax.Array:
        p, state = p0, tx.init(p0)
        for _ in range(2):
            u, state = tx.update(jax.grad(loss)(p), state, p)
            p = jax.tree.map(lambda a, b: a - 0.1 * b, p, u)
        return loss(p)

    p0 = {"m": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "v": jnp.zeros(2)}
    grads = jax.jit(jax.grad(final_loss), compiler_options=FAST_COMPILE)(p0)
    for leaf in jax.tree.leaves(grads):
        assert bool(jnp.all(jnp.isfinite(leaf))), leaf


def test_a_hyperparameter_is_data_not_a_constant() -> None:
    """Changing the decay of a transform passed to a jitted step reuses the compiled step."""
    traces = []

    @eqx.filter_jit
    def step(tx: Any, g: Any) -> Any:
        traces.append(None)
        return tx.update(g, tx.init(g))[0]

    g = jnp.ones(3)
    a = step(oc.scale_by_rms(decay=0.9), g)
    b = step(oc.scale_by_rms(decay=0.5), g)
    assert len(traces) == 1 and not np.allclose(a, b)
