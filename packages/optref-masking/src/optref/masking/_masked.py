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
    is_tree_function,
    path_str,
)
from optref.core._hyperparameters import is_concrete
from optref.core._inner import check_inner
from optref.core._typecheck import typechecker

__all__ = [
    "Masked",
    "MaskedNode",
    "MaskedState",
    "apply_masked",
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


def _static_bool(value: Any, path: tuple[Any, ...], where: str, argument: str) -> Any:
    if isinstance(value, bool | np.bool_):
        return bool(value)
    dtype = getattr(value, "dtype", None)
    if dtype is None or np.dtype(dtype) != np.bool_:
        return value  # not a boolean: broadcast_mask reports it with its path
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
    """``mask`` with every concrete boolean array leaf turned into a Python bool."""
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
    updates see them: their non-array leaves (the functions and Python numbers of an
    unfiltered Equinox model, whose updates are ``None``) count as ``None``.
    """
    arrays = None if params is None else eqx.filter(params, eqx.is_array)
    check_state(wrapper, updates, state, state_type, arrays)


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
    """Apply ``inner`` where ``mask`` holds; pass the other updates through unchanged."""

    inner: GradientTransformation
    mask: Any
    mask_compatible_extra_args: bool = eqx.field(static=True, default=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not is_tree_function(self.mask):
            object.__setattr__(self, "mask", static_mask(self.mask, where="masked"))

    def __check_init__(self) -> None:
        check_inner("masked", "inner", self.inner)

    def init(self, params: PyTree) -> MaskedState:
        return init_masked(self.inner, resolve_mask(self.mask, params, where="masked"), params)

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, MaskedState]:
        check_wrapper_update(self, updates, state, MaskedState, params)
        mask = resolve_mask(self.mask, updates, where="masked")
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
    concrete boolean scalars, which are turned into Python bools. The updates it leaves
    out are returned as they came: compose with ``set_to_zero`` (:func:`freeze`) to hold
    them still. ``None`` leaves pass through.

    ``update`` checks the updates against the params before it applies the mask, and
    raises :class:`~optref.core.TreeMismatchError` naming ``masked`` and the PyTree path
    of a missing or extra key, a container of another kind, ``None`` for an array or
    another shape.

    Reference: ``optax.masked`` (``optax.transforms.masked``).
    """
    return Masked(inner, mask, mask_compatible_extra_args)
