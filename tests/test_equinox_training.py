"""An Equinox MLP trained with optref.core.adam: the loss falls, and the float64 run is
Optax's run."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import optref.core as oc


def _train(optimizer, steps: int = 200):
    key_model, key_data = jax.random.split(jax.random.key(0))
    model = eqx.nn.MLP(2, 1, 16, 2, key=key_model)
    x = jax.random.normal(key_data, (64, 2))
    y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])

    def loss_fn(model):
        return jnp.mean((jax.vmap(model)(x) - y) ** 2)

    @eqx.filter_jit
    def step(model, state):
        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        params = eqx.filter(model, eqx.is_inexact_array)
        updates, state = optimizer.update(grads, state, params)
        return eqx.apply_updates(model, updates), state, loss

    state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    losses = []
    for _ in range(steps):
        model, state, loss = step(model, state)
        losses.append(float(loss))
    return losses, model


def test_mlp_trains_and_matches_optax_in_float64() -> None:
    ours, model_ours = _train(oc.adam(1e-2))
    theirs, model_theirs = _train(optax.adam(1e-2))
    assert ours[-1] < 0.2 * ours[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)
    leaves_ours = jax.tree.leaves(eqx.filter(model_ours, eqx.is_inexact_array))
    leaves_theirs = jax.tree.leaves(eqx.filter(model_theirs, eqx.is_inexact_array))
    for a, b in zip(leaves_ours, leaves_theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_filtered_model_has_none_leaves_that_pass_through() -> None:
    model = eqx.nn.MLP(2, 1, 4, 1, key=jax.random.key(1))
    params = eqx.filter(model, eqx.is_inexact_array)
    assert any(leaf is None for leaf in jax.tree.leaves(params, is_leaf=lambda v: v is None))
    tx = oc.adam(1e-3)
    updates, _ = tx.update(params, tx.init(params), params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
