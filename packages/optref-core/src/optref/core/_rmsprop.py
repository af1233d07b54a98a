"""RMSProp, plain or centred, with optional momentum."""

from __future__ import annotations

from jaxtyping import Array

from ._alias import alias
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule
from ._momentum import trace
from ._rms import scale_by_rms
from ._scale import scale_by_learning_rate
from ._stateless import identity
from ._stddev import scale_by_stddev

__all__ = ["rmsprop"]


@alias
def rmsprop(
    learning_rate: ScalarOrSchedule,
    decay: float | Array = 0.9,
    eps: float | Array = 1e-8,
    initial_scale: float | Array = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: float | Array | None = None,
    nesterov: bool = False,
    bias_correction: bool = False,
) -> Chain:
    """RMSProp: :func:`scale_by_rms` (or :func:`scale_by_stddev`), the rate, then momentum.

    $$p_t = p_{t-1} + m_t, \\qquad m_t = \\mu\\,m_{t-1} - \\eta_t\\,
    \\frac{g_t}{\\sqrt{\\hat\\nu_t + \\varepsilon}}$$

    ($\\hat\\nu_t - |\\hat\\mu_t|^2$ in place of $\\hat\\nu_t$ when ``centered``; without
    ``momentum``, $m_t$ is the scaled step itself; with ``nesterov``, the look-ahead of
    :func:`trace`). ``eps_in_sqrt=False`` puts ``eps`` outside the root, as PyTorch does.
    The state is the tuple (scaling, learning rate, momentum or identity), as in Optax.

    References: Tieleman & Hinton (2012); Graves (2013). Optax: ``optax.rmsprop``.
    """
    scaling = scale_by_stddev if centered else scale_by_rms
    return chain(
        scaling(decay, eps, initial_scale, eps_in_sqrt, bias_correction),
        scale_by_learning_rate(learning_rate),
        trace(momentum, nesterov=nesterov) if momentum is not None else identity(),
    )
