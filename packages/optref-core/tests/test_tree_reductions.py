"""Sums over the leaves of a tree: their values, and a compiled program that adds them once."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

REDUCTIONS = {
    "tree_sum": lambda t: oc.tree_sum(t),
    "tree_vdot": lambda t: oc.tree_vdot(t, t),
    "tree_l2_norm(squared)": lambda t: oc.tree_l2_norm(t, squared=True),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_a_sum_over_leaves_read_by_every_leaf_is_added_once(name: str) -> None:
    """Every leaf scaled by a sum over all the leaves: the compiled program adds the 30
    partial sums once. XLA:CPU copies a chain of cheap scalar operations into each kernel
    that reads it, so without the final division by a run-time one the program held
    30 x 30 = 900 scalar additions."""
    tree = {f"p{i:02d}": jnp.ones((4,)) for i in range(30)}
    hlo = jax.jit(lambda t: oc.tree_scale(REDUCTIONS[name](t), t)).lower(tree).compile().as_text()
    additions = len(re.findall(r"= f32\[\] add\(", hlo))
    assert additions <= 3 * len(tree), additions


@pytest.mark.parametrize(
    "special",
    [np.inf, -np.inf, np.nan, -0.0, 0.0, 3.0e38, 1.0e-45],
    ids=["inf", "-inf", "nan", "-0", "0", "huge", "subnormal"],
)
@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_a_sum_over_leaves_is_the_ordered_sum_of_the_partials(special: float, jit: bool) -> None:
    """The value is ((p1 + p2) + p3) + ..., bit for bit, infinities, NaN and signed zeros
    included: the division by one that ends it is exact."""
    leaves = [np.float32(special), np.float32(-0.0), np.float32(2.5), np.float32(special)]
    tree = {f"p{i}": jnp.asarray([x], jnp.float32) for i, x in enumerate(leaves)}
    tree_sum = jax.jit(oc.tree_sum) if jit else oc.tree_sum
    # Each leaf's partial is a reduction that starts from zero, then the partials are added
    # in order.
    with np.errstate(over="ignore", invalid="ignore"):
        expected = np.float32(0) + leaves[0]
        for x in leaves[1:]:
            expected = np.float32(expected + (np.float32(0) + x))
    got = np.asarray(tree_sum(tree))
    assert got.dtype == np.float32
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got.view(np.uint32) == np.asarray(expected, np.float32).view(np.uint32)


def test_a_complex_sum_over_leaves_keeps_its_imaginary_part() -> None:
    tree = {
        "a": jnp.asarray([1 + 2j, 3 - 1j], jnp.complex64),
        "b": jnp.asarray([1j], jnp.complex64),
    }
    assert complex(jax.jit(oc.tree_sum)(tree)) == 4 + 2j
    assert complex(oc.tree_vdot(tree, tree)) == pytest.approx(16.0)
