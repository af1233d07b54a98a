"""The Adam family (AdaMax, Adan, AMSGrad, AdaBelief, NovoGrad, RAdam, Yogi, optimistic Adam).

Also the checks shared with the sign and trust-ratio families (see ``ALL_FACTORIES``):
validation messages, no NaN or Inf from zero, tiny or huge low-precision gradients,
``None`` leaves, and ``jit``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, localcontext
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc
from optref.core._radam import rectification

jax.config.update("jax_enable_x64", True)

#: Every transform and alias of the three families, with arguments that make them work.
ALL_FACTORIES: dict[str, Callable[[], oc.GradientTransformation]] = {
    "scale_by_adamax": oc.scale_by_adamax,
    "scale_by_adan": oc.scale_by_adan,
    "scale_by_amsgrad": oc.scale_by_amsgrad,
    "scale_by_belief": oc.scale_by_belief,
    "scale_by_novograd": lambda: oc.scale_by_novograd(weight_decay=0.1),
    "scale_by_radam": oc.scale_by_radam,
    "scale_by_yogi": oc.scale_by_yogi,
    "scale_by_lion": oc.scale_by_lion,
    "scale_by_lion-smooth": lambda: oc.scale_by_lion(mode="smooth", smooth_beta=2.0),
    "scale_by_sign": oc.scale_by_sign,
    "scale_by_trust_ratio": oc.scale_by_trust_ratio,
    "scale_by_param_block_norm": oc.scale_by_param_block_norm,
    "scale_by_param_block_rms": oc.scale_by_param_block_rms,
    "adabelief": lambda: oc.adabelief(0.1),
    "adamax": lambda: oc.adamax(0.1),
    "adamaxw": lambda: oc.adamaxw(0.1),
    "adan": lambda: oc.adan(0.1, weight_decay=0.1),
    "amsgrad": lambda: oc.amsgrad(0.1),
    "lamb": lambda: oc.lamb(0.1, weight_decay=0.1),
    "lars": lambda: oc.lars(0.1, weight_decay=0.1),
    "lion": lambda: oc.lion(0.1),
    "novograd": lambda: oc.novograd(0.1),
    "optimistic_adam_v2": lambda: oc.optimistic_adam_v2(0.1, beta=0.5),
    "radam": lambda: oc.radam(0.1),
    "yogi": lambda: oc.yogi(0.1),
    "sign_sgd": lambda: oc.sign_sgd(0.1),
    "signum": lambda: oc.signum(0.1),
}


def _run(tx: oc.GradientTransformation, params: Any, grads: list[Any]) -> list[Any]:
    state, out = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params)
        out.append(u)
    return out


# --- shared: validation ------------------------------------------------------------------

BAD = [
    (oc.scale_by_adamax, "b1", 1.0, "[0, 1)"),
    (oc.scale_by_adamax, "b2", 1.5, "[0, 1]"),
    (oc.scale_by_adamax, "eps", -1e-8, "[0, ∞]"),
    (oc.scale_by_adan, "b3", -0.1, "[0, 1)"),
    (oc.scale_by_adan, "eps_root", -1.0, "[0, ∞]"),
    (oc.scale_by_amsgrad, "b2", 1.0, "[0, 1)"),
    (oc.scale_by_belief, "eps", -1.0, "[0, ∞]"),
    (oc.scale_by_novograd, "weight_decay", -0.1, "[0, ∞]"),
    (oc.scale_by_radam, "threshold", 3.0, "[4, ∞]"),
    (oc.scale_by_yogi, "initial_accumulator_value", -1.0, "[0, ∞]"),
    (oc.scale_by_lion, "b2", 1.1, "[0, 1]"),
    (oc.scale_by_lion, "smooth_beta", 0.0, "(0, ∞]"),
    (oc.scale_by_trust_ratio, "trust_coefficient", -1.0, "[0, ∞]"),
    (oc.scale_by_trust_ratio, "min_norm", -1.0, "[0, ∞]"),
    (oc.scale_by_param_block_norm, "min_scale", -1.0, "[0, ∞]"),
    (oc.scale_by_param_block_rms, "min_scale", float("nan"), "[0, ∞]"),
]


@pytest.mark.parametrize(("factory", "argument", "value", "interval"), BAD)
def test_bad_hyperparameters_name_the_argument_and_the_range(
    factory: Callable[..., Any], argument: str, value: float, interval: str
) -> None:
    expected = f"{factory.__name__}: {argument} must be in {interval}"
    with pytest.raises(oc.HyperparameterError, match=re.escape(expected)):
        factory(**{argument: value})


def test_unknown_lion_mode_is_named() -> None:
    with pytest.raises(ValueError, match=r"scale_by_lion: mode must be one of .*'hard'"):
        oc.scale_by_lion(mode="soft")


def test_transforms_that_need_params_say_so() -> None:
    g = {"w": jnp.ones(3)}
    for tx in (oc.scale_by_trust_ratio(), oc.scale_by_param_block_rms(), oc.scale_by_novograd()):
        with pytest.raises(ValueError, match="update needs params"):
            tx.update(g, tx.init(g))


# --- shared: low precision, None leaves, jit ---------------------------------------------


def _special(params: Any, kind: str) -> Any:
    def leaf(p: jax.Array) -> jax.Array:
        info = jnp.finfo(p.dtype)
        size = {"zero": 0.0, "tiny": float(info.tiny), "huge": 0.01 * float(info.max)}[kind]
        signs = jnp.where(jnp.arange(p.size).reshape(p.shape) % 2 == 0, 1.0, -1.0)
        return (signs * size).astype(p.dtype)

    return jax.tree.map(leaf, params)


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
def test_zero_tiny_and_huge_low_precision_gradients_give_no_nan_or_inf(name: str) -> None:
    """Updates stay finite and nothing is NaN, for float16 and bfloat16 leaves (one tree,
    one compilation). A state that holds the square of a huge bfloat16 gradient (or the
    squared norm of a huge float16 one) is +inf: that number is not representable in the
    state's dtype."""
    tx = ALL_FACTORIES[name]()
    params = {
        jnp.dtype(dtype).name: {
            "w": jnp.array([[0.5, -1.0], [2.0, 0.25]], dtype),
            "b": jnp.array([0.1], dtype),
        }
        for dtype in (jnp.float16, jnp.bfloat16)
    }
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for kind in ("zero", "tiny", "huge"):
        grads, state = _special(params, kind), tx.init(params)
        for _ in range(3):
            updates, state = step(grads, state, params)
            for u, p in zip(jax.tree.leaves(updates), jax.tree.leaves(params), strict=True):
                assert u.dtype == p.dtype and bool(jnp.all(jnp.isfinite(u))), (kind, u)
            for s in jax.tree.leaves(state):
                assert not bool(jnp.any(jnp.isnan(s))), (kind, s)


