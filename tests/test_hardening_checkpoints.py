"""Checkpoints lose nothing: save after K steps, restore into a fresh template, go on.

For every transformation of the catalogue and in float32, bfloat16 and float64, the
params and the state written with ``eqx.tree_serialise_leaves`` after ``K`` steps and
read back with ``eqx.tree_deserialise_leaves`` into ``(params0, tx.init(params0))`` (a
template of the same shapes, never stepped) continue bit for bit as the run that never
stopped.

A typed PRNG key (the state of ``add_noise`` and ``noisy_sgd`` holds one, as Optax's
does) is not an array Equinox's default filter spec can write; the filter specs below
write its key data and wrap it again on reading, with the template's implementation.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

K = 3  # steps before the checkpoint
M = 3  # steps after it


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def serialise_keys(f, x):
    """Equinox's default serialisation, with a typed PRNG key written as its key data."""
    if _is_key(x):
        return eqx.default_serialise_filter_spec(f, jax.random.key_data(x))
    return eqx.default_serialise_filter_spec(f, x)


def deserialise_keys(f, x):
    """The inverse of :func:`serialise_keys`: key data read back into a typed key."""
    if _is_key(x):
        data = eqx.default_deserialise_filter_spec(f, jax.random.key_data(x))
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return eqx.default_deserialise_filter_spec(f, x)


def _bits(tree) -> list[np.ndarray]:
    """Every leaf as raw bits (PRNG keys as their key data), for bitwise comparison."""

    def bits(x):
        if _is_key(x):
            x = jax.random.key_data(x)
        return np.ascontiguousarray(np.atleast_1d(np.asarray(x))).view(np.uint8)

    return [bits(x) for x in jax.tree.leaves(tree)]


def _assert_bit_identical(actual, expected) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, b in zip(_bits(actual), _bits(expected), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float64], ids=str)
def test_checkpoint_resumes_bit_identically(transformation_case, case_run, dtype, tmp_path):
    run = case_run(transformation_case, dtype)
    tx = run.tx
    params, state = run.params, tx.init(run.params)
    for _ in range(K):
        params, state, _ = run.step(tx, params, state)
    checkpoint = tmp_path / "checkpoint.eqx"
    eqx.tree_serialise_leaves(checkpoint, (params, state), filter_spec=serialise_keys)

    template = (run.params, tx.init(run.params))
    restored = eqx.tree_deserialise_leaves(checkpoint, template, filter_spec=deserialise_keys)
    _assert_bit_identical(restored, (params, state))

    resumed_params, resumed_state = restored
    for _ in range(M):
        params, state, updates = run.step(tx, params, state)
        resumed_params, resumed_state, resumed_updates = run.step(tx, resumed_params, resumed_state)
        _assert_bit_identical(resumed_updates, updates)
    _assert_bit_identical((resumed_params, resumed_state), (params, state))
