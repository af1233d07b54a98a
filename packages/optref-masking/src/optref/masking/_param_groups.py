"""Parameter groups by name, as PyTorch users know them: ordered regex patterns."""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import equinox as eqx
import jax
from jaxtyping import PyTree

from optref.core import GradientTransformation

from ._group_table import NOT_A_PARAMETER, format_group_table
from ._partition import Partition
from ._paths import named_leaves, path_name

__all__ = ["DEFAULT_GROUP", "ParamGroups", "PathLabels", "param_groups", "path_labels"]

DEFAULT_GROUP = "default"
"""The name of the group of params that no pattern matches."""


class _Unmatched:
    def __repr__(self) -> str:
        return "<matched by no pattern>"


_UNMATCHED = _Unmatched()


def _is_parameter(leaf: Any) -> bool:
    return eqx.is_inexact_array(leaf)


class PathLabels(eqx.Module):
    """Label each leaf with the name of the first group whose pattern matches its path.

    Called with a tree, returns the tree of labels: the group name for floating and
    complex array leaves, :data:`DEFAULT_GROUP` (when ``default`` is set) for those no
    pattern matches, and :data:`NOT_A_PARAMETER` for every other leaf.
    """

    names: tuple[str, ...] = eqx.field(static=True)
    patterns: tuple[str, ...] = eqx.field(static=True)
    default: str | None = eqx.field(static=True, default=None)

    def __check_init__(self) -> None:
        if len(self.names) != len(self.patterns):
            raise ValueError("path_labels: one pattern per group name is needed.")
        if len(set(self.names)) != len(self.names) or self.default in self.names:
            raise ValueError(
                f"path_labels: group names must be unique, got {list(self.names)} "
                f"(default group: {self.default!r})."
            )
        for name, pattern in zip(self.names, self.patterns, strict=True):
            if not isinstance(pattern, str):
                raise TypeError(
                    f"param_groups: the pattern of group {name!r} must be a string, got "
                    f"{pattern!r}."
                )
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(
                    f"param_groups: the pattern {pattern!r} of group {name!r} is not a valid "
                    f"regular expression: {error}."
                ) from error

    def matches(self, name: str) -> list[str]:
        """The groups whose pattern matches the whole of the parameter name, in order."""
        return [g for g, p in zip(self.names, self.patterns, strict=True) if re.fullmatch(p, name)]

    def label(self, name: str, leaf: Any) -> Hashable:
        """The label of one leaf given its canonical name (:func:`path_name`)."""
        if not _is_parameter(leaf):
            return NOT_A_PARAMETER
        for group, pattern in zip(self.names, self.patterns, strict=True):
            if re.fullmatch(pattern, name):
                return group
        return _UNMATCHED if self.default is None else self.default

    def __call__(self, tree: PyTree) -> PyTree:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
        return treedef.unflatten([self.label(path_name(p), leaf) for p, leaf in leaves])


def path_labels(patterns: Mapping[str, str], default: str | None = None) -> PathLabels:
    """A label function for :func:`partition` from ordered ``{group: regex}`` patterns.

    $$c(\\ell) = \\text{the first } g \\text{ such that } \\operatorname{fullmatch}(
    p_g, \\operatorname{name}(\\ell)), \\text{ else the default}$$

    The name of a leaf is its canonical dotted path (:func:`path_name`, e.g.
    ``encoder.layers[0].weight``). Usable with Optax's ``partition`` as well.
    """
    return PathLabels(tuple(patterns), tuple(patterns.values()), default)


def _normalise_groups(
    groups: Sequence[tuple[str, GradientTransformation]]
    | Mapping[str, tuple[str, GradientTransformation]],
) -> list[tuple[str, str, GradientTransformation]]:
    if isinstance(groups, Mapping):
        items = list(groups.items())
    elif isinstance(groups, Sequence) and not isinstance(groups, str):
        items = [(f"group_{i}", group) for i, group in enumerate(groups)]
    else:
        raise TypeError(
            "param_groups: groups must be a list of (pattern, transformation) pairs or a "
            f"dict of name -> (pattern, transformation), got {type(groups).__name__}."
        )
    out = []
    for name, group in items:
        if not (isinstance(group, tuple | list) and len(group) == 2):
            raise TypeError(
                f"param_groups: group {name!r} must be a (pattern, transformation) pair, "
                f"got {group!r}."
            )
        out.append((name, group[0], group[1]))
    return out