@pytest.mark.parametrize("name", sorted(ALL_FACTORIES))
def test_none_leaves_pass_through_and_jit_matches_eager(name: str) -> None:
    tx = ALL_FACTORIES[name]()
    params = {"w": jnp.array([0.5, -1.0, 2.0]), "frozen": None, "b": jnp.array(0.3)}
    grads = {"w": jnp.array([0.1, 0.2, -0.3]), "frozen": None, "b": jnp.array(-0.5)}
    state = tx.init(params)
    eager, _ = tx.update(grads, state, params)
    jitted, _ = eqx.filter_jit(lambda t, g, s, p: t.update(g, s, p))(tx, grads, state, params)
    assert eager["frozen"] is None and jitted["frozen"] is None
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-300)


def test_a_hyperparameter_is_data_not_a_constant() -> None:
    """Changing b2 of a transform passed to a jitted step reuses the compiled step."""
    traces = []

    @eqx.filter_jit
    def step(tx: oc.GradientTransformation, g: Any, s: Any) -> Any:
        traces.append(1)
        return tx.update(g, s)[0]

    g = jnp.array([1.0, -2.0])
    for b2 in (0.9, 0.99, 0.999):
        tx = oc.scale_by_yogi(b2=b2)
        step(tx, g, tx.init(g))
    assert len(traces) == 1


# --- formulas -----------------------------------------------------------------------------

G = [np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -1.0]), np.array([-0.4, 2.0, 0.0])]


def _updates(tx: oc.GradientTransformation, params: Any = None) -> list[np.ndarray]:
    params = jnp.zeros(3) if params is None else params
    return [np.asarray(u) for u in _run(tx, params, [jnp.asarray(g) for g in G])]


def test_adamax_is_the_debiased_momentum_over_a_decaying_max() -> None:
    b1, b2, eps = 0.9, 0.99, 1e-3
    m, u, expected = np.zeros(3), np.zeros(3), []
    for t, g in enumerate(G, start=1):
        m = b1 * m + (1 - b1) * g
        u = np.maximum(b2 * u, np.abs(g) + eps)
        expected.append(m / (1 - b1**t) / u)
    np.testing.assert_allclose(_updates(oc.scale_by_adamax(b1, b2, eps)), expected, rtol=1e-14)


