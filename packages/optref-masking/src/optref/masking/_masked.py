"""Masking: apply a transformation to some of the params and pass the rest through."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import PyTree, jaxtyped

from optref.core import (
    GradientTransformation,
    TreeMismatchError,
    broadcast_mask,
    check_state,
    check_tree_fits,
    is_params_placeholder,
    is_tree_function,
    path_str,
)
from optref.core._base import params_like_fields
from optref.core._hyperparameters import is_concrete, transformation_name
from optref.core._inner import check_inner
from optref.core._typecheck import typechecker

__all__ = [
    "Masked",
    "MaskedNode",
    "MaskedState",
    "apply_masked",
    "as_updates_see",
    "check_wrapper_update",
    "init_masked",
    "masked",
    "resolve_mask",
]


class MaskedNode(eqx.Module):
    """A placeholder for a leaf that a mask leaves out: a PyTree node with no leaves.

    The inner transformation of :func:`masked` sees the params and updates with every
    masked-out leaf replaced by a ``MaskedNode``; ``jax.tree.map`` skips it, so the inner
    state holds nothing for those leaves. A state therefore lists, leaf by leaf and key
    path by key path, exactly the moments of the masked-in params, as Optax's does.
    Reference: ``optax.MaskedNode``.
    """


@jaxtyped(typechecker=typechecker)
class MaskedState(eqx.Module):
    """The state of :func:`masked`: the inner transformation's state, for the masked-in
    params only (``MaskedNode`` stands for the others)."""

    inner_state: PyTree


def _is_none(x: Any) -> bool:
    return x is None


def _static_bool(value: Any, path: tuple[Any, ...], where: str, argument: str) -> bool:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    dtype = getattr(value, "dtype", None)
    if dtype is None or np.dtype(dtype) != np.bool_:
        raise TreeMismatchError(
            f"{where}: {argument} must hold booleans, got {value!r} at {path_str(path)}."
        )
    if not is_concrete(value):
        raise TypeError(
            f"{where}: {argument} must be static (Python bools), got a traced value at "
            f"{path_str(path)}. Build masks from shapes, dtypes or paths, not from values, "
            "and keep them out of jit's traced arguments (use eqx.filter_jit)."
        )
    array = np.asarray(value)
    if array.shape != ():
        raise TreeMismatchError(
            f"{where}: {argument} must hold one boolean per leaf, got an array of shape "
            f"{array.shape} at {path_str(path)}."
        )
    return bool(array)


def static_mask(mask: PyTree, *, where: str, argument: str = "mask") -> PyTree:
    """``mask`` with every concrete boolean array leaf turned into a Python bool.

    Raises :class:`~optref.core.TreeMismatchError` naming ``where``, ``argument`` and the
    path of a leaf that is not a boolean (an int such as ``1``, a string, an array), and a
    :class:`TypeError` for a traced one.
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, m: _static_bool(m, path, where, argument), mask
    )


def resolve_mask(
    mask: PyTree | Callable[[PyTree], PyTree], tree: PyTree, *, where: str, argument: str = "mask"
) -> PyTree:
    """The mask as a tree of Python bools with the structure of ``tree`` (``None`` kept).

    ``mask`` is a tree of bools with ``tree``'s structure, a prefix of it, or a function
    of ``tree`` returning one (:func:`optref.core.broadcast_mask`).
    """
    return static_mask(
        broadcast_mask(mask, tree, where=where, argument=argument), where=where, argument=argument
    )


def mask_tree(tree: PyTree, mask: PyTree) -> PyTree:
    """``tree`` with a :class:`MaskedNode` wherever ``mask`` is not ``True``.

    ``mask`` has the structure of the updates; ``None`` in it (an empty leaf of the
    updates, such as a filtered-out field of an Equinox model) is masked out too, so a
    tree that holds a non-array leaf there (the unfiltered model given as params) lines
    up with the updates.
    """
    return jax.tree.map(lambda m, x: x if m is True else MaskedNode(), mask, tree, is_leaf=_is_none)


