"""The Polyak step size: the optimality gap over the squared gradient norm."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, PyTree

from ._alias import alias
from ._base import EmptyState, GradientTransformation, check_state
from ._chain import Chain, chain
from ._hyperparameters import ScalarOrSchedule, as_scalar_hyperparameter, check_range
from ._numerics import compute_dtype
from ._sgd import sgd
from ._tree import tree_l2_norm

__all__ = ["ScaleByPolyak", "polyak_sgd", "scale_by_polyak"]

_VARIANTS = ("sps", "sps+")
# Optax's threshold below which the squared norm (plus eps) counts as zero: the machine
# epsilon of float64, whatever the dtype of the updates.
_ZERO_NORM = float(jnp.finfo(jnp.float64).eps)


class ScaleByPolyak(GradientTransformation):
    """Multiply by ``min((f - f*) / (‖g‖² + eps), max_learning_rate)``.

    Built by :func:`scale_by_polyak`, whose docstring gives the math and the references.
    """

    f_min: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    max_learning_rate: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=0.0, converter=as_scalar_hyperparameter)
    variant: str = eqx.field(static=True, default="sps")
    scalar_hyperparameters = ("f_min", "max_learning_rate", "eps")

    def __check_init__(self) -> None:
        check_range(self, "max_learning_rate", self.max_learning_rate, 0.0)
        check_range(self, "eps", self.eps, 0.0)
        if self.variant not in _VARIANTS:
            raise ValueError(
                f"scale_by_polyak: variant must be one of {list(_VARIANTS)}, got {self.variant!r}."
            )

    def init(self, params: PyTree) -> EmptyState:
        del params
        return EmptyState()

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, EmptyState]:
        check_state(self, updates, state, EmptyState, params)
        if extra.get("value") is None:
            raise TypeError(
                "scale_by_polyak: update needs the objective's value; call "
                "update(updates, state, params, value=f(params))."
            )
        squared_norm = tree_l2_norm(updates, squared=True)
        dtype = squared_norm.dtype
        gap = (jnp.asarray(extra["value"]) - self.f_min).astype(dtype)
        if self.variant == "sps+":
            gap = jnp.maximum(gap, 0)
        denominator = squared_norm + self.eps.astype(dtype)
        vanishing = denominator <= _ZERO_NORM
        # Double where: the division never sees the vanishing denominator, so neither
        # the value nor its derivative is 0/0 there.
        safe_denominator = jnp.where(vanishing, jnp.ones_like(denominator), denominator)
        step = jnp.where(
            vanishing,
            jnp.zeros_like(denominator),
            jnp.minimum(gap / safe_denominator, self.max_learning_rate.astype(dtype)),
        )

        def scale_leaf(u: Array) -> Array:
            work = compute_dtype(u.dtype)
            return (u.astype(work) * step.astype(work)).astype(u.dtype)

        return jax.tree.map(scale_leaf, updates), state


def scale_by_polyak(
    f_min: float | Array = 0.0,
    max_learning_rate: float | Array = 1.0,
    eps: float | Array = 0.0,
    variant: str = "sps",
) -> ScaleByPolyak:
    """Scale by the Polyak step size, capped (SPS$_{\\max}$).

    $$u = \\gamma\\,g, \\qquad \\gamma = \\begin{cases} 0 & \\lVert g \\rVert^2 +
    \\varepsilon \\le \\epsilon_{64} \\\\ \\min\\Big(\\dfrac{f(x) - f^\\star}{\\lVert g
    \\rVert^2 + \\varepsilon},\\ \\gamma_{\\max}\\Big) & \\text{otherwise} \\end{cases}$$

    with $f(x)$ passed as ``update(..., value=f(x))`` and $\\epsilon_{64} \\approx
    2.2\\cdot 10^{-16}$ Optax's threshold for a vanishing gradient (so a gradient of
    norm below about $1.5\\cdot 10^{-8}$ gives no step). ``variant="sps+"`` uses the
    positive part $(f(x) - f^\\star)_+$. The norm is over all leaves, in at least float32.

    References: Loizou, Vaswani, Laradji & Lacoste-Julien, *Stochastic Polyak Step-size
    for SGD: An Adaptive Learning Rate for Fast Convergence* (2021); Garrigos, Gower &
    Schaipp, *Function Value Learning: Adaptive Learning Rates Based on the Polyak
    Stepsize and Function Splitting in ERM* (2023). Optax: ``optax.scale_by_polyak``.
    """
    return ScaleByPolyak(f_min, max_learning_rate, eps, variant)


@alias
def polyak_sgd(
    max_learning_rate: float | Array = 1.0,
    scaling: ScalarOrSchedule = 1.0,
    f_min: float | Array = 0.0,
    eps: float | Array = 0.0,
    variant: str = "sps",
) -> Chain:
    """SGD with the Polyak step size: ``sgd(scaling)``, then :func:`scale_by_polyak`.

    $$p_t = p_{t-1} - s_t\\,\\gamma_t\\,g_t, \\qquad \\gamma_t = \\min\\Big(
    \\frac{f(p_{t-1}) - f^\\star}{s_t^2\\lVert g_t \\rVert^2 + \\varepsilon},\\ \\gamma_{\\max}
    \\Big)$$

    ``update`` needs ``value=f(params)``. Composed as in Optax, so the Polyak step sees
    the gradient already scaled by $-s_t$: with ``scaling`` $\\ne 1$ the uncapped step is
    $(f - f^\\star)/(s_t\\lVert g \\rVert^2)$, not $s_t$ times the Polyak step that Optax's
    docstring states. References: Loizou et al. (2021); Garrigos et al. (2023). Optax:
    ``optax.polyak_sgd``.
    """
    return chain(
        sgd(learning_rate=scaling),
        scale_by_polyak(f_min=f_min, max_learning_rate=max_learning_rate, eps=eps, variant=variant),
    )
