"""L-BFGS: the updates multiplied by a limited-memory inverse-Hessian approximation."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Inexact, Int, PyTree, jaxtyped

from optref.core import (
    Chain,
    GradientTransformation,
    ScalarOrSchedule,
    chain,
    check_state,
    compute_dtype,
    identity,
    params_like,
    safe_div,
    safe_increment,
    scale,
    scale_by_learning_rate,
    tree_add_scaled,
    tree_all_finite,
    tree_l2_norm,
    tree_scale,
    tree_sub,
    tree_where,
    tree_zeros_like,
)
from optref.core._typecheck import typechecker

from ._arguments import static_int
from ._objective import real_vdot, scalar_dtype, tree_cast_like
from ._zoom import scale_by_zoom_linesearch

__all__ = ["ScaleByLBFGS", "ScaleByLBFGSState", "lbfgs", "scale_by_lbfgs"]


@jaxtyped(typechecker=typechecker)
class ScaleByLBFGSState(eqx.Module):
    """The last params and updates and the memory of curvature pairs.

    Attributes:
        count: steps taken so far.
        params: the params at the last step.
        updates: the updates (gradients) received at the last step.
        diff_params_memory: the last ``memory_size`` differences of params
            $s_k = w_{k+1} - w_k$, stacked on a leading axis (a ring buffer).
        diff_updates_memory: the matching differences of updates $y_k = g_{k+1} - g_k$.
        weights_memory: $\\rho_k = 1 / \\operatorname{Re}\\langle s_k, y_k\\rangle$; 0 for
            a pair that carries no reliable curvature (which then has $s_k = y_k = 0$).
    """

    count: Int[Array, ""]
    params: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    updates: PyTree[Inexact[Array, "?*shape"], " P"] = params_like()  # pyright: ignore[reportUndefinedVariable]
    # pyright takes params_like() (an eqx.field without a default) for a default value.
    diff_params_memory: PyTree[Inexact[Array, "memory ?*shape"], " P"]  # pyright: ignore[reportUndefinedVariable, reportGeneralTypeIssues]
    diff_updates_memory: PyTree[Inexact[Array, "memory ?*shape"], " P"]  # pyright: ignore[reportUndefinedVariable, reportGeneralTypeIssues]
    weights_memory: Float[Array, " memory"]  # pyright: ignore[reportGeneralTypeIssues]


def _lowest_precision_eps(tree: PyTree) -> float:
    """The machine epsilon of the least precise floating dtype among the leaves."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return float(jnp.finfo(jnp.float32).eps)
    return max(float(jnp.finfo(jnp.real(jnp.zeros((), x.dtype)).dtype).eps) for x in leaves)


# The memory's slots are read and written at an unsigned index: with a signed one, jnp and
# lax stage for every leaf the wrapping of a negative index (a comparison and a select),
# which cannot occur here.


def _stacked_slice(memory: PyTree, index: Array, dtype_like: PyTree) -> PyTree:
    """Slot ``index`` (in range) of every stacked leaf, in the dtype of ``dtype_like``'s."""
    index = index.astype(jnp.uint32)
    return jax.tree.map(
        lambda m, v: jax.lax.dynamic_index_in_dim(m, index, keepdims=False).astype(v.dtype),
        memory,
        dtype_like,
    )


def _stacked_set(memory: PyTree, index: Array, values: PyTree) -> PyTree:
    """Every stacked leaf with slot ``index`` (in range) set to ``values``' leaf."""
    index = index.astype(jnp.uint32)
    return jax.tree.map(
        lambda m, v: jax.lax.dynamic_update_index_in_dim(m, v.astype(m.dtype), index, 0),
        memory,
        values,
    )


