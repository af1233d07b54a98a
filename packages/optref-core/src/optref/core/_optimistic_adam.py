"""Optimistic Adam: the optimistic gradient step taken on Adam's direction."""

from __future__ import annotations

import warnings
from typing import Any

import jax
from jaxtyping import Array

from ._adam import scale_by_adam
from ._alias import alias
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule
from ._optimistic import scale_by_optimistic_gradient
from ._scale import scale_by_learning_rate

__all__ = ["optimistic_adam", "optimistic_adam_v2"]


@alias
def optimistic_adam_v2(
    learning_rate: ScalarOrSchedule,
    *,
    alpha: float | Array = 1.0,
    beta: float | Array = 1.0,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = True,
) -> Chain:
    """Optimistic Adam: :func:`~optref.core.scale_by_adam` (NAdam by default), then
    :func:`~optref.core.scale_by_optimistic_gradient`, then the learning rate.

    With $a_t$ Adam's direction (the output of ``scale_by_adam``):

    $$p_{t+1} = p_t - \\eta_t\\big((\\alpha + \\beta)\\,a_t - \\beta\\,a_{t-1}\\big), \\qquad
    p_1 = p_0 - \\eta_0\\,\\alpha\\,a_0.$$

    The first step has no previous direction and is $\\alpha a_0$ (Optax before 0.2.4
    took $(\\alpha+\\beta) a_0$). Reference: Daskalakis et al., *Training GANs with
    Optimism* (2018); ``optax.optimistic_adam_v2``.
    """
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(alpha, beta),
        scale_by_learning_rate(learning_rate),
    )


@alias
def optimistic_adam(
    learning_rate: float | Array,
    optimism: float | Array | None = None,
    b1: float | Array = 0.9,
    b2: float | Array = 0.999,
    eps: float | Array = 1e-8,
    eps_root: float | Array = 0.0,
    mu_dtype: Any = None,
    *,
    nesterov: bool = True,
) -> Chain:
    """Optimistic Adam in its first form, deprecated in Optax: use :func:`optimistic_adam_v2`.

    $$p_{t+1} = p_t - \\big((\\eta + \\omega)\\,a_t - \\omega\\,a_{t-1}\\big), \\qquad
    \\omega = \\text{optimism} \\;(\\text{default } \\eta)$$

    The learning rate enters as the optimistic gradient's ``alpha`` and ``optimism`` as its
    ``beta``; the last member only flips the sign. It cannot take a schedule. Reference:
    Daskalakis et al. (2018); ``optax.optimistic_adam``.
    """
    warnings.warn(
        "optimistic_adam is deprecated (as in Optax): use optimistic_adam_v2.",
        DeprecationWarning,
        stacklevel=3,  # the caller of optimistic_adam, above its @alias wrapper
    )
    if callable(learning_rate) and not isinstance(learning_rate, jax.Array):
        raise ValueError(
            "optimistic_adam: learning_rate cannot be a schedule; optimistic_adam_v2 accepts one."
        )
    if optimism is None:
        optimism = learning_rate
    return chain(
        scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
        scale_by_optimistic_gradient(learning_rate, optimism),
        scale_by_learning_rate(1.0),
    )
