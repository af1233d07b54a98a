"""Small params trees and an Equinox model shared by the optref-masking tests."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest


def draw(seed: int, tree):
    """A tree of normal draws shaped like ``tree`` (``None`` and non-array leaves kept)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: (
            jnp.asarray(rng.normal(size=x.shape), x.dtype) if eqx.is_inexact_array(x) else None
        ),
        tree,
    )


class Block(eqx.Module):
    """A linear layer and a layer norm, with an activation (a non-array leaf)."""

    linear: eqx.nn.Linear
    norm: eqx.nn.LayerNorm
    activation: Callable = jax.nn.relu
    repeats: int = 2  # a Python int: a non-array leaf

    def __call__(self, x):
        return self.activation(self.norm(self.linear(x)))


class Model(eqx.Module):
    """encoder -> decoder -> head; the head may be frozen out with ``eqx.filter``."""

    encoder: Block
    decoder: Block
    head: eqx.nn.Linear

    def __call__(self, x):
        return self.head(self.decoder(self.encoder(x)))


def make_model(dtype=jnp.float32) -> Model:
    keys = jax.random.split(jax.random.key(0), 3)

    def block(key, n_in, n_out):
        return Block(
            eqx.nn.Linear(n_in, n_out, key=key, dtype=dtype), eqx.nn.LayerNorm(n_out, dtype=dtype)
        )

    return Model(
        block(keys[0], 4, 6), block(keys[1], 6, 6), eqx.nn.Linear(6, 2, key=keys[2], dtype=dtype)
    )


@pytest.fixture
def model() -> Model:
    return make_model()


@pytest.fixture
def params() -> dict:
    """Three disjoint groups of params in a dict: encoder, decoder, head."""
    rng = np.random.default_rng(42)
    f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)  # noqa: E731
    return {
        "encoder": {"w": f(4, 6), "b": f(6)},
        "decoder": {"w": f(6, 6), "b": f(6)},
        "head": {"w": f(6, 2), "b": f(2)},
    }


@pytest.fixture
def random_like() -> Callable:
    """``random_like(seed, tree)``: normal draws shaped like the array leaves of ``tree``."""
    return draw


def state_nbytes(state) -> int:
    """The bytes held by the array leaves of an optimizer state."""
    return sum(x.nbytes for x in jax.tree.leaves(state) if eqx.is_array(x))


@pytest.fixture
def nbytes() -> Callable:
    return state_nbytes