def precondition(
    updates: PyTree,
    diff_params_memory: PyTree,
    diff_updates_memory: PyTree,
    weights_memory: Array,
    identity_scale: Array,
    memory_idx: Array,
) -> PyTree:
    """The two-loop recursion: $P_k g$ for the L-BFGS inverse-Hessian approximation $P_k$.

    $$\\begin{aligned}
    q &\\leftarrow g; \\quad \\alpha_i = \\rho_i \\operatorname{Re}\\langle s_i, q\\rangle,
    \\ q \\leftarrow q - \\alpha_i y_i \\quad (i = k-1, \\ldots, k-m) \\\\
    r &\\leftarrow \\gamma_k q; \\quad \\beta_i = \\rho_i \\operatorname{Re}\\langle y_i,
    r\\rangle,\\ r \\leftarrow r + (\\alpha_i - \\beta_i) s_i \\quad (i = k-m, \\ldots, k-1)
    \\end{aligned}$$

    The recursion runs in the compute dtype of the updates (float32 for float16 and
    bfloat16) and the result is cast back once. ``memory_idx`` is the oldest pair's
    slot. Reference: Nocedal & Wright, *Numerical Optimization* (2006), Algorithm 7.4.
    """
    work = jax.tree.map(lambda g: g.astype(compute_dtype(g.dtype)), updates)
    rhos = weights_memory
    memory_size = rhos.shape[0]
    indices = (memory_idx + jnp.arange(memory_size)) % memory_size

    def newest_to_oldest(vec: PyTree, index: Array) -> tuple[PyTree, Array]:
        s, y = (_stacked_slice(m, index, vec) for m in (diff_params_memory, diff_updates_memory))
        alpha = rhos[index] * real_vdot(s, vec)
        return tree_add_scaled(vec, -alpha, y), alpha

    vec, alphas = jax.lax.scan(newest_to_oldest, work, indices, reverse=True)
    vec = tree_scale(identity_scale, vec)

    def oldest_to_newest(vec: PyTree, index_alpha: tuple[Array, Array]) -> tuple[PyTree, None]:
        index, alpha = index_alpha
        s, y = (_stacked_slice(m, index, vec) for m in (diff_params_memory, diff_updates_memory))
        beta = rhos[index] * real_vdot(y, vec)
        return tree_add_scaled(vec, alpha - beta, s), None

    vec, _ = jax.lax.scan(oldest_to_newest, vec, (indices, alphas))
    return tree_cast_like(vec, updates)


