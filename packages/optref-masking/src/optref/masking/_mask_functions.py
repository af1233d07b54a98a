"""Masks and labels as functions of the params: by number of dimensions, by name.

Each builder returns a function ``params -> tree`` that :func:`masked`, :func:`freeze`
and :func:`partition` accept (and Optax's ``masked`` and ``partition`` too). ``None``
leaves stay ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from typing import Any

import jax
from jaxtyping import PyTree

from ._paths import path_name

__all__ = ["ndim_labels", "ndim_mask", "path_mask"]


def _ndim(leaf: Any) -> int:
    return len(getattr(leaf, "shape", ()))


def ndim_mask(min_ndim: int = 2) -> Callable[[PyTree], PyTree]:
    """A mask that selects the leaves with at least ``min_ndim`` dimensions.

    $$\\text{mask}_\\ell = [\\operatorname{ndim}(p_\\ell) \\ge d]$$

    With ``min_ndim=2`` it selects weight matrices and leaves biases and norm scales out
    (the usual weight-decay mask). Reference: the mask function of ``optax.masked``'s
    documentation.
    """

    def mask(params: PyTree) -> PyTree:
        return jax.tree.map(lambda x: _ndim(x) >= min_ndim, params)

    return mask


def ndim_labels(
    matrix: Hashable = "matrix", vector: Hashable = "vector", scalar: Hashable = "scalar"
) -> Callable[[PyTree], PyTree]:
    """Labels by number of dimensions: ``matrix`` (2 or more), ``vector`` (1), ``scalar`` (0).

    $$c(\\ell) = \\begin{cases} \\text{matrix} & \\operatorname{ndim} \\ge 2 \\\\
    \\text{vector} & \\operatorname{ndim} = 1 \\\\ \\text{scalar} & \\operatorname{ndim} = 0
    \\end{cases}$$
    """

    def labels(params: PyTree) -> PyTree:
        return jax.tree.map(
            lambda x: matrix if _ndim(x) >= 2 else vector if _ndim(x) == 1 else scalar, params
        )

    return labels


def path_mask(pattern: str) -> Callable[[PyTree], PyTree]:
    """A mask that selects the leaves whose canonical name fully matches ``pattern``.

    $$\\text{mask}_\\ell = \\operatorname{fullmatch}(\\text{pattern},
    \\operatorname{name}(\\ell))$$

    Names are as :func:`path_name` writes them (``encoder.layers[0].weight``,
    ``head.w``), so ``path_mask(r".*\\.bias")`` selects every bias.
    """
    compiled = re.compile(pattern)

    def mask(params: PyTree) -> PyTree:
        return jax.tree_util.tree_map_with_path(
            lambda path, _: compiled.fullmatch(path_name(path)) is not None, params
        )

    return mask
