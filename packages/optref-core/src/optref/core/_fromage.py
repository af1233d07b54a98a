"""Fromage: Frobenius-matched gradient descent (trust-ratio steps with a shrinking radius)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule
from ._scale import scale_by_learning_rate
from ._trust_ratio import scale_by_trust_ratio
from ._weight_decay import add_decayed_weights

__all__ = ["fromage"]


def _shrink(learning_rate: ArrayLike) -> tuple[Array, Array]:
    """``(m, m - 1)`` with ``m = 1 / sqrt(1 + lr²)``, the second without cancellation."""
    lr = jnp.asarray(learning_rate)
    root = jnp.sqrt(1 + lr * lr)
    return 1 / root, -(lr * lr) / (root * (1 + root))


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
    ``learning_rate`` may be a schedule.

    Reference: Bernstein, Vahdat, Yue & Liu, *On the distance between two neural
    networks and the stability of learning* (2020). Optax: ``optax.fromage``.
    """
    if isinstance(learning_rate, jax.Array) or not callable(learning_rate):
        mult, weight_decay = _shrink(learning_rate)
        return chain(
            scale_by_trust_ratio(min_norm),
            scale_by_learning_rate(learning_rate * mult),
            add_decayed_weights(weight_decay),
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
