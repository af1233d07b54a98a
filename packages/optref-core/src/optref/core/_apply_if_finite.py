"""Skipping updates that contain NaN or infinity, up to a number of consecutive ones."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, PyTree, jaxtyped

from ._apply_every import as_step_count
from ._base import GradientTransformation, check_state
from ._hyperparameters import check_range
from ._inner import check_inner, inner_update_if
from ._numerics import computed_once, safe_increment
from ._tree import tree_zeros_like
from ._typecheck import typechecker

__all__ = ["ApplyIfFinite", "ApplyIfFiniteState", "apply_if_finite", "tree_all_finite"]


def tree_all_finite(tree: PyTree) -> Array:
    """Whether every element of every leaf is finite (neither NaN nor ±inf).

    $$\\bigwedge_{\\ell, i} \\operatorname{isfinite}(x_{\\ell, i})$$

    Over more than one leaf, the result goes through :func:`computed_once`, so that XLA
    does not compile the conjunction of the leaves into every leaf's kernel that reads it.
    """
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    finite = [jnp.all(jnp.isfinite(x)) for x in leaves]
    return finite[0] if len(finite) == 1 else computed_once(jnp.all(jnp.stack(finite)))


@jaxtyped(typechecker=typechecker)
class ApplyIfFiniteState(eqx.Module):
    """Counts of non-finite updates and the inner state.

    Attributes:
        notfinite_count: consecutive non-finite updates so far (reset by a finite one).
        last_finite: whether the last updates were finite.
        total_notfinite: non-finite updates since ``init`` (never reset).
        inner_state: the state of the inner transformation.
    """

    notfinite_count: Int[Array, ""]
    last_finite: Bool[Array, ""]
    total_notfinite: Int[Array, ""]
    inner_state: PyTree


class ApplyIfFinite(GradientTransformation):
    """The inner transformation, skipped (zero updates) when the updates are not finite.

    Built by :func:`apply_if_finite`, whose docstring gives the math and the references.
    """

    inner: GradientTransformation
    max_consecutive_errors: Array = eqx.field(converter=as_step_count)

    def __check_init__(self) -> None:
        check_inner("apply_if_finite", "inner", self.inner)
        check_range(self, "max_consecutive_errors", self.max_consecutive_errors, 0)

    def init(self, params: PyTree) -> ApplyIfFiniteState:
        return ApplyIfFiniteState(
            notfinite_count=jnp.zeros([], jnp.int32),
            last_finite=jnp.asarray(True),
            total_notfinite=jnp.zeros([], jnp.int32),
            inner_state=self.inner.init(params),
        )

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ApplyIfFiniteState]:
        check_state(self, updates, state, ApplyIfFiniteState)
        finite = tree_all_finite(updates)
        notfinite_count = jnp.where(
            finite, jnp.zeros_like(state.notfinite_count), safe_increment(state.notfinite_count)
        )
        give_up = notfinite_count > self.max_consecutive_errors
        new_updates, inner_state = inner_update_if(
            finite | give_up,
            self.inner,
            updates,
            state.inner_state,
            params,
            extra,
            tree_zeros_like,
        )
        return new_updates, ApplyIfFiniteState(
            notfinite_count=notfinite_count,
            last_finite=finite,
            total_notfinite=jnp.where(
                finite, state.total_notfinite, safe_increment(state.total_notfinite)
            ),
            inner_state=inner_state,
        )


def apply_if_finite(
    inner: GradientTransformation, max_consecutive_errors: int | Array
) -> ApplyIfFinite:
    """Skip updates that contain NaN or infinity, unless too many come in a row.

    $$(u_t, s_t) \\mapsto \\begin{cases} T(u_t, s_t) & u_t \\text{ finite or } n_t >
    N \\\\ (0, s_t) & \\text{otherwise} \\end{cases}$$

    where $n_t$ counts the consecutive non-finite updates up to step $t$ and $N$ is
    ``max_consecutive_errors``. A skipped step gives zero updates and leaves the inner
    state as it was; after more than $N$ non-finite updates in a row, they are passed to
    the inner transformation. The state counts the non-finite updates (see
    :class:`ApplyIfFiniteState`). Reference: ``optax.apply_if_finite``.
    """
    return ApplyIfFinite(inner, max_consecutive_errors)