def as_updates_see(params: PyTree) -> PyTree:
    """The params as their updates see them: ``None`` for every leaf that is not a
    floating or complex array (the functions and Python numbers of an unfiltered Equinox
    model, whose ``eqx.filter_grad`` updates are ``None``).

    Masks and labels are resolved against this view in ``init`` and against the updates
    in ``update``, so a mask built with ``eqx.filter(model, eqx.is_array)`` (``None`` at
    the model's functions) fits the unfiltered model in both.
    """
    return eqx.filter(params, eqx.is_inexact_array)


def _is_none_or_masked(x: Any) -> bool:
    return x is None or isinstance(x, MaskedNode)


def _skeleton(tree: PyTree) -> PyTree:
    """``tree`` with every leaf, ``None`` and :class:`MaskedNode` included, made ``0``."""
    return jax.tree.map(lambda _: 0, tree, is_leaf=_is_none_or_masked)


def _params_like_values(node: Any) -> list[PyTree]:
    """The values of the fields of a state module declared with
    :func:`optref.core.params_like` (shaped like the params); ``[]`` for anything else."""
    return [getattr(node, f.name) for f in params_like_fields(node)]


def _holds_masked_node(tree: PyTree) -> bool:
    nodes = jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, MaskedNode))
    return any(isinstance(x, MaskedNode) for x in nodes)


def _params_seen_by_the_mask(state: Any) -> PyTree | None:
    """The params ``state`` was built for, as a mask left them: the first params-shaped
    field of a state in it that holds a :class:`MaskedNode`.

    ``None`` if no field does: stateless members, or members whose state is not shaped
    like the params (``flatten``'s); nothing is known about the params then.
    """
    for node in jax.tree.leaves(state, is_leaf=lambda x: bool(_params_like_values(x))):
        for value in _params_like_values(node):
            if _holds_masked_node(value):
                return value
    return None


def check_wrapper_update(
    wrapper: GradientTransformation,
    updates: PyTree,
    state: Any,
    state_type: type,
    params: PyTree | None,
) -> None:
    """Check a masking wrapper's ``update`` call once, before any mask is applied.

    Core's :func:`~optref.core.check_state` names the wrapper and the first PyTree path
    at which the updates and the params differ (a missing or extra key, a container of
    another kind, ``None`` for an array, another shape), instead of the error that
    ``jax.tree.map`` would raise deep inside the mask. The params are compared as the
    updates see them (:func:`as_updates_see`).

    The updates are then compared with the params the state was built for, as the
    state's masked trees record them (their :class:`MaskedNode` placeholders keep the
    params' structure): updates that lack a key, or have one more, are named here, with
    the path, even when the params given to ``update`` (or none) agree with them and a
    mask or labels that are a function of the updates would adapt to them.
    """
    name = transformation_name(wrapper)
    check_state(
        wrapper, updates, state, state_type, None if params is None else as_updates_see(params)
    )
    built_for = _params_seen_by_the_mask(state)
    if built_for is not None:
        check_tree_fits(
            _skeleton(built_for),
            _skeleton(updates),
            where=name,
            reference_name="the params given to init",
            tree_name="updates",
        )


def _mask_extra(
    extra: Mapping[str, Any], updates: PyTree, mask: PyTree, compatible: bool
) -> dict[str, Any]:
    if not compatible:
        return dict(extra)
    structure = jax.tree.structure(updates)
    return {
        key: mask_tree(value, mask) if jax.tree.structure(value) == structure else value
        for key, value in extra.items()
    }


def init_masked(inner: GradientTransformation, mask: PyTree, params: PyTree) -> MaskedState:
    """The state of ``inner`` restricted to the params where the resolved ``mask`` holds."""
    return MaskedState(inner_state=inner.init(mask_tree(params, mask)))


def apply_masked(
    inner: GradientTransformation,
    mask: PyTree,
    updates: PyTree,
    state: MaskedState,
    params: PyTree | None,
    extra: Mapping[str, Any],
    *,
    mask_compatible_extra_args: bool = False,
) -> tuple[PyTree, MaskedState]:
    """Apply ``inner`` to the updates where the resolved ``mask`` holds; pass the rest."""
    inner_updates, inner_state = inner.update(
        mask_tree(updates, mask),
        state.inner_state,
        None if params is None else mask_tree(params, mask),
        **_mask_extra(extra, updates, mask, mask_compatible_extra_args),
    )
    new_updates = jax.tree.map(
        lambda m, new, old: new if m is True else old,
        mask,
        inner_updates,
        updates,
        is_leaf=_is_none,
    )
    return new_updates, MaskedState(inner_state=inner_state)


