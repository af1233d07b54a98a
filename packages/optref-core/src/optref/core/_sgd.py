"""Stochastic gradient descent, with optional momentum."""

from __future__ import annotations

from typing import Any

from jaxtyping import Array

from ._alias import alias
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule
from ._momentum import trace
from ._scale import scale_by_learning_rate
from ._stateless import identity

__all__ = ["sgd"]


@alias
def sgd(
    learning_rate: ScalarOrSchedule,
    momentum: float | Array | None = None,
    nesterov: bool = False,
    accumulator_dtype: Any = None,
) -> Chain:
    """Stochastic gradient descent, with heavy-ball or Nesterov momentum.

    $$m_t = g_t + \\mu\\,m_{t-1}, \\qquad p_{t} = p_{t-1} - \\eta_t \\begin{cases}
    m_t & \\text{heavy ball} \\\\ g_t + \\mu\\,m_t & \\text{Nesterov}\\end{cases}$$

    Without ``momentum``, $p_t = p_{t-1} - \\eta_t g_t$. References: Robbins & Monro
    (1951); Sutskever et al. (2013). Optax: ``optax.sgd``.
    """
    first = (
        identity()
        if momentum is None
        else trace(momentum, nesterov=nesterov, accumulator_dtype=accumulator_dtype)
    )
    return chain(first, scale_by_learning_rate(learning_rate))
