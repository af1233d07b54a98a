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
unfused chain give the same bits.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import jax
from jaxtyping import Array, PyTree

from ._base import GradientTransformation
from ._tree_check import check_tree_fits

__all__ = ["LeafwiseStep", "LeafwiseTransformation", "apply_leafwise"]

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


def _leaves_like(treedef: Any, tree: PyTree, updates: PyTree, name: str) -> list[Any]:
    try:
        return treedef.flatten_up_to(tree)
    except (ValueError, TypeError):
        check_tree_fits(updates, tree, where="chain", reference_name="updates", tree_name=name)
        raise


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
    """
    g_leaves, treedef = jax.tree.flatten(updates)
    p_leaves = (
        [None] * len(g_leaves)
        if params is None
        else _leaves_like(treedef, params, updates, "params")
    )
    moment_leaves = [
        [_leaves_like(treedef, tree, updates, "a state tree") for tree in step.moments]
        for step in steps
    ]
    constant_leaves = [
        [_leaves_like(treedef, tree, updates, "a constant tree") for tree in step.constants]
        for step in steps
    ]
    new_updates = []
    new_moments: list[list[list[Any]]] = [[[] for _ in step.moments] for step in steps]
    for index, g in enumerate(g_leaves):
        p = p_leaves[index]
        for k, step in enumerate(steps):
            moments = tuple(leaves[index] for leaves in moment_leaves[k])
            constants = tuple(leaves[index] for leaves in constant_leaves[k])
            g, outputs = step.leaf(g, p, moments, constants)
            for collected, output in zip(new_moments[k], outputs, strict=True):
                collected.append(output)
        new_updates.append(g)
    states = tuple(
        step.finish(tuple(treedef.unflatten(leaves) for leaves in new_moments[k]))
        for k, step in enumerate(steps)
    )
    return treedef.unflatten(new_updates), states