class Masked(GradientTransformation):
    """Apply ``inner`` where ``mask`` holds; pass the other updates through unchanged.

    Errors name the transformation by its class (``masked``; ``freeze`` for
    :class:`~optref.masking.Freeze`).
    """

    inner: GradientTransformation
    mask: Any
    mask_compatible_extra_args: bool = eqx.field(static=True, default=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_tree_function(self.mask):
            mask = static_mask(self.mask, where=transformation_name(self))
            object.__setattr__(self, "mask", mask)

    def __check_init__(self) -> None:
        check_inner(transformation_name(self), "inner", self.inner)

    def init(self, params: PyTree) -> MaskedState:
        if is_params_placeholder(params):
            return MaskedState(inner_state=self.inner.init(params))
        mask = resolve_mask(self.mask, as_updates_see(params), where=transformation_name(self))
        return init_masked(self.inner, mask, params)

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, MaskedState]:
        check_wrapper_update(self, updates, state, MaskedState, params)
        mask = resolve_mask(self.mask, updates, where=transformation_name(self))
        return apply_masked(
            self.inner,
            mask,
            updates,
            state,
            params,
            extra,
            mask_compatible_extra_args=self.mask_compatible_extra_args,
        )


def masked(
    inner: GradientTransformation,
    mask: PyTree | Callable[[PyTree], PyTree],
    *,
    mask_compatible_extra_args: bool = False,
) -> Masked:
    """Apply ``inner`` to the params where ``mask`` is ``True``; pass the rest through.

    $$u_\\ell \\mapsto \\begin{cases} T(u_{\\mathcal M})_\\ell & \\ell \\in \\mathcal M \\\\
    u_\\ell & \\ell \\notin \\mathcal M \\end{cases}$$

    where $\\mathcal M$ is the set of leaves the mask selects and $T(u_{\\mathcal M})$ is
    ``inner`` applied to those leaves alone: the other leaves are replaced by
    :class:`MaskedNode` placeholders before ``inner`` sees the updates, the params and
    (with ``mask_compatible_extra_args``) the extra arguments shaped like the updates.
    So ``inner``'s state holds moments for the masked-in params only, and a masked-in
    leaf gets exactly the update ``inner`` would give it alone (numerics rule 4:
    ``masked(adam(...), all_true)`` is bit-identical to ``adam(...)``).

    ``mask`` is a tree of bools with the params' structure or a prefix of it (a bool at
    an inner node applies to the whole subtree), or a function of the params (called on
    the updates in ``update``) that returns one. It must be static: Python bools or
    concrete boolean scalars, which are turned into Python bools. Other values are an
    error naming their path, ``1`` and ``0`` included (Optax takes any value for its truth;
    optref asks for booleans, as ``add_decayed_weights`` does, so that a tree of labels or
    of params passed as a mask is caught). The updates it leaves out are returned as they
    came: compose with ``set_to_zero`` (:func:`freeze`) to hold them still. ``None``
    leaves pass through.

    In ``init`` the mask is fitted to the params as their updates see them: a leaf that
    is not a floating or complex array counts as ``None``. So a mask with ``None`` at an
    Equinox model's functions (built from ``eqx.filter(model, eqx.is_array)``) fits the
    unfiltered model in ``init`` as it fits the ``eqx.filter_grad`` updates in
    ``update``; a function mask is called with that view. The placeholder that
    ``optax.tree_utils.tree_map_params`` passes to ``init`` goes to ``inner`` unmasked,
    as in Optax.

    ``update`` checks the updates against the params, and against the params the state
    was built for (whose structure the inner state's :class:`MaskedNode` placeholders
    keep), before it applies the mask, and raises
    :class:`~optref.core.TreeMismatchError` naming ``masked`` and the PyTree path of a
    missing or extra key, a container of another kind, ``None`` for an array or another
    shape.

    Reference: ``optax.masked`` (``optax.transforms.masked``).
    """
    return Masked(inner, mask, mask_compatible_extra_args)