class ScaleByLBFGS(GradientTransformation):
    """Multiply the updates by the L-BFGS inverse-Hessian approximation.

    Built by :func:`scale_by_lbfgs`, whose docstring gives the math and the references.
    """

    memory_size: int = eqx.field(static=True, default=10)
    scale_init_precond: bool = eqx.field(static=True, default=True)

    def __post_init__(self) -> None:
        size = static_int(
            "scale_by_lbfgs", "memory_size", self.memory_size, 1, "it sets the memory's shape"
        )
        object.__setattr__(self, "memory_size", size)
        super().__post_init__()

    def init(self, params: PyTree) -> ScaleByLBFGSState:
        stacked = jax.tree.map(
            lambda x: jnp.zeros((self.memory_size, *jnp.shape(x)), jnp.asarray(x).dtype), params
        )
        return ScaleByLBFGSState(
            count=jnp.zeros([], jnp.int32),
            params=tree_zeros_like(params),
            updates=tree_zeros_like(params),
            diff_params_memory=stacked,
            diff_updates_memory=stacked,
            weights_memory=jnp.zeros([self.memory_size], scalar_dtype(params)),
        )

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, ScaleByLBFGSState]:
        if params is None:
            raise TypeError(
                "scale_by_lbfgs: update needs params: the curvature pairs are differences "
                "of successive params and updates."
            )
        check_state(self, updates, state, ScaleByLBFGSState, params)
        memory_size = self.memory_size
        count = state.count
        memory_idx = count % memory_size
        prev_memory_idx = (count - 1) % memory_size
        dtype = state.weights_memory.dtype

        # 1. The new curvature pair (s, y), from the last step, stored in the params'
        # dtypes; its inner product is taken in the wider compute dtype.
        diff_params = tree_sub(params, state.params)
        diff_updates = tree_cast_like(tree_sub(updates, state.updates), state.updates)
        curvature = real_vdot(diff_updates, diff_params).astype(dtype)
        # A pair carries reliable curvature only if <s, y> is positive relative to the
        # rounding error of the inner product, eps * |s| |y|; a tiny, zero or negative
        # <s, y> (a failed line search, float32 or bfloat16 cancellation) would give an
        # infinite or negative weight. Such a pair is stored as zeros with weight 0.
        eps = _lowest_precision_eps(params)
        threshold = (
            eps * tree_l2_norm(diff_params).astype(dtype) * tree_l2_norm(diff_updates).astype(dtype)
        )
        weight = safe_div(1.0, curvature)
        accepted = (count > 0) & (curvature > threshold) & jnp.isfinite(weight)
        weight = jnp.where(accepted, weight, 0.0).astype(dtype)
        diff_params = tree_where(accepted, diff_params, tree_zeros_like(diff_params))
        diff_updates = tree_where(accepted, diff_updates, tree_zeros_like(diff_updates))
        diff_params_memory, diff_updates_memory = (
            _stacked_set(memory, prev_memory_idx, diff)
            for memory, diff in (
                (state.diff_params_memory, diff_params),
                (state.diff_updates_memory, diff_updates),
            )
        )
        weights_memory = state.weights_memory.at[prev_memory_idx].set(weight)

        # 2. The scale gamma of the initial approximation gamma * I: <s, y> / |y|^2 from
        # the newest reliable pair (the new one unless it was rejected); with none (the
        # first step), the inverse gradient norm capped at 1, a heuristic that is not part
        # of the map (no gradient).
        first_step_scale = _capped_inverse_norm(updates)
        if self.scale_init_precond:
            newest_first = (prev_memory_idx - jnp.arange(memory_size)) % memory_size
            reliable = weights_memory[newest_first] > 0
            newest = newest_first[jnp.argmax(reliable)]
            s, y = (
                _stacked_slice(memory, newest, memory)
                for memory in (diff_params_memory, diff_updates_memory)
            )
            pair_scale = safe_div(
                real_vdot(y, s).astype(dtype), tree_l2_norm(y, squared=True).astype(dtype)
            )
            identity_scale = jnp.where(
                jnp.any(reliable), pair_scale, first_step_scale.astype(dtype)
            )
        else:
            identity_scale = jnp.ones([], dtype)

        # 3. The product P_k g by the two-loop recursion.
        direction = precondition(
            updates,
            diff_params_memory,
            diff_updates_memory,
            weights_memory,
            identity_scale,
            memory_idx,
        )
        # A direction that overflowed (only possible with nearly degenerate pairs in low
        # precision) is replaced by the first-step direction.
        direction = tree_where(
            tree_all_finite(direction), direction, tree_scale(first_step_scale, updates)
        )
        new_state = ScaleByLBFGSState(
            count=safe_increment(count),
            params=params,
            updates=tree_cast_like(updates, state.updates),
            diff_params_memory=diff_params_memory,
            diff_updates_memory=diff_updates_memory,
            weights_memory=weights_memory,
        )
        return direction, new_state


def _capped_inverse_norm(updates: PyTree) -> Array:
    """$\\min(1, 1/\\lVert g\\rVert)$ under ``stop_gradient``; 1 at $g = 0$."""
    norm = tree_l2_norm(jax.lax.stop_gradient(updates))
    return jnp.where(norm > 1, safe_div(1.0, norm), jnp.ones_like(norm))


