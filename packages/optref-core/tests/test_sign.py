"""Sign methods: scale_by_sign, sign_sgd, signum and Lion.

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

G = [
    jnp.array([1.0, -2.0, 0.0, 0.5]),
    jnp.array([-0.3, 0.1, 1.0, -2.0]),
    jnp.array([0.4, 2.0, -1.0, 0.25]),
]


def _updates(tx: oc.GradientTransformation, params: jax.Array | None = None) -> list[np.ndarray]:
    params = jnp.ones(4) if params is None else params
    state, out = tx.init(params), []
    for g in G:
        u, state = tx.update(g, state, params)
        out.append(np.asarray(u))
    return out


def test_scale_by_sign_and_sign_sgd() -> None:
    for u, g in zip(_updates(oc.scale_by_sign()), G, strict=True):
        np.testing.assert_array_equal(u, np.sign(g))
    for u, g in zip(_updates(oc.sign_sgd(0.1)), G, strict=True):
        np.testing.assert_allclose(u, -0.1 * np.sign(g), rtol=1e-15)


def test_sign_of_complex_updates_is_the_unit_phase() -> None:
    g = jnp.array([3 + 4j, 0j, -2j])
    u, _ = oc.scale_by_sign().update(g, oc.EmptyState())
    np.testing.assert_allclose(u, [0.6 + 0.8j, 0, -1j], rtol=1e-15)


def test_signum_is_the_sign_of_an_undebiased_moving_average() -> None:
    beta, m, expected = 0.5, np.zeros(4), []
    for g in G:
        m = beta * m + (1 - beta) * np.asarray(g)
        expected.append(-0.1 * np.sign(m))
    np.testing.assert_allclose(_updates(oc.signum(0.1, beta)), expected, rtol=1e-15)
    state = oc.signum(0.1).init(jnp.ones(4))
    assert state[0].ema.shape == (4,) and int(state[0].count) == 0


@pytest.mark.parametrize(
    ("mode", "phi"),
    [
        ("hard", np.sign),
        ("smooth", lambda x: np.tanh(3.0 * x)),
        ("refined", lambda x: np.where(np.abs(x) < 1, x, np.sign(x))),
    ],
)
def test_lion_steps_on_the_previous_momentum_then_updates_it(mode: str, phi) -> None:
    b1, b2 = 0.8, 0.9
    m, expected = np.zeros(4), []
    for g in G:
        expected.append(phi((1 - b1) * np.asarray(g) + b1 * m))
        m = b2 * m + (1 - b2) * np.asarray(g)
    tx = oc.scale_by_lion(b1, b2, mode=mode, smooth_beta=3.0)
    np.testing.assert_allclose(_updates(tx), expected, rtol=1e-14)


def test_lion_alias_adds_decoupled_weight_decay() -> None:
    p = jnp.array([1.0, -2.0, 3.0, 0.5])
    lion = _updates(oc.lion(0.01, weight_decay=0.1), p)
    signs = _updates(oc.scale_by_lion(), p)
    for u, s in zip(lion, signs, strict=True):
        np.testing.assert_allclose(u, -0.01 * (s + 0.1 * np.asarray(p)), rtol=1e-14)


def test_lion_mu_dtype_stores_the_momentum_in_that_dtype() -> None:
    tx = oc.scale_by_lion(mu_dtype=jnp.bfloat16)
    params = jnp.ones(4, jnp.float32)
    state = tx.init(params)
    u, state = tx.update(G[0].astype(jnp.float32), state, params)
    assert state.mu.dtype == jnp.bfloat16 and u.dtype == jnp.float32
