"""Frozen parameters: zero updates for some params, an optimizer for the rest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from optref.core import GradientTransformation, is_tree_function, set_to_zero

from ._masked import Masked, masked, static_mask
from ._partition import Partition

__all__ = ["FreezeLabels", "freeze", "selective_transform"]


def freeze(mask: bool | PyTree | Callable[[PyTree], PyTree]) -> Masked:
    """Hold the params where ``mask`` is ``True`` constant: their updates become zero.

    $$u_\\ell \\mapsto \\begin{cases} 0 & \\text{mask}_\\ell \\\\ u_\\ell & \\text{otherwise}
    \\end{cases}$$

    ``mask`` is a single bool (freeze all or nothing), a tree of bools with the params'
    structure or a prefix of it, or a function of the params returning one. This is
    ``masked(set_to_zero(), mask)``; it keeps no state. Put it after the optimizer in a
    chain to zero the frozen params' updates; use :func:`selective_transform` to also
    give them no optimizer state.

    Reference: ``optax.freeze`` (``optax.transforms.freeze``).
    """
    return masked(set_to_zero(), mask)


def _freeze_labels(freeze_mask: PyTree) -> PyTree:
    mask = static_mask(freeze_mask, where="selective_transform", argument="freeze_mask")
    return jax.tree.map(lambda frozen: "freeze" if frozen else "train", mask)


class FreezeLabels(eqx.Module):
    """The labels ``"freeze"``/``"train"`` from a freeze mask that is a function."""

    freeze_mask: Any

    def __call__(self, params: PyTree) -> PyTree:
        return _freeze_labels(self.freeze_mask(params))


def selective_transform(
    optimizer: GradientTransformation,
    *,
    freeze_mask: bool | PyTree | Callable[[PyTree], PyTree],
) -> Partition:
    """Optimize the params that ``freeze_mask`` leaves free; zero the frozen ones.

    $$u_\\ell \\mapsto \\begin{cases} 0 & \\text{frozen}_\\ell \\\\
    \\mathrm{opt}(u_{\\text{free}})_\\ell & \\text{otherwise} \\end{cases}$$

    A :func:`partition` with the groups ``"train"`` (``optimizer``) and ``"freeze"``
    (``set_to_zero()``): the optimizer keeps state (Adam's moments, ...) for the free
    params only, so freezing half of a model halves the optimizer's memory.
    ``freeze_mask`` is a single bool, a tree of bools with the params' structure or a
    prefix of it, or (an optref extension) a function of the params returning one. An
    empty group (nothing frozen, or nothing free) is not reported.

    Reference: ``optax.selective_transform`` (``optax.transforms.selective_transform``).
    """
    if is_tree_function(freeze_mask):
        labels: Any = FreezeLabels(freeze_mask)
    else:
        labels = _freeze_labels(freeze_mask)
    return Partition({"train": optimizer, "freeze": set_to_zero()}, labels, unused="ignore")
