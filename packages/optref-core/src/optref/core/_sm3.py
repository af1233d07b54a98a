"""SM3: memory-efficient adaptive scaling with one accumulator per tensor slice."""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree, jaxtyped

from ._alias import alias
from ._base import check_state, params_like
from ._chain import Chain, chain
from ._hyperparameters import as_scalar_hyperparameter, check_range
from ._leafwise import LeafwiseStep, LeafwiseTransformation
from ._numerics import accumulator_ratio, compute_dtype
from ._scale import scale
from ._tree import tree_zeros_like, zeros_reduced_like
from ._tree_check import check_real
from ._typecheck import typechecker

__all__ = ["ScaleBySM3State", "ScaleBySm3", "scale_by_sm3", "sm3"]


@jaxtyped(typechecker=typechecker)
class ScaleBySM3State(eqx.Module):
    """Per-axis maxima of the accumulators (``mu``) and the momentum of the updates (``nu``).

    ``mu`` holds, for each parameter of shape $(n_1, \\ldots, n_k)$, a list of $k$ vectors
    of lengths $n_1, \\ldots, n_k$ (one ``()`` array for a scalar parameter).
    """

    mu: PyTree[Float[Array, "..."]]
    nu: PyTree[Float[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]


def _axis_zeros(p: Array) -> list[Array]:
    # One accumulator per axis, a reduction of p over the others: laid out as p is along
    # its own axis (zeros_reduced_like).
    if p.ndim == 0:
        return [zeros_reduced_like(p, ())]
    return [
        zeros_reduced_like(p, tuple(a for a in range(p.ndim) if a != axis))
        for axis in range(p.ndim)
    ]


class ScaleBySm3(LeafwiseTransformation):
    """SM3-II's accumulators, the scaled gradient, then momentum ``b1``.

    Built by :func:`scale_by_sm3`, whose docstring gives the math and the references.
    """

    b1: Array = eqx.field(default=0.9, converter=as_scalar_hyperparameter)
    b2: Array = eqx.field(default=1.0, converter=as_scalar_hyperparameter)
    eps: Array = eqx.field(default=1e-8, converter=as_scalar_hyperparameter)
    scalar_hyperparameters = ("b1", "b2", "eps")

    def __check_init__(self) -> None:
        check_range(self, "b1", self.b1, 0.0, 1.0)
        check_range(self, "b2", self.b2, 0.0, 1.0)
        check_range(self, "eps", self.eps, 0.0)

    def init(self, params: PyTree) -> ScaleBySM3State:
        check_real(params, where="scale_by_sm3")
        return ScaleBySM3State(jax.tree.map(_axis_zeros, params), tree_zeros_like(params))

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, ScaleBySM3State, params)
        check_real(updates, where="scale_by_sm3", tree_name="updates")
        b1, b2, eps = self.b1, self.b2, self.eps

        def leaf(
            g: Array, p: Any, moments: tuple[list[Array], Array], constants: tuple
        ) -> tuple[Array, tuple[list[Array], Array]]:
            maxima, v = moments
            work = compute_dtype(jnp.result_type(g.dtype, v.dtype))
            g_w = g.astype(work)
            beta1, beta2 = b1.astype(work), b2.astype(work)
            if g.ndim < 2:
                previous = maxima[0].astype(work)
            else:
                # Each element takes the smallest of the maxima of the slices through it.
                previous = functools.reduce(
                    jnp.minimum,
                    [
                        m.astype(work).reshape([-1 if a == i else 1 for a in range(g.ndim)])
                        for i, m in enumerate(maxima)
                    ],
                )
            # b2 = 1 is SM3's sum of squares; b2 < 1 a moving average of them.
            weight = jnp.where(beta2 == 1, jnp.ones_like(beta2), 1 - beta2)
            accumulator = weight * g_w * g_w + beta2 * previous
            scaled = accumulator_ratio(g_w, accumulator, eps)
            nu = (1 - beta1) * scaled + beta1 * v.astype(work)
            if g.ndim < 2:
                new_maxima = [accumulator.astype(maxima[0].dtype)]
            else:
                # The accumulator is nonnegative, so 0 is the identity of its maximum: a
                # zero-size slice (an axis of length 0 elsewhere) has the maximum 0.
                new_maxima = [
                    jnp.max(
                        accumulator, axis=tuple(a for a in range(g.ndim) if a != i), initial=0
                    ).astype(m.dtype)
                    for i, m in enumerate(maxima)
                ]
            return nu.astype(g.dtype), (new_maxima, nu.astype(v.dtype))

        return LeafwiseStep(leaf, lambda new: ScaleBySM3State(*new), moments=(state.mu, state.nu))


def scale_by_sm3(
    b1: float | Array = 0.9, b2: float | Array = 1.0, eps: float | Array = 1e-8
) -> ScaleBySm3:
    """Scale by SM3's cover-wise accumulators (SM3-II, with the rows, columns, ... as cover).

    For a parameter of rank $k$, keep for each axis $r$ a vector $\\mu^{(r)}$ of maxima
    over the slices orthogonal to it; then, elementwise,

    $$\\begin{aligned}
    \\nu'_t(i) &= c\\,g_t(i)^2 + \\beta_2 \\min_{r} \\mu^{(r)}_{t-1}(i_r), \\qquad
    c = \\begin{cases} 1 & \\beta_2 = 1 \\\\ 1-\\beta_2 & \\beta_2 < 1 \\end{cases} \\\\
    \\mu^{(r)}_t(j) &= \\max_{i:\\,i_r = j} \\nu'_t(i), \\qquad
    m_t = \\beta_1 m_{t-1} + (1-\\beta_1)\\,\\frac{g_t}{\\sqrt{\\nu'_t + \\varepsilon}}
    \\ (0 \\text{ where } \\nu'_t = 0), \\qquad u_t = m_t.
    \\end{aligned}$$

    Vectors use their own accumulator ($\\nu'_t = c g_t^2 + \\beta_2 \\mu_{t-1}$). A
    scalar parameter keeps one ``()`` accumulator, where Optax fails (it indexes an empty
    list). Real params only: raises :class:`TypeError` for complex ones, as Optax does.

    Reference: Anil, Gupta, Koren & Singer, *Memory-Efficient Adaptive Optimization*
    (2019). Optax: ``optax.scale_by_sm3``.
    """
    return ScaleBySm3(b1, b2, eps)


@alias
def sm3(learning_rate: float | Array, momentum: float | Array = 0.9) -> Chain:
    """The SM3 optimizer: :func:`scale_by_sm3` with ``b1 = momentum``, then ``-learning_rate``.

    $$p_t = p_{t-1} - \\eta\\,m_t$$

    ``learning_rate`` is a number or an array, not a schedule (as in Optax). Reference:
    Anil et al. (2019); ``optax.sm3``.
    """
    return chain(scale_by_sm3(momentum), scale(-learning_rate))