class ParamGroups(Partition):
    """A :class:`Partition` whose labels come from regex patterns on parameter names."""

    def _check_labels(self, labels: PyTree) -> None:
        unmatched = [name for name, label in named_leaves(labels) if label is _UNMATCHED]
        if unmatched:
            raise ValueError(
                f"param_groups: no pattern matches {', '.join(unmatched[:8])}"
                + (f" (and {len(unmatched) - 8} more)" if len(unmatched) > 8 else "")
                + " and there is no default group. Pass default=<transformation> (for "
                "example default=set_to_zero() to freeze them) or widen a pattern."
            )
        super()._check_labels(labels)

    def _unused_message(self, labels: PyTree, params: PyTree) -> str:
        path_labels_: PathLabels = self.param_labels
        names = [name for name, leaf in named_leaves(params) if _is_parameter(leaf)]
        problems = []
        for group in self._unused(labels):
            if group == path_labels_.default:
                problems.append("the default group gets no parameter (every one matches a pattern)")
                continue
            pattern = path_labels_.patterns[path_labels_.names.index(group)]
            matched = [n for n in names if re.fullmatch(pattern, n)]
            if not matched:
                problems.append(f"the pattern {pattern!r} of group {group!r} matches no parameter")
            else:
                earlier = sorted({path_labels_.matches(n)[0] for n in matched})
                problems.append(
                    f"group {group!r} gets no parameter: every name its pattern {pattern!r} "
                    f"matches ({', '.join(matched[:3])}) is taken by an earlier group "
                    f"({', '.join(map(repr, earlier))})"
                )
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f"param_groups: {'; '.join(problems)}. The parameter names are: {shown}."

    def _unused_severity(self, unused: list[Hashable]) -> str:
        path_labels_: PathLabels = self.param_labels
        if unused == [path_labels_.default] and self.unused == "raise":
            return "warn"  # an idle default group is worth a warning, not an error
        return self.unused

    def group_table(self, params: PyTree) -> str:
        """A printable table of every parameter's group and the pattern that matched it."""
        path_labels_: PathLabels = self.param_labels
        patterns: dict[Hashable, str] = dict(
            zip(path_labels_.names, path_labels_.patterns, strict=True)
        )
        return format_group_table(
            params,
            self._params_labels(params),
            list(self.transforms),
            note=lambda group: patterns.get(group, "(no pattern matched)"),
            note_header="pattern",
        )


def param_groups(
    groups: Sequence[tuple[str, GradientTransformation]]
    | Mapping[str, tuple[str, GradientTransformation]],
    default: GradientTransformation | None = None,
    *,
    strict: bool = True,
    mask_compatible_extra_args: bool = False,
) -> ParamGroups:
    """Parameter groups by name: ordered regex patterns, each with its own optimizer.

    $$c(\\ell) = \\min\\{\\, g : \\operatorname{fullmatch}(p_g, \\operatorname{name}(\\ell))
    \\,\\}, \\qquad u_\\ell \\mapsto T_{c(\\ell)}\\big(u_{\\{k : c(k) = c(\\ell)\\}}\\big)_\\ell$$

    ``groups`` is a list of ``(pattern, transformation)`` pairs, named ``"group_0"``,
    ``"group_1"``, ... in order, or a dict ``{name: (pattern, transformation)}``. Each
    parameter goes to the *first* group whose pattern matches its whole name
    (``re.fullmatch``); the params that no pattern matches go to ``default`` (the group
    :data:`DEFAULT_GROUP`), and without a default they are an error. The name of a
    parameter is its canonical dotted path (:func:`path_name`): ``encoder.layers[0].weight``
    for an Equinox module, ``encoder.w`` for ``params['encoder']['w']``, ``[1].b`` for
    ``params[1]['b']``.

    Only floating and complex array leaves are parameters. ``None`` leaves (an
    ``eqx.filter``-ed model) and other leaves (activation functions, integers) belong to
    no group, get no state and pass through unchanged.

    With ``strict`` (the default), ``init`` raises ``ValueError`` when a group gets no
    parameter, saying whether its pattern matches nothing or only names that earlier
    groups took; otherwise it warns. An idle default group is only warned about.

    The result is a :func:`partition` (state ``PartitionState(inner_states={group:
    MaskedState(...)})``), so each group keeps state for its own params only, and
    :meth:`Partition.groups_by_path` / :meth:`ParamGroups.group_table` show which
    parameter went where::

        tx = param_groups(
            [(r".*\\.bias|.*norm.*", adamw(lr, weight_decay=0.0)),
             (r"encoder\\..*", adam(lr / 10))],
            default=adam(lr),
        )
        print(tx.group_table(params))

    Reference: PyTorch's optimizer parameter groups; built on ``optax.partition``.
    """
    normalised = _normalise_groups(groups)
    transforms: dict[Hashable, GradientTransformation] = {n: t for n, _, t in normalised}
    if default is not None:
        if DEFAULT_GROUP in transforms:
            raise ValueError(
                f"param_groups: {DEFAULT_GROUP!r} names the group of unmatched params; "
                "choose another name for your group."
            )
        transforms[DEFAULT_GROUP] = default
    labels = PathLabels(
        tuple(n for n, _, _ in normalised),
        tuple(p for _, p, _ in normalised),
        None if default is None else DEFAULT_GROUP,
    )
    return ParamGroups(
        transforms, labels, mask_compatible_extra_args, "raise" if strict else "warn"
    )