def test_adan_first_step_is_normalised_gradient_then_adds_the_differences() -> None:
    b1, b2, b3, eps = 0.9, 0.8, 0.95, 1e-8
    m = v = n = prev = np.zeros(3)
    expected = []
    for t, g in enumerate(G, start=1):
        diff = np.zeros(3) if t == 1 else g - prev
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * diff
        n = b3 * n + (1 - b3) * (g + (1 - b2) * diff) ** 2
        direction = m / (1 - b1**t) + (1 - b2) * v / (1 - b2**t)
        expected.append(direction / (np.sqrt(n / (1 - b3**t)) + eps))
        prev = g
    updates = _updates(oc.scale_by_adan(b1, b2, b3, eps))
    np.testing.assert_allclose(updates[0], np.sign(G[0]) * np.abs(G[0]) / (np.abs(G[0]) + eps))
    np.testing.assert_allclose(updates, expected, rtol=1e-13)


def test_amsgrad_second_moment_never_decreases() -> None:
    tx = oc.scale_by_amsgrad(b1=0.0, b2=0.5, eps=0.0)
    grads = [jnp.array([4.0]), jnp.array([1.0]), jnp.array([1.0])]
    state = tx.init(grads[0])
    maxima = []
    for g in grads:
        u, state = tx.update(g, state)
        maxima.append(float(state.nu_max[0]))
    # Debiased v: 16, then (0.5 * 8 + 0.5) / 0.75 = 6, so nu_max stays 16.
    assert maxima == [16.0, 16.0, 16.0]
    np.testing.assert_allclose(u, 1.0 / 4.0)


def test_amsgrad_without_bias_corrections_is_the_paper() -> None:
    b1, b2 = 0.9, 0.99
    m, v, v_max, expected = np.zeros(3), np.zeros(3), np.zeros(3), []
    for g in G:
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g**2
        v_max = np.maximum(v_max, v)
        expected.append(m / (np.sqrt(v_max) + 1e-8))
    tx = oc.scale_by_amsgrad(b1, b2, bias_correction_mu=False, bias_correction_nu=False)
    np.testing.assert_allclose(_updates(tx), expected, rtol=1e-14)


@pytest.mark.parametrize("nesterov", [False, True])
def test_adabelief_divides_by_the_spread_of_the_gradient_around_its_average(
    nesterov: bool,
) -> None:
    b1, b2, eps, eps_root = 0.9, 0.99, 1e-6, 1e-12
    m, s, expected = np.zeros(3), np.zeros(3), []
    for t, g in enumerate(G, start=1):
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps_root
        m_hat = (
            b1 * m / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
            if nesterov
            else m / (1 - b1**t)
        )
        expected.append(m_hat / (np.sqrt(s / (1 - b2**t)) + eps))
    tx = oc.scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov)
    np.testing.assert_allclose(_updates(tx), expected, rtol=1e-13)


def test_novograd_normalises_each_leaf_by_its_gradient_norm() -> None:
    b1, b2, eps, wd = 0.9, 0.5, 0.0, 0.1
    p = np.array([1.0, 2.0, -1.0])
    m, v, expected = np.zeros(3), 0.0, []
    for t, g in enumerate(G, start=1):
        v = g @ g if t == 1 else b2 * v + (1 - b2) * (g @ g)
        m = b1 * m + g / (np.sqrt(v) + eps) + wd * p
        expected.append(m)
    tx = oc.scale_by_novograd(b1, b2, eps, weight_decay=wd)
    np.testing.assert_allclose(_updates(tx, jnp.asarray(p)), expected, rtol=1e-14)
    state = tx.init({"a": jnp.ones((2, 3)), "b": jnp.ones(4, jnp.float32)})
    assert state.nu["a"].shape == () and state.nu["b"].dtype == jnp.float32


def _exact_rho_and_r(b2: float, t: int) -> tuple[float, float]:
    """RAdam's rho_t and r_t from the textbook formula in 60-digit decimal arithmetic."""
    with localcontext() as context:
        context.prec = 60
        b = Decimal(b2)  # the binary value of b2, exactly
        rho_inf = 2 / (1 - b) - 1
        rho = rho_inf - 2 * t * b**t / (1 - b**t)
        r2 = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
        return float(rho), float(r2.sqrt()) if r2 > 0 else float("nan")


