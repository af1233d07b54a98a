"""Annealed Gaussian gradient noise, drawn from a key carried in the state."""

from __future__ import annotations

import warnings
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, Key, PyTree, jaxtyped

from ._alias import alias
from ._base import GradientTransformation, check_state
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._numerics import compute_dtype, safe_increment
from ._scale import scale_by_learning_rate
from ._typecheck import typechecker

__all__ = ["AddNoise", "AddNoiseState", "add_noise", "noisy_sgd"]


def _canonical_key(key: Any) -> Array:
    """A typed PRNG key from a typed key, a raw ``uint32[2]`` key or an integer seed."""
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    if isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32 and key.ndim == 1:
        return jax.random.wrap_key_data(jnp.asarray(key))
    return jax.random.key(key)


def _resolve_key(where: str, key: Any, seed: int | None, stacklevel: int = 3) -> Array:
    """Optax's ``key``/``seed`` arguments: ``seed`` is deprecated, ``None`` means 0.

    The warnings point ``stacklevel`` frames up: to the caller of the factory that calls
    this function directly, by default.
    """
    if seed is not None:
        warnings.warn(
            f'{where}: "seed" is deprecated, pass key= (an int or a jax.random.key).',
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        if key is not None:
            raise ValueError(f"{where}: pass key= or seed=, not both.")
        key = seed
    if key is None:
        warnings.warn(
            f"{where}: no key given, using key=0; pass key= for independent noise.",
            UserWarning,
            stacklevel=stacklevel,
        )
        key = 0
    return _canonical_key(key)


@jaxtyped(typechecker=typechecker)
class AddNoiseState(eqx.Module):
    """The step count and the PRNG key of the next draw."""

    count: Int[Array, ""]
    rng_key: Key[Array, ""]


class AddNoise(GradientTransformation):
    """``g + sqrt(eta / t**gamma) * N(0, I)`` with the key carried in the state.

    Built by :func:`add_noise`, whose docstring gives the math and the references.
    """

    eta: Array = eqx.field(converter=as_scalar_hyperparameter)
    gamma: Array = eqx.field(converter=as_scalar_hyperparameter)
    key: Key[Array, ""]
    scalar_hyperparameters = ("eta", "gamma")

    def __check_init__(self) -> None:
        check_range(self, "eta", self.eta, 0.0)
        check_range(self, "gamma", self.gamma, 0.0)

    def init(self, params: PyTree) -> AddNoiseState:
        del params
        return AddNoiseState(jnp.zeros([], jnp.int32), self.key)

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, AddNoiseState]:
        check_state(self, updates, state, AddNoiseState, params)
        count = safe_increment(state.count)
        dtype = self.eta.dtype
        standard_deviation = jnp.sqrt(self.eta / count.astype(dtype) ** self.gamma.astype(dtype))
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample_key, len(leaves))

        def noisy(g: Array, leaf_key: Array) -> Array:
            # Drawn in the compute dtype: Optax's own draw for float32, float64 and
            # complex leaves; float16 and bfloat16 leaves get a float32 draw, rounded.
            work = compute_dtype(g.dtype)
            noise = jax.random.normal(leaf_key, g.shape, work)
            return (g.astype(work) + standard_deviation.astype(work) * noise).astype(g.dtype)

        noisy_leaves = [noisy(g, keys[i]) for i, g in enumerate(leaves)]
        return treedef.unflatten(noisy_leaves), AddNoiseState(count, rng_key)


def add_noise(
    eta: float | Array,
    gamma: float | Array,
    key: Any = None,
    *,
    seed: int | None = None,
) -> AddNoise:
    """Add annealed Gaussian noise to the updates.

    $$u_t = g_t + \\sigma_t\\,\\xi_t, \\qquad \\sigma_t^2 = \\frac{\\eta}{t^{\\gamma}},
    \\qquad \\xi_t \\sim \\mathcal N(0, I), \\quad t = 1, 2, \\ldots$$

    ``key`` (an int seed, a ``jax.random.key`` or a raw ``uint32[2]`` key) is put in the
    state; each step splits it, as Optax does, so a run is reproducible from the state
    alone. ``seed`` is Optax's deprecated spelling of ``key``; with neither, ``key=0``
    and a warning.

    **The random stream.** For float32, float64 and complex leaves the noise is
    bit-for-bit Optax's: the state key is split into (next key, sample key), the sample
    key into one key per leaf in ``jax.tree.leaves`` order, and each leaf draws
    ``jax.random.normal`` in its own dtype. For float16 and bfloat16 leaves the noise is
    drawn in float32 and rounded (Optax draws in the low-precision dtype itself, with a
    coarser distribution), so the stream differs there. Leaves left out of the tree
    (``None``, masked) shift the per-leaf keys, as in Optax.

    Reference: Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep
    Networks* (2015). Optax: ``optax.add_noise``.
    """
    return AddNoise(eta, gamma, _resolve_key("add_noise", key, seed))


@alias
def noisy_sgd(
    learning_rate: ScalarOrSchedule,
    eta: float | Array = 0.01,
    gamma: float | Array = 0.55,
    key: Any = None,
    *,
    seed: int | None = None,
) -> Chain:
    """Noisy SGD: :func:`add_noise`, then :func:`scale_by_learning_rate`.

    $$p_t = p_{t-1} - \\eta_t\\,\\big(g_t + \\mathcal N(0, \\sigma_t^2)\\big), \\qquad
    \\sigma_t^2 = \\frac{\\eta}{t^{\\gamma}}$$

    The noise is added before the learning rate, as in the paper. See :func:`add_noise`
    for the key and the random stream. Reference: Neelakantan et al. (2015);
    ``optax.noisy_sgd``.
    """
    return chain(
        # One frame more than add_noise: the @alias wrapper's.
        AddNoise(eta, gamma, _resolve_key("noisy_sgd", key, seed, stacklevel=4)),
        scale_by_learning_rate(learning_rate),
    )
