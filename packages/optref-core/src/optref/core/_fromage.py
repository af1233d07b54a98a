"""Fromage: Frobenius-matched gradient descent (trust-ratio steps with a shrinking radius)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, PyTree

from ._alias import alias
from ._base import EmptyState
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._scale import ScaleByLearningRate, scale_by_learning_rate
from ._trust_ratio import scale_by_trust_ratio
from ._weight_decay import AddDecayedWeights, add_decayed_weights

__all__ = ["fromage"]


def _shrink(learning_rate: ArrayLike) -> tuple[Array, Array]:
    """``(m, m - 1)`` with ``m = 1 / sqrt(1 + lr²)``, the second without cancellation."""
    lr = jnp.asarray(learning_rate)
    root = jnp.sqrt(1 + lr * lr)
    return 1 / root, -(lr * lr) / (root * (1 + root))


# With a constant learning rate, the two members after the trust ratio hold eta itself and
# compute m from it in ``update``: the arithmetic on eta is then in the compiled step
# wherever eta comes from (a leaf of the plain chain, or a value injected by
# inject_hyperparams, which rebuilds the chain from a traced eta), so both give the same
# bits. Their states are those of scale_by_learning_rate and add_decayed_weights with a
# constant (empty), as in Optax.


class _FromageMember(LeafwiseTransformation):
    """A member of ``fromage``'s chain that holds $\\eta$, with an empty state."""

    learning_rate: Array = eqx.field(converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("learning_rate",)

    def init(self, params: PyTree) -> EmptyState:
        """The empty state of a constant rate."""
        del params
        return EmptyState()


class _FromageRate(_FromageMember):
    """``u -> -eta m u``: :class:`ScaleByLearningRate` with the rate ``eta * m``."""

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        """The step of ``scale_by_learning_rate(eta * m)``."""
        rate = self.learning_rate * _shrink(self.learning_rate)[0]
        return ScaleByLearningRate(rate).leafwise(updates, state, params, **extra)


class _FromageShrink(_FromageMember):
    """``u -> u + (m - 1) p``: :class:`AddDecayedWeights` with the rate ``m - 1``."""

    @property
    def weight_decay(self) -> Array:
        """The (negative) rate ``m - 1``, computed without cancellation."""
        return _shrink(self.learning_rate)[1]

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        """The step of ``add_decayed_weights(m - 1)``."""
        return AddDecayedWeights(self.weight_decay).leafwise(updates, state, params, **extra)


@alias
def fromage(learning_rate: ScalarOrSchedule, min_norm: float | Array = 1e-6) -> Chain:
    """The Fromage optimizer: a trust-ratio step, then a shrink towards the origin.

    With $m_t = 1/\\sqrt{1 + \\eta_t^2}$ and, per leaf $\\ell$, the trust ratio
    $r_\\ell = \\max(\\lVert p_\\ell \\rVert, n_{\\min}) / \\max(\\lVert g_\\ell \\rVert,
    n_{\\min})$:

    $$p_{\\ell,t} = m_t\\,\\big(p_{\\ell,t-1} - \\eta_t\\,r_\\ell\\,g_{\\ell,t}\\big)$$

    composed as in Optax: :func:`scale_by_trust_ratio` (``min_norm``),
    :func:`scale_by_learning_rate` ($\\eta_t m_t$) and :func:`add_decayed_weights` with
    the negative rate $m_t - 1$. That rate is computed as $-\\eta^2 / (s(1+s))$,
    $s = \\sqrt{1+\\eta^2}$, which does not cancel for small $\\eta$ (Optax subtracts,
    which loses every digit in float32 once $\\eta^2$ is below its epsilon).
    ``learning_rate`` may be a schedule. A constant one is held as it is and $m$ is
    computed in ``update`` (the two members hold $\\eta$ and have the empty states of
    those transformations), so ``inject_hyperparams(fromage)`` gives the same bits.

    Reference: Bernstein, Vahdat, Yue & Liu, *On the distance between two neural
    networks and the stability of learning* (2020). Optax: ``optax.fromage``.
    """
    if isinstance(learning_rate, jax.Array) or not callable(learning_rate):
        return chain(
            scale_by_trust_ratio(min_norm),
            _FromageRate(learning_rate),
            _FromageShrink(learning_rate),
        )
    schedule: Callable[[Array], ArrayLike] = learning_rate

    def rate(count: Array) -> Array:
        value = jnp.asarray(schedule(count))
        return value * _shrink(value)[0]

    def decay(count: Array) -> Array:
        return _shrink(schedule(count))[1]

    return chain(
        scale_by_trust_ratio(min_norm),
        scale_by_learning_rate(rate),
        add_decayed_weights(decay),
    )
