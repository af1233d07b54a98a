"""Frozen parameters: zero updates for some params, an optimizer for the rest."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, ClassVar, Literal

import equinox as eqx
import jax
from jaxtyping import PyTree

from optref.core import GradientTransformation, is_tree_function, set_to_zero

from ._masked import Masked, static_mask
from ._partition import AbstractPartition, Partition

__all__ = ["Freeze", "FreezeLabels", "SelectiveTransform", "freeze", "selective_transform"]


_SET_TO_ZERO = set_to_zero()


class Freeze(Masked):
    """``masked(set_to_zero(), mask)``: zero the updates where ``mask`` holds.

    $$u_\\ell \\mapsto \\begin{cases} 0 & \\text{mask}_\\ell \\\\ u_\\ell & \\text{otherwise}
    \\end{cases}$$

    Its only argument is ``mask``, as ``optax.freeze``'s (``inner`` is always
    ``set_to_zero()``), and its errors name ``freeze``. See :func:`freeze`.

    Reference: ``optax.freeze``.
    """

    inner: GradientTransformation = eqx.field(static=True, default=_SET_TO_ZERO, init=False)
    mask_compatible_extra_args: bool = eqx.field(static=True, default=False, init=False)


def freeze(mask: bool | PyTree | Callable[[PyTree], PyTree]) -> Freeze:
    """Hold the params where ``mask`` is ``True`` constant: their updates become zero.

    $$u_\\ell \\mapsto \\begin{cases} 0 & \\text{mask}_\\ell \\\\ u_\\ell & \\text{otherwise}
    \\end{cases}$$

    ``mask`` is a single bool (freeze all or nothing), a tree of bools with the params'
    structure or a prefix of it, or a function of the params returning one; its leaves
    must be booleans, as in :func:`masked`. This is ``masked(set_to_zero(), mask)``,
    named ``freeze`` in its errors; its state is ``MaskedState(EmptyState())``. Put it
    after the optimizer in a chain to zero the frozen params' updates; use
    :func:`selective_transform` to also give them no optimizer state.

    Reference: ``optax.freeze`` (``optax.transforms.freeze``).
    """
    return Freeze(mask)


def _static_freeze_mask(freeze_mask: PyTree) -> PyTree:
    return static_mask(freeze_mask, where="selective_transform", argument="freeze_mask")


def _label(frozen: bool) -> str:
    return "freeze" if frozen else "train"


def _train_and_freeze(optimizer: GradientTransformation) -> dict[Hashable, GradientTransformation]:
    return {"train": optimizer, "freeze": set_to_zero()}


class FreezeLabels(eqx.Module):
    """The labels ``"freeze"``/``"train"`` from a freeze mask that is a function."""

    freeze_mask: Any

    def __call__(self, params: PyTree) -> PyTree:
        return jax.tree.map(_label, _static_freeze_mask(self.freeze_mask(params)))


class SelectiveTransform(AbstractPartition):
    """``optimizer`` for the params that the static ``freeze_mask`` leaves free,
    ``set_to_zero()`` for the frozen ones: a partition into ``"train"`` and ``"freeze"``.

    $$u_\\ell \\mapsto \\begin{cases} 0 & \\text{frozen}_\\ell \\\\
    \\mathrm{opt}(u_{\\text{free}})_\\ell & \\text{otherwise} \\end{cases}$$

    Its arguments are ``optax.selective_transform``'s, and its errors name
    ``selective_transform`` and ``freeze_mask``. See :func:`selective_transform`.

    Reference: ``optax.selective_transform``.
    """

    optimizer: GradientTransformation
    freeze_mask: Any
    mask_compatible_extra_args: bool = eqx.field(static=True, default=False, init=False)
    unused: Literal["warn", "raise", "ignore"] = eqx.field(
        static=True, default="ignore", init=False
    )  # nothing frozen, or nothing free, is not reported
    labels_argument: ClassVar[str] = "freeze_mask"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "freeze_mask", _static_freeze_mask(self.freeze_mask))

    @property
    def transforms(self) -> dict[Hashable, GradientTransformation]:  # pyright: ignore[reportIncompatibleVariableOverride]
        """``{"train": optimizer, "freeze": set_to_zero()}``."""
        return _train_and_freeze(self.optimizer)

    @property
    def param_labels(self) -> PyTree:
        """``"freeze"`` where ``freeze_mask`` is ``True``, ``"train"`` elsewhere."""
        return jax.tree.map(_label, self.freeze_mask)


def selective_transform(
    optimizer: GradientTransformation,
    *,
    freeze_mask: bool | PyTree | Callable[[PyTree], PyTree],
) -> SelectiveTransform | Partition:
    """Optimize the params that ``freeze_mask`` leaves free; zero the frozen ones.

    $$u_\\ell \\mapsto \\begin{cases} 0 & \\text{frozen}_\\ell \\\\
    \\mathrm{opt}(u_{\\text{free}})_\\ell & \\text{otherwise} \\end{cases}$$

    A :func:`partition` with the groups ``"train"`` (``optimizer``) and ``"freeze"``
    (``set_to_zero()``): the optimizer keeps state (Adam's moments, ...) for the free
    params only, so freezing half of a model halves the optimizer's memory.
    ``freeze_mask`` is a single bool, or a tree of bools with the params' structure or a
    prefix of it; its leaves must be booleans (``1`` and ``0`` are an error, as in
    :func:`masked`). The result, a :class:`SelectiveTransform`, names
    ``selective_transform`` and ``freeze_mask`` in its errors. An empty group (nothing
    frozen, or nothing free) is not reported.

    ``freeze_mask`` may also be a function of the params returning such a tree (an optref
    extension: Optax's ``selective_transform`` maps over it as a tree). The result is
    then the partition it stands for, ``partition({"train": optimizer, "freeze":
    set_to_zero()}, FreezeLabels(freeze_mask))``, whose Optax counterpart is that
    ``optax.partition``; its errors name ``partition``.

    Reference: ``optax.selective_transform`` (``optax.transforms.selective_transform``).
    """
    if is_tree_function(freeze_mask):
        return Partition(_train_and_freeze(optimizer), FreezeLabels(freeze_mask), unused="ignore")
    return SelectiveTransform(optimizer, freeze_mask)