def scale_by_lbfgs(memory_size: int = 10, scale_init_precond: bool = True) -> ScaleByLBFGS:
    """Scale the updates by L-BFGS's approximation of the inverse Hessian.

    With the curvature pairs $s_i = w_{i+1} - w_i$, $y_i = g_{i+1} - g_i$ of the last
    $m$ = ``memory_size`` steps and $\\rho_i = 1/\\operatorname{Re}\\langle s_i,
    y_i\\rangle$, the update is $P_k g_k$ with

    $$P_{k,j+1} = V_j^\\top P_{k,j} V_j + \\rho_j s_j s_j^\\top, \\quad
    V_j = I - \\rho_j y_j s_j^\\top, \\quad P_{k,k-m} = \\gamma_k I,$$

    computed by the two-loop recursion (:func:`precondition`), where
    $\\gamma_k = \\operatorname{Re}\\langle s_{k-1}, y_{k-1}\\rangle / \\lVert y_{k-1}
    \\rVert^2$ with ``scale_init_precond`` (else 1). Chain it with a line search: the
    update is a direction, not a step (see :func:`lbfgs`).

    **First step.** With no curvature pair yet, $\\gamma_0 = \\min(1, 1/\\lVert
    g_0\\rVert)$ (the first step has length at most 1), computed under ``stop_gradient``:
    a heuristic, not part of the map, so no derivative flows through it (Optax issue
    #1189). At $g_0 = 0$ it is 1, and the derivative of the update with respect to $g_0$
    is $\\gamma_0 I$, not NaN.

    **Degenerate pairs.** A pair is used only if $\\operatorname{Re}\\langle s,
    y\\rangle > \\varepsilon\\,\\lVert s\\rVert \\lVert y\\rVert$, $\\varepsilon$ the
    machine epsilon of the params' least precise dtype. A pair whose curvature is
    negative, zero or below the rounding error of its own inner product (a failed line
    search, cancellation in float32 or bfloat16, rounding noise at convergence) is stored
    as zeros with weight 0, so it changes nothing, and $\\gamma$ comes from the newest
    reliable pair in the memory (the capped inverse norm if there is none). Optax tests
    ``<s, y> == 0`` only: a tiny ``<s, y>`` gives an infinite weight and NaN in float32
    or bfloat16 (Optax issue #1203), a negative one an indefinite matrix, and an exact
    zero $\\gamma = 0$.

    **Derivatives.** Every division is safe (double ``where``), so derivatives through
    the update are finite at every step, the first included, and at a stationary point.
    They are the derivatives of the map with $\\gamma_0$ (and the acceptance of each
    pair) held fixed: exact wherever $\\lVert g_0\\rVert < 1$, or with
    ``scale_init_precond=False``.

    The state's ``weights_memory`` has the params' real dtype, at least float32.
    References: Nocedal & Wright, *Numerical Optimization* (2006), Algorithms 7.4 and
    7.5; Liu & Nocedal, *On the limited memory BFGS method for large scale
    optimization* (1989). Optax: ``optax.scale_by_lbfgs``.
    """
    return ScaleByLBFGS(memory_size, scale_init_precond)


class _DefaultLinesearch:
    """The default ``linesearch`` of :func:`lbfgs`, built when ``lbfgs`` is called.

    Building it at import would fix its hyperparameters' dtype before the user can enable
    float64.
    """

    def __repr__(self) -> str:
        return "scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy='one')"


DEFAULT_LINESEARCH: Any = _DefaultLinesearch()


def lbfgs(
    learning_rate: ScalarOrSchedule | None = None,
    memory_size: int = 10,
    scale_init_precond: bool = True,
    linesearch: GradientTransformation | None = DEFAULT_LINESEARCH,
) -> Chain:
    """The L-BFGS optimizer: :func:`scale_by_lbfgs`, a sign flip, and a line search.

    $$w_{k+1} = w_k - \\eta_k P_k g_k$$

    with $P_k$ as in :func:`scale_by_lbfgs` and $\\eta_k$ chosen by ``linesearch``
    (default: ``scale_by_zoom_linesearch(max_linesearch_steps=20,
    initial_guess_strategy="one")``, the strong Wolfe conditions); ``linesearch=None``
    uses $\\eta_k = 1$. ``learning_rate`` (a number or a schedule) replaces the sign
    flip by ``scale_by_learning_rate(learning_rate)``. The state is the tuple of the
    three states, as in Optax. ``update`` needs ``value``, ``grad`` and ``value_fn``
    (see :func:`value_and_grad_from_state`).

    **Differentiating through the optimizer.** The default line search is Optax's
    unbounded loop, which :func:`jax.grad` cannot go through; pass
    ``linesearch=scale_by_zoom_linesearch(20, initial_guess_strategy="one",
    differentiable=True)`` for a bounded loop it can. The derivative of the loss after
    $K$ steps is then the derivative of the $K$-step algorithm as run (branch decisions
    fixed), step sizes' dependence included and the first-step scaling excluded; see
    the line searches.

    References: Nocedal & Wright (2006), Algorithm 7.5; Liu & Nocedal (1989). Optax:
    ``optax.lbfgs``.
    """
    if isinstance(linesearch, _DefaultLinesearch):
        linesearch = scale_by_zoom_linesearch(max_linesearch_steps=20, initial_guess_strategy="one")
    base_scaling = scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate)
    return chain(
        scale_by_lbfgs(memory_size=memory_size, scale_init_precond=scale_init_precond),
        base_scaling,
        identity() if linesearch is None else linesearch,
    )
