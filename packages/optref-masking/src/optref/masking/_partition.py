"""Partition: a different transformation for each labelled group of params."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import equinox as eqx
import jax
import numpy as np
from jaxtyping import PyTree, jaxtyped

from optref.core import (
    GradientTransformation,
    StateMismatchError,
    broadcast_prefix,
    is_params_placeholder,
    path_str,
)
from optref.core._hyperparameters import transformation_name
from optref.core._inner import check_inner
from optref.core._typecheck import typechecker

from ._group_table import NOT_A_PARAMETER, format_group_table
from ._masked import (
    MaskedState,
    apply_masked,
    as_updates_see,
    check_wrapper_update,
    init_masked,
)
from ._paths import named_leaves

__all__ = [
    "AbstractPartition",
    "MultiTransformState",
    "Partition",
    "PartitionState",
    "multi_transform",
    "partition",
]


@jaxtyped(typechecker=typechecker)
class PartitionState(eqx.Module):
    """The state of :func:`partition`: one :class:`MaskedState` per label."""

    inner_states: dict[Any, MaskedState]


#: The older name of :class:`PartitionState`, as in Optax.
MultiTransformState = PartitionState


def _is_label(value: Any) -> bool:
    """A hashable label: not an array, though a NumPy integer or string scalar is one."""
    if isinstance(value, np.integer | np.str_):
        return True
    return isinstance(value, Hashable) and not hasattr(value, "shape")


def _python_label(value: Any) -> Any:
    """A NumPy scalar label as the Python int or str it equals (and hashes as)."""
    return value.item() if isinstance(value, np.generic) else value


def _as_transforms(transforms: Any) -> dict[Hashable, GradientTransformation]:
    if not isinstance(transforms, Mapping):
        raise TypeError(
            "partition: transforms must be a mapping from labels to transformations "
            f"({{label: transformation}}), got {type(transforms).__name__}."
        )
    return dict(transforms)


class AbstractPartition(GradientTransformation):
    """What :func:`partition`, :func:`param_groups` and :func:`selective_transform`
    share: ``transforms[label]`` applied to the params labelled ``label``, for every label.

    $$u_\\ell \\mapsto T_{c(\\ell)}\\big(u_{\\{k \\,:\\, c(k) = c(\\ell)\\}}\\big)_\\ell$$

    A subclass provides ``transforms``, ``param_labels``, ``mask_compatible_extra_args``
    and ``unused`` (fields or properties); errors name it (``partition``,
    ``param_groups``, ``selective_transform``) and its argument ``labels_argument``.

    Reference: ``optax.partition``.
    """

    labels_argument: ClassVar[str] = "param_labels"

    if TYPE_CHECKING:  # fields of Partition, properties of SelectiveTransform
        transforms: dict[Hashable, GradientTransformation] = eqx.field(init=False)
        param_labels: Any = eqx.field(init=False)
        mask_compatible_extra_args: bool = eqx.field(init=False)
        unused: Literal["warn", "raise", "ignore"] = eqx.field(init=False)

    def __check_init__(self) -> None:
        name = transformation_name(self)
        for label, tx in self.transforms.items():
            check_inner(name, f"transforms[{label!r}]", tx)

    # -- labels -------------------------------------------------------------------------

    def labels(self, tree: PyTree) -> PyTree:
        """The label of every leaf of ``tree`` (a tree with its structure; ``None`` kept)."""
        labels = broadcast_prefix(
            self.param_labels,
            tree,
            where=transformation_name(self),
            argument=self.labels_argument,
            check_leaf=_is_label,
            expected="hashable labels (strings, ints; Python or NumPy scalars)",
        )
        return jax.tree.map(_python_label, labels)

    def _missing(self, labels: PyTree) -> dict[Hashable, list[str]]:
        missing: dict[Hashable, list[str]] = {}
        for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
            if label is not NOT_A_PARAMETER and label not in self.transforms:
                missing.setdefault(label, []).append(path_str(path))
        return missing

    def _check_labels(self, labels: PyTree) -> None:
        missing = self._missing(labels)
        if missing:
            name = transformation_name(self)
            detail = "; ".join(
                f"label {label!r} (at {', '.join(paths[:5])})" for label, paths in missing.items()
            )
            raise ValueError(
                f"{name}: some params have a label with no transformation: {detail}. "
                f"transforms has the labels {list(self.transforms)}."
            )

    def _unused(self, labels: PyTree) -> list[Hashable]:
        used = set(jax.tree.leaves(labels))
        return [label for label in self.transforms if label not in used]

    def _unused_message(self, labels: PyTree, params: PyTree) -> str:
        del params
        unused = ", ".join(repr(label) for label in self._unused(labels))
        return (
            f"{transformation_name(self)}: the transformation for label {unused} has no "
            "parameter: no leaf of the params carries that label."
        )

    def _unused_severity(self, unused: list[Hashable]) -> str:
        del unused
        return self.unused

    def _report_unused(self, labels: PyTree, params: PyTree) -> None:
        unused = self._unused(labels)
        severity = self._unused_severity(unused)
        if severity == "ignore" or not unused:
            return
        message = self._unused_message(labels, params)
        if severity == "raise":
            raise ValueError(message)
        warnings.warn(message, UserWarning, stacklevel=4)

    def _checked_labels(self, tree: PyTree) -> PyTree:
        labels = self.labels(tree)
        self._check_labels(labels)
        return labels

    def _params_labels(self, params: PyTree) -> PyTree:
        """The checked labels of ``params`` as their updates see them (``None`` at the
        leaves that are not floating or complex arrays), as in :func:`masked`."""
        return self._checked_labels(as_updates_see(params))

    @staticmethod
    def _group_mask(labels: PyTree, label: Hashable) -> PyTree:
        return jax.tree.map(lambda x: x == label, labels)

    # -- the transformation -------------------------------------------------------------

    def init(self, params: PyTree) -> PartitionState:
        if is_params_placeholder(params):
            return PartitionState(
                inner_states={
                    label: MaskedState(inner_state=tx.init(params))
                    for label, tx in self.transforms.items()
                }
            )
        labels = self._params_labels(params)
        self._report_unused(labels, params)
        return PartitionState(
            inner_states={
                label: init_masked(tx, self._group_mask(labels, label), params)
                for label, tx in self.transforms.items()
            }
        )

    def update(
        self, updates: PyTree, state: Any, params: PyTree | None = None, **extra: Any
    ) -> tuple[PyTree, PartitionState]:
        check_wrapper_update(self, updates, state, PartitionState, params)
        if set(state.inner_states) != set(self.transforms):
            raise StateMismatchError(
                f"{transformation_name(self)}: the state has groups "
                f"{sorted(map(repr, state.inner_states))} but transforms has "
                f"{sorted(map(repr, self.transforms))}. Was it built by another partition?"
            )
        labels = self._checked_labels(updates)
        inner_states = {}
        for label, tx in self.transforms.items():
            updates, inner_states[label] = apply_masked(
                tx,
                self._group_mask(labels, label),
                updates,
                state.inner_states[label],
                params,
                extra,
                mask_compatible_extra_args=self.mask_compatible_extra_args,
            )
        return updates, PartitionState(inner_states=inner_states)

    # -- reporting ----------------------------------------------------------------------

    def groups_by_path(self, params: PyTree) -> dict[str, Hashable | None]:
        """``{parameter name: label}`` for every leaf of ``params``, in flattening order.

        Names are the canonical dotted paths (:func:`path_name`); a leaf that is not a
        parameter (see :func:`param_groups`) maps to ``None``.
        """
        label_of = dict(named_leaves(self._params_labels(params)))
        return {name: label_of.get(name) for name, _ in named_leaves(params)}

    def group_table(self, params: PyTree) -> str:
        """A printable table of every parameter's group, shape and dtype, with a summary
        of the leaves and elements per group."""
        return format_group_table(params, self._params_labels(params), list(self.transforms))


class Partition(AbstractPartition):
    """Apply ``transforms[label]`` to the params labelled ``label``, for every label."""

    transforms: dict[Hashable, GradientTransformation] = eqx.field(converter=_as_transforms)
    param_labels: Any
    mask_compatible_extra_args: bool = eqx.field(static=True, default=False)
    unused: Literal["warn", "raise", "ignore"] = eqx.field(static=True, default="warn")


def partition(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: PyTree | Callable[[PyTree], PyTree],
    *,
    mask_compatible_extra_args: bool = False,
) -> Partition:
    """Apply a different transformation to each labelled group of params.

    $$u_\\ell \\mapsto T_{c(\\ell)}\\big(u_{\\{k \\,:\\, c(k) = c(\\ell)\\}}\\big)_\\ell$$

    where $c(\\ell)$ is the label of leaf $\\ell$: each transformation sees only the leaves
    of its group (the others are :class:`MaskedNode`), as if it were applied to them
    alone, and keeps state for them only. The state is
    ``PartitionState(inner_states={label: MaskedState(inner_state=...)})``.

    ``transforms`` is a mapping ``{label: transformation}`` (anything else is a
    ``TypeError`` naming it). ``param_labels`` is a tree of labels with the params'
    structure or a prefix of it, or a function of the params (called on the updates in
    ``update``) returning one. Labels are hashable scalars: strings and ints, Python or
    NumPy (``np.int64(0)`` is the label ``0``), not arrays. In ``init`` they are fitted
    to the params as their updates see them, as in :func:`masked`, so ``None`` at an
    unfiltered Equinox model's functions fits. Every label must have a transformation
    (otherwise ``init`` raises ``ValueError`` naming the label and the paths that carry
    it); a transformation whose label no leaf carries is reported with a
    ``UserWarning``. Before any transformation runs, ``update`` checks the updates
    against the params and against the params the state was built for, and raises
    :class:`~optref.core.TreeMismatchError` naming the partition and the PyTree path
    where they differ (a key the updates lack, say).

    :meth:`Partition.groups_by_path` and :meth:`Partition.group_table` show which
    parameter went to which group.

    Reference: ``optax.partition`` (formerly ``optax.multi_transform``).
    """
    return Partition(transforms, param_labels, mask_compatible_extra_args)


def multi_transform(
    transforms: Mapping[Hashable, GradientTransformation],
    param_labels: PyTree | Callable[[PyTree], PyTree],
    *,
    mask_compatible_extra_args: bool = False,
) -> Partition:
    """The older name of :func:`partition`, kept as Optax keeps it.

    $$u_\\ell \\mapsto T_{c(\\ell)}(u)_\\ell$$

    Reference: ``optax.multi_transform``.
    """
    return partition(
        transforms, param_labels, mask_compatible_extra_args=mask_compatible_extra_args
    )