@pytest.mark.parametrize("b2", [0.5, 0.9, 0.99, 0.999, 0.9999])
def test_radam_rectification_is_exact(b2: float) -> None:
    rectify = jax.jit(rectification)
    for t in (1, 2, 3, 5, 6, 7, 20, 100, 10_000):
        rho, r_exact = _exact_rho_and_r(b2, t)
        r, applies = rectify(jnp.float64(b2), t, 4.0)
        assert bool(applies) == (rho >= 4)
        if rho >= 4:  # r is ill-conditioned near rho = 4: d log r / d log rho ~ rho/(rho-4)
            np.testing.assert_allclose(float(r), r_exact, rtol=3e-16 * (1 + rho / (rho - 4)))
        r32, _ = rectify(jnp.float32(b2), t, 4.0)
        rho32, r32_exact = _exact_rho_and_r(float(np.float32(b2)), t)
        if rho32 >= 4.5:  # near 4, r itself is ill-conditioned in rho
            np.testing.assert_allclose(float(r32), r32_exact, rtol=1e-5)


def test_radam_is_momentum_until_rho_reaches_the_threshold_then_rectified_adam() -> None:
    tx = oc.scale_by_radam(b1=0.9, b2=0.999)
    g = jnp.array([1.0, -2.0, 0.5])
    state = tx.init(g)
    for t in range(1, 8):
        u, state = tx.update(g, state)
        rho, r = _exact_rho_and_r(0.999, t)
        # A constant gradient: the debiased moments are g and g**2 exactly.
        expected = g if rho < 5 else r * g / (jnp.abs(g) + 1e-8)
        np.testing.assert_allclose(u, expected, rtol=1e-13)


def test_radam_gradients_through_the_first_steps_are_finite() -> None:
    def loss(p: jax.Array, b2: jax.Array) -> jax.Array:
        tx = oc.scale_by_radam(b2=b2)

        def step(carry: Any, _: None) -> tuple[Any, None]:
            p, state = carry
            u, state = tx.update(2 * p * jnp.arange(1.0, 4.0), state)
            return (p - 0.01 * u, state), None

        # rho_t < 4 on steps 1 to 4 (the branch not taken), rectified from step 6.
        (p, _), _ = jax.lax.scan(step, (p, tx.init(p)), None, length=8)
        return jnp.sum(p**2)

    p0 = jnp.array([0.3, -0.2, 2.0])
    g_p, g_b2 = jax.jit(jax.grad(loss, argnums=(0, 1)))(p0, jnp.asarray(0.999))
    assert bool(jnp.all(jnp.isfinite(g_p))) and bool(jnp.isfinite(g_b2))
    h, loss = 1e-7, jax.jit(loss)
    central = (loss(p0, jnp.asarray(0.999 + h)) - loss(p0, jnp.asarray(0.999 - h))) / (2 * h)
    np.testing.assert_allclose(g_b2, central, rtol=1e-5)


def test_yogi_moves_the_second_moment_additively_towards_the_squared_gradient() -> None:
    b1, b2, eps, v0 = 0.9, 0.99, 1e-3, 1e-6
    m, v, expected = np.full(3, v0), np.full(3, v0), []
    for t, g in enumerate(G, start=1):
        m = b1 * m + (1 - b1) * g
        v = v - (1 - b2) * np.sign(v - g**2) * g**2
        expected.append(m / (1 - b1**t) / (np.sqrt(v / (1 - b2**t)) + eps))
    np.testing.assert_allclose(_updates(oc.scale_by_yogi(b1, b2, eps)), expected, rtol=1e-14)


def test_yogi_with_infinite_moments_gives_no_nan() -> None:
    tx = oc.scale_by_yogi()
    g = jnp.array([3e38, -3e38], jnp.float32)  # squares overflow float32
    state = tx.init(g)
    for _ in range(3):
        u, state = tx.update(g, state)
    assert not bool(jnp.any(jnp.isnan(state.nu))) and bool(jnp.all(jnp.isfinite(u)))


def test_optimistic_adam_v2_first_step_is_alpha_times_adam() -> None:
    lr, alpha, beta = 0.1, 0.7, 0.4
    adam_steps = _updates(oc.scale_by_adam(nesterov=True))
    steps = _updates(oc.optimistic_adam_v2(lr, alpha=alpha, beta=beta))
    np.testing.assert_allclose(steps[0], -lr * alpha * adam_steps[0], rtol=1e-14)
    expected = -lr * ((alpha + beta) * adam_steps[1] - beta * adam_steps[0])
    np.testing.assert_allclose(steps[1], expected, rtol=1e-14)


def test_optimistic_adam_is_deprecated_and_takes_no_schedule() -> None:
    with pytest.warns(DeprecationWarning, match="optimistic_adam_v2"):
        tx = oc.optimistic_adam(0.1, optimism=0.05)
    expected = _updates(oc.optimistic_adam_v2(1.0, alpha=0.1, beta=0.05))
    np.testing.assert_allclose(_updates(tx), expected, rtol=1e-14)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="schedule"):
        oc.optimistic_adam(lambda count: 0.1)
