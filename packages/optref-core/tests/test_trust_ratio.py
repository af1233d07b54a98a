"""Per-leaf scalings: trust ratios (LARS, LAMB) and the parameter-block norm and RMS.

Validation, low precision, ``None`` leaves and ``jit`` are checked for every family in
``test_adaptive.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

jax.config.update("jax_enable_x64", True)

P = {"w": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "b": jnp.array([1.0, -1.0, 1.0, -1.0])}
G = {"w": jnp.array([[0.5, 0.0], [0.0, 0.0]]), "b": jnp.array([0.0, 0.2, 0.0, 0.0])}


def test_trust_ratio_scales_each_leaf_to_its_params_norm() -> None:
    tx = oc.scale_by_trust_ratio(trust_coefficient=0.5)
    u, _ = tx.update(G, tx.init(P), P)
    # ||p_w|| = 5, ||g_w|| = 0.5: the w step has norm 0.5 * 5; the b step 0.5 * 2.
    np.testing.assert_allclose(u["w"], 0.5 * 5 / 0.5 * G["w"], rtol=1e-15)
    np.testing.assert_allclose(u["b"], 0.5 * 2 / 0.2 * G["b"], rtol=1e-15)


def test_trust_ratio_is_one_where_a_norm_is_zero_and_differentiable_there() -> None:
    tx = oc.scale_by_trust_ratio()
    zeros = jax.tree.map(jnp.zeros_like, P)
    u, _ = tx.update(G, tx.init(P), zeros)
    np.testing.assert_array_equal(u["w"], G["w"])
    u, _ = tx.update(zeros, tx.init(P), P)
    np.testing.assert_array_equal(u["b"], zeros["b"])

    def f(g: jax.Array) -> jax.Array:
        return jnp.sum(tx.update({"x": g}, tx.init({"x": g}), {"x": jnp.ones(3)})[0]["x"])

    assert bool(jnp.all(jnp.isfinite(jax.grad(f)(jnp.zeros(3)))))


def test_trust_ratio_min_norm_and_eps() -> None:
    tx = oc.scale_by_trust_ratio(min_norm=1.0, eps=0.5)
    u, _ = tx.update(G, tx.init(P), P)
    # ||g_w|| = 0.5 is clipped up to 1: ratio 5 / (1 + 0.5).
    np.testing.assert_allclose(u["w"], 5 / 1.5 * G["w"], rtol=1e-15)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16, jnp.float32])
def test_trust_ratio_norms_neither_overflow_nor_underflow(dtype: jnp.dtype) -> None:
    tx = oc.scale_by_trust_ratio()
    p = jnp.array([3.0, -4.0], dtype)
    info = jnp.finfo(dtype)
    for size in (0.5 * float(info.max), float(info.tiny)):
        g = jnp.array([size, size], dtype)
        u, _ = tx.update(g, tx.init(p), p)
        # The step has the params' norm, 5, whatever the scale of g.
        norm = float(jnp.linalg.norm(u.astype(jnp.float64)))
        np.testing.assert_allclose(norm, 5.0, rtol=float(info.eps) * 4)


def test_param_block_norm_and_rms() -> None:
    tx = oc.scale_by_param_block_norm(min_scale=3.0)
    u, _ = tx.update(G, tx.init(P), P)
    np.testing.assert_allclose(u["w"], 5.0 * G["w"], rtol=1e-15)
    np.testing.assert_allclose(u["b"], 3.0 * G["b"], rtol=1e-15)  # ||p_b|| = 2 < 3
    tx = oc.scale_by_param_block_rms(min_scale=1e-3)
    u, _ = tx.update(G, tx.init(P), P)
    np.testing.assert_allclose(u["w"], 2.5 * G["w"], rtol=1e-15)  # sqrt(25 / 4)
    np.testing.assert_allclose(u["b"], 1.0 * G["b"], rtol=1e-15)


def test_lamb_step_has_learning_rate_times_params_norm_per_leaf() -> None:
    lr, wd = 0.1, 0.01
    tx = oc.lamb(lr, weight_decay=wd)
    u, state = tx.update(G, tx.init(P), P)
    for key in P:
        np.testing.assert_allclose(
            jnp.linalg.norm(u[key]), lr * jnp.linalg.norm(P[key]), rtol=1e-14
        )
    assert len(state) == 4 and int(state[0].count) == 1


def test_lars_scales_then_accumulates_momentum() -> None:
    lr, wd, tc, mu = 0.1, 0.01, 0.001, 0.9
    tx = oc.lars(lr, weight_decay=wd, trust_coefficient=tc, momentum=mu)
    state = tx.init(P)
    trace = jax.tree.map(jnp.zeros_like, P)
    for _ in range(3):
        u, state = tx.update(G, state, P)
        for key in P:
            d = G[key] + wd * P[key]
            step = -lr * tc * jnp.linalg.norm(P[key]) / jnp.linalg.norm(d) * d
            trace[key] = step + mu * trace[key]
            np.testing.assert_allclose(u[key], trace[key], rtol=1e-14)


def test_lars_masks_select_the_leaves_that_decay_and_are_scaled() -> None:
    mask = {"w": True, "b": False}
    tx = oc.lars(0.1, weight_decay=0.5, weight_decay_mask=mask, trust_ratio_mask=mask, momentum=0.0)
    u, _ = tx.update(G, tx.init(P), P)
    np.testing.assert_allclose(u["b"], -0.1 * G["b"], rtol=1e-15)  # neither decayed nor scaled
    d = G["w"] + 0.5 * P["w"]
    expected = -0.1 * 0.001 * 5 / jnp.linalg.norm(d) * d
    np.testing.assert_allclose(u["w"], expected, rtol=1e-14)
