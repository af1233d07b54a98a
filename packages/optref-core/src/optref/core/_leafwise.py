"""Leafwise transformations: a scalar prelude, then the same math on every leaf.

Most of an optimizer's step is elementwise: Adam's moments and ratio, momentum, decoupled
weight decay, the learning rate. Such a transformation splits its update in two. The
*prelude* runs once per step on the state's scalars (the count, bias corrections,
schedules) and checks the state; the *leaf function* maps one leaf of the updates, the
params and the state's per-leaf trees to the new update leaf and the new state leaves.

Written this way, :func:`optref.core.chain` composes consecutive leafwise members into
one pass over the leaves: the leaf functions are called one after another on the same
leaf, so every leaf is visited once per fused run of members instead of once per member,
and the traced program is shorter. The composition calls exactly the functions that the
members' own ``update`` calls, in the same order, on the same values, so the fused and the
unfused chain give the same updates and states, bit for bit. (Their derivatives may differ
in the last bit: reverse mode sums the cotangents that reach a params leaf from several
members in another order.)

Under ``jax.jit`` (alone or with other transformations) the pass is traced once per
distinct leaf signature (shapes and dtypes of the leaf's arrays, and its non-array values),
not once per leaf: a model of a thousand leaves of a few shapes traces the per-leaf math a
few times and calls it a thousand times. XLA inlines the calls, so the compiled program is
the one the leaf-by-leaf trace gives, except where the program folds constants: with the
hyperparameters (or a freshly initialised state) baked into the step as constants, XLA's
simplifier may fold a product of them in a leaf-by-leaf trace, and not across a call, or
the other way round, a difference of an ulp or two. With the hyperparameters and state
as arguments of the step, as in training, the two are the same bits.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.core import Tracer
from jaxtyping import Array, PyTree

from ._base import EmptyState, GradientTransformation, check_state, require_params
from ._tree import as_array
from ._tree_check import check_tree_fits

__all__ = ["LeafwiseStep", "LeafwiseTransformation", "StatelessLeafwise", "apply_leafwise"]

#: ``leaf(g, p, moments, constants) -> (u, new_moments)`` on one leaf: the update leaf
#: ``g``, the params leaf ``p`` (``None`` without params), a tuple with that leaf of each
#: of the step's ``moments`` and one of each of its ``constants``.
LeafFunction = Callable[
    [Array, Any, tuple[Any, ...], tuple[Any, ...]], tuple[Array, tuple[Any, ...]]
]


@dataclasses.dataclass(frozen=True)
class LeafwiseStep:
    """One step of a leafwise transformation, after its prelude.

    Attributes:
        leaf: the per-leaf math, ``leaf(g, p, moments, constants) -> (u, new_moments)``.
        finish: builds the transformation's next state from the tuple of new moment trees
            (one tree per entry of ``moments``).
        moments: the state's trees with the updates' structure that the step rewrites
            (Adam's ``mu`` and ``nu``).
        constants: trees with the updates' structure that the step only reads (a mask).
    """

    leaf: LeafFunction
    finish: Callable[[tuple[PyTree, ...]], PyTree]
    moments: tuple[PyTree, ...] = ()
    constants: tuple[PyTree, ...] = ()


class LeafwiseTransformation(GradientTransformation):
    """A transformation whose update is a prelude on scalars and a per-leaf function.

    Subclasses implement :meth:`leafwise`; ``update`` runs the step it returns over the
    leaves. :func:`optref.core.chain` fuses consecutive members of this kind into one
    pass over the leaves.

    The prelude (the body of :meth:`leafwise`) may read only the structure, shapes and
    dtypes of ``updates``, since inside a fused run it is given the run's input rather
    than its own. A transformation whose prelude reads the values of the updates (a
    reduction: global-norm clipping) sets ``reads_updates = True``; it then opens a new
    fused run, so the updates it is given are its own input.
    """

    reads_updates: ClassVar[bool] = False

    @abc.abstractmethod
    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        """Check ``state``, compute the step's scalars, and return its per-leaf math."""

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, PyTree]:
        step = self.leafwise(updates, state, params, **extra)
        new_updates, (new_state,) = apply_leafwise((step,), updates, params)
        return new_updates, new_state


