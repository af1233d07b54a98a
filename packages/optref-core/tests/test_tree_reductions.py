"""Sums and conjunctions over the leaves of a tree: their values, and a compiled program that
computes them once."""

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


def test_all_finite_over_leaves_read_by_every_leaf_is_computed_once() -> None:
    """Every leaf chosen by whether all 30 leaves are finite (L-BFGS's fallback direction,
    apply_if_finite): the compiled program takes the conjunction once, where without
    computed_once it held about 30 x 30 scalar ``and``s, one chain in every leaf's kernel."""
    tree = {f"p{i:02d}": jnp.ones((4,)) for i in range(30)}

    def choose(t):
        return jax.tree.map(lambda x: jnp.where(oc.tree_all_finite(t), x, -x), t)

    hlo = jax.jit(choose).lower(tree).compile().as_text()
    conjunctions = len(re.findall(r"= pred\[\] and\(", hlo))
    assert conjunctions <= 3 * len(tree), conjunctions


@pytest.mark.parametrize("jit", [True, False], ids=["jit", "eager"])
def test_all_finite_over_leaves_and_a_bool_computed_once(jit: bool) -> None:
    tree_all_finite = jax.jit(oc.tree_all_finite) if jit else oc.tree_all_finite
    finite = {"a": jnp.ones((3,)), "b": jnp.zeros((2, 2)), "c": jnp.asarray(3.0e38)}
    assert bool(tree_all_finite(finite)) is True
    for bad in (np.inf, -np.inf, np.nan):
        assert (
            bool(tree_all_finite({**finite, "b": jnp.asarray([[0.0, bad], [1.0, 2.0]])})) is False
        )
    assert bool(tree_all_finite({})) is True
    once = jax.jit(oc.computed_once) if jit else oc.computed_once
    for value in (True, False):
        result = once(jnp.asarray(value))
        assert result.dtype == jnp.bool_ and bool(result) is value


def test_tree_sum_adds_the_leaves_in_order_or_in_pairs() -> None:
    """``associative_reduction`` (Optax's name) changes the order of the additions, and so
    the rounding: ((1e8 + 1) - 1e8) + 1 is 1 in float32, (1e8 + 1) + (-1e8 + 1) is 0."""
    tree = [jnp.asarray(v, jnp.float32) for v in (1e8, 1.0, -1e8, 1.0)]
    assert oc.tree_sum(tree) == 1.0
    assert oc.tree_sum(tree, associative_reduction=True) == 0.0
    five = [jnp.asarray(float(k)) for k in range(5)]
    assert oc.tree_sum(five, associative_reduction=True) == 10.0  # an odd count is kept


def test_tree_add_takes_any_number_of_trees() -> None:
    x = {"a": jnp.arange(3.0), "b": jnp.ones(2)}
    total = oc.tree_add(x, x, x, x)
    np.testing.assert_array_equal(total["a"], 4 * x["a"])
    np.testing.assert_array_equal(oc.tree_where(False, tree_x=x, tree_y=total)["b"], 4 * x["b"])


def test_safe_norm_along_an_axis_as_optax_documents() -> None:
    x = jnp.asarray([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(oc.safe_norm(x, 0.5, axis=1), [5.0, 0.5, 1.0])
    assert oc.safe_norm(x, 0.5, axis=1, keepdims=True).shape == (3, 1)
    assert oc.safe_norm(x, 0.0, ord=1, axis=0).shape == (2,)
    assert oc.safe_norm(x).shape == () and oc.safe_norm(x, keepdims=True).shape == (1, 1)
    grads = jax.grad(lambda y: oc.safe_norm(y, 0.5, axis=1).sum())(x)
    assert np.all(np.isfinite(grads)) and np.all(grads[1] == 0)
