"""A printable table of which parameter went to which group."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from jaxtyping import PyTree

from ._paths import named_leaves

__all__ = ["NOT_A_PARAMETER", "format_group_table"]


class _NotAParameter:
    """The label of a leaf that belongs to no group: a non-array leaf of a model."""

    def __repr__(self) -> str:
        return "<not a parameter>"


NOT_A_PARAMETER: Hashable = _NotAParameter()
"""The label that :func:`param_groups` gives to leaves that are not floating or complex
arrays (activation functions, integers, flags of an Equinox model): no group owns
them, they get no state, and their updates pass through unchanged."""


def _describe(leaf: Any) -> tuple[str, str, int]:
    shape = getattr(leaf, "shape", None)
    dtype = getattr(leaf, "dtype", None)
    if shape is None or dtype is None:
        return "-", type(leaf).__name__, 0
    return str(tuple(shape)), np.dtype(dtype).name, int(np.prod(shape, dtype=np.int64))


def format_group_table(
    params: PyTree,
    labels: PyTree,
    order: Sequence[Hashable],
    note: Callable[[Hashable], str] | None = None,
    note_header: str = "",
) -> str:
    """A table with one row per leaf (path, group, shape, dtype) and a per-group summary.

    ``labels`` has ``params``' structure; ``order`` lists the groups for the summary;
    ``note`` adds a column (``note_header``) describing a group, such as its pattern.
    """
    label_of: Mapping[str, Hashable] = dict(named_leaves(labels))
    headers = ["parameter", "group", "shape", "dtype"] + ([note_header] if note else [])
    rows = []
    totals: dict[Hashable, list[int]] = {label: [0, 0] for label in order}
    for name, leaf in named_leaves(params):
        label = label_of.get(name, NOT_A_PARAMETER)
        shape, dtype, size = _describe(leaf)
        owned = label is not NOT_A_PARAMETER
        group = str(label) if owned else "- (not a parameter)"
        row = [name or "<root>", group, shape, dtype]
        if note:
            row.append(note(label) if owned else "")
        rows.append(row)
        if owned:
            total = totals.setdefault(label, [0, 0])
            total[0] += 1
            total[1] += size
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows), ""]
    for label, (count, size) in totals.items():
        leaves = "leaf" if count == 1 else "leaves"
        out.append(f"{label}: {count} {leaves}, {size} elements")
    return "\n".join(out)