class StatelessLeafwise(LeafwiseTransformation):
    """A transformation without state that maps each leaf of the updates on its own.

    $$u_\\ell \\mapsto f(u_\\ell, p_\\ell, c_\\ell), \\qquad \\ell = 1, \\ldots, L$$

    with $f$ the subclass's :meth:`leaf`, ``leaf(update, param, *constants) -> new update``,
    $p_\\ell$ the params leaf (``None`` without params) and $c_\\ell$ the leaves of the
    trees that :meth:`constants` returns (a mask). ``leaf`` may reduce over its own leaf (a
    block norm) but sees no other. A subclass that sets ``params_needed_for`` (what the
    params are for) refuses an update without params. Being leafwise, it joins the fused
    pass of the members around it in :func:`optref.core.chain`. Optax writes such
    transformations as stateless gradient transformations (``optax.clip_by_block_rms``).
    """

    params_needed_for: ClassVar[str | None] = None

    def init(self, params: PyTree) -> EmptyState:
        del params
        return EmptyState()

    @abc.abstractmethod
    def leaf(self, update: Array, param: Any, *constants: Any) -> Array:
        """The new update leaf from one leaf of the updates, of the params and of each
        tree of :meth:`constants`."""

    def constants(self, updates: PyTree) -> tuple[PyTree, ...]:
        """Trees with the structure of ``updates`` whose leaves :meth:`leaf` reads; none."""
        del updates
        return ()

    def leafwise(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> LeafwiseStep:
        check_state(self, updates, state, EmptyState, params)
        if self.params_needed_for is not None:
            require_params(self, params, self.params_needed_for)

        def leaf(g: Array, p: Any, moments: tuple, constants: tuple) -> tuple[Array, tuple]:
            return self.leaf(g, p, *constants), ()

        return LeafwiseStep(leaf, lambda new: state, constants=self.constants(updates))


def _leaves_like(treedef: Any, tree: PyTree, updates: PyTree, name: str) -> list[Any]:
    try:
        return treedef.flatten_up_to(tree)
    except (ValueError, TypeError):
        check_tree_fits(updates, tree, where="chain", reference_name="updates", tree_name=name)
        raise


def _staging() -> bool:
    """Whether a program is being staged (``jax.jit``), rather than run eagerly (possibly
    under an eager ``grad`` or ``vmap``): only while staging does an operation on a constant
    give a tracer."""
    return isinstance(jnp.zeros(()) + 1, Tracer)


#: One tuple of leaves per step of a fused run.
_PerStep = tuple[tuple[Any, ...], ...]


def _leaf_pass(steps: Sequence[LeafwiseStep]) -> Callable[..., Any]:
    """The steps' leaf functions composed on one leaf.

    ``leaf_pass(g, p, moments, constants) -> (u, new_moments)``, where ``moments`` and
    ``constants`` hold one tuple of leaves per step and ``new_moments`` one tuple per step.
    """

    def leaf_pass(
        g: Array, p: Any, moments: _PerStep, constants: _PerStep
    ) -> tuple[Array, _PerStep]:
        new_moments = []
        for step, step_moments, step_constants in zip(steps, moments, constants, strict=True):
            g, outputs = step.leaf(g, p, step_moments, step_constants)
            new_moments.append(tuple(outputs))
        return g, tuple(new_moments)

    return leaf_pass


def apply_leafwise(
    steps: Sequence[LeafwiseStep], updates: PyTree, params: PyTree | None = None
) -> tuple[PyTree, tuple[PyTree, ...]]:
    """Run leafwise steps one after another, in a single pass over the leaves.

    $$u_\\ell \\mapsto f_n(\\cdots f_2(f_1(u_\\ell, p_\\ell, s^1_\\ell), p_\\ell, s^2_\\ell)
    \\cdots), \\qquad \\ell = 1, \\ldots, L$$

    For each leaf $\\ell$ of ``updates``, step $k$'s leaf function receives the update leaf
    that step $k-1$ returned, the params leaf and its own moment and constant leaves.
    Returns the final updates and, for each step, its next state (from its ``finish``).
    ``None`` leaves of ``updates`` (a filtered Equinox model) are skipped.

    While a program is being staged (inside ``jax.jit``, with or without ``grad`` or
    ``vmap`` around or inside it), the composed leaf function is wrapped in
    :func:`equinox.filter_jit`, so it is traced once for each distinct signature of its
    arguments (array shapes and dtypes; non-array values such as a mask's Python bools are
    part of the signature) and called on every leaf. The trace and the lowered program then
    grow with the number of leaves by one call each, not by every operation of the leaf's
    math; XLA inlines the calls, so the compiled step and its numbers are those of the
    leaf-by-leaf trace (up to the folding of constants, see the module's docstring). Run
    eagerly (under an eager ``grad`` or ``vmap`` too,
    where each call of a jitted function would compile it), the leaf functions run leaf by
    leaf, without compiling anything.
    """
    g_leaves, treedef = jax.tree.flatten(updates)
    g_leaves = [as_array(g) for g in g_leaves]
    p_leaves = (
        [None] * len(g_leaves)
        if params is None
        else [as_array(p) for p in _leaves_like(treedef, params, updates, "params")]
    )
    moment_leaves = [
        [_leaves_like(treedef, tree, updates, "a state tree") for tree in step.moments]
        for step in steps
    ]
    constant_leaves = [
        [_leaves_like(treedef, tree, updates, "a constant tree") for tree in step.constants]
        for step in steps
    ]
    leaf_pass = _leaf_pass(steps)
    if _staging():
        leaf_pass = eqx.filter_jit(leaf_pass)
    new_updates = []
    new_moments: list[list[list[Any]]] = [[[] for _ in step.moments] for step in steps]
    for index, g in enumerate(g_leaves):
        moments = tuple(tuple(leaves[index] for leaves in step) for step in moment_leaves)
        constants = tuple(tuple(leaves[index] for leaves in step) for step in constant_leaves)
        g, outputs = leaf_pass(g, p_leaves[index], moments, constants)
        for collected_step, step_outputs in zip(new_moments, outputs, strict=True):
            for collected, output in zip(collected_step, step_outputs, strict=True):
                collected.append(output)
        new_updates.append(g)
    states = tuple(
        step.finish(tuple(treedef.unflatten(leaves) for leaves in new_moments[k]))
        for k, step in enumerate(steps)
    )
    return treedef.unflatten(new_updates), states
