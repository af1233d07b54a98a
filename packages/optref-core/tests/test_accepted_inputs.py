"""Inputs that Optax accepts and optref must too, and hyperparameters it must refuse early."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

ALIASES = ["adam", "adamw", "nadam", "lion", "sgd", "rmsprop", "adagrad", "lamb", "adafactor"]


@pytest.mark.parametrize("name", ALIASES)
def test_numpy_float64_params_work_when_64_bit_mode_is_off(name: str) -> None:
    """A checkpoint loaded with NumPy holds float64 arrays; with x64 off JAX computes them
    in float32, and the state ``init`` builds from them is float32: ``update`` takes both."""
    with jax.enable_x64(False):
        params = {"w": np.linspace(0.5, 2.0, 12).reshape(3, 4), "b": np.ones(4)}
        tx = getattr(oc, name)(1e-2)
        updates, _ = jax.jit(tx.update)(params, tx.init(params), params)
        as_float32 = jax.tree.map(lambda x: x.astype(np.float32), params)
        expected, _ = jax.jit(tx.update)(as_float32, tx.init(as_float32), as_float32)
    for got, want in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
        assert got.dtype == jnp.float32
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ALIASES)
def test_python_number_leaves_are_computed_as_arrays(name: str) -> None:
    tx = getattr(oc, name)(1e-2)
    params = {"t": 1.5, "w": jnp.ones(3)}
    as_arrays = {"t": jnp.asarray(1.5), "w": jnp.ones(3)}
    for step in (tx.update, jax.jit(tx.update)):
        updates, _ = step(params, tx.init(params), params)
        expected, _ = step(as_arrays, tx.init(as_arrays), as_arrays)
        np.testing.assert_array_equal(updates["t"], expected["t"])


@pytest.mark.parametrize("name", ["adam", "adamw", "lion", "sgd", "rmsprop", "lamb"])
def test_no_learning_rate_means_no_scaling(name: str) -> None:
    """``learning_rate=None``, as in Optax: the alias's direction, not scaled, and
    ``scale_by_learning_rate(None)`` is the identity."""
    assert isinstance(oc.scale_by_learning_rate(None), oc.Identity)
    assert isinstance(oc.scale_by_learning_rate(), oc.Identity)
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    grads = {"w": jnp.linspace(0.3, -0.7, 6)}
    unscaled, scaled = getattr(oc, name)(None), getattr(oc, name)(1.0)
    for _ in range(2):  # the state's layout and its steps are those of a constant rate
        u, s = unscaled.update(grads, unscaled.init(params), params)
        v, _ = scaled.update(grads, scaled.init(params), params)
        assert jax.tree.structure(s) == jax.tree.structure(scaled.init(params))
        np.testing.assert_array_equal(u["w"], -v["w"])


def test_a_learning_rate_of_none_in_the_class_is_refused_with_the_way_out() -> None:
    with pytest.raises(oc.HyperparameterError, match=r"learning_rate.*got None.*identity"):
        oc.ScaleByLearningRate(None)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda v: oc.adam(1e-3, b1=v), "b1"),
        (lambda v: oc.sgd(v), "learning_rate"),
        (lambda v: oc.rmsprop(1e-3, eps=v), "eps"),
    ],
)
def test_a_hyperparameter_that_is_not_a_scalar_is_refused_when_built(make, field) -> None:
    with pytest.raises(oc.HyperparameterError, match=rf"{field} must be a scalar.*\(2,\)"):
        make(jnp.array([0.9, 0.8]))
    # Inside jax.vmap each member sees a scalar: a sweep still builds.
    batch = jax.vmap(make)(jnp.array([0.9, 0.8]))
    assert jax.tree.leaves(batch)[0].shape == (2,)


def test_nadam_takes_nesterov_like_optax() -> None:
    params = {"w": jnp.linspace(-1.0, 1.0, 6)}
    for nadam, adam in ((oc.nadam, oc.adam), (oc.nadamw, oc.adamw)):
        plain, same = nadam(1e-2, nesterov=False), adam(1e-2)
        u, _ = plain.update(params, plain.init(params), params)
        v, _ = same.update(params, same.init(params), params)
        np.testing.assert_array_equal(u["w"], v["w"])
