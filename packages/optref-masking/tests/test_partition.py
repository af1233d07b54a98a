"""partition, multi_transform and selective_transform: groups, state, errors, memory."""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import numpy as np
import pytest

from optref.core import TreeMismatchError, adam, chain, set_to_zero, sgd
from optref.masking import (
    MaskedNode,
    MultiTransformState,
    PartitionState,
    freeze,
    multi_transform,
    param_groups,
    partition,
    selective_transform,
)


def same(a, b) -> bool:
    return all(
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_each_label_gets_its_own_transformation(params, random_like):
    labels = {"encoder": "a", "decoder": "a", "head": {"w": "s", "b": "z"}}
    tx = partition({"a": adam(0.1), "s": sgd(0.2, momentum=0.9), "z": set_to_zero()}, labels)
    state = tx.init(params)
    sub = {"encoder": params["encoder"], "decoder": params["decoder"]}
    alone_a, alone_s = adam(0.1), sgd(0.2, momentum=0.9)
    sa, ss = alone_a.init(sub), alone_s.init(params["head"]["w"])
    for i in range(3):
        g = random_like(i, params)
        u, state = tx.update(g, state, params)
        ua, sa = alone_a.update({"encoder": g["encoder"], "decoder": g["decoder"]}, sa, sub)
        us, ss = alone_s.update(g["head"]["w"], ss, params["head"]["w"])
        assert same({"encoder": u["encoder"], "decoder": u["decoder"]}, ua)
        assert same(u["head"]["w"], us)
        assert np.all(np.asarray(u["head"]["b"]) == 0)
    assert isinstance(state, PartitionState) and MultiTransformState is PartitionState
    assert set(state.inner_states) == {"a", "s", "z"}
    assert state.inner_states["a"].inner_state[0].mu["head"]["w"] == MaskedNode()


def test_labels_as_a_prefix_or_a_function(params, random_like):
    g = random_like(0, params)
    by_prefix = partition(
        {"x": adam(0.1), "y": sgd(0.1)}, {"encoder": "x", "decoder": "y", "head": "y"}
    )

    def label_fn(tree):
        return {
            k: jax.tree.map(lambda _: "x" if k == "encoder" else "y", v) for k, v in tree.items()
        }

    by_function = multi_transform({"x": adam(0.1), "y": sgd(0.1)}, label_fn)
    u1, _ = by_prefix.update(g, by_prefix.init(params), params)
    u2, _ = by_function.update(g, by_function.init(params), params)
    assert same(u1, u2)


def test_groups_by_path_and_table(params):
    tx = partition({"x": adam(0.1), "y": sgd(0.1)}, {"encoder": "x", "decoder": "y", "head": "y"})
    assert tx.groups_by_path(params) == {
        "decoder.b": "y",
        "decoder.w": "y",
        "encoder.b": "x",
        "encoder.w": "x",
        "head.b": "y",
        "head.w": "y",
    }
    table = tx.group_table(params)
    assert "encoder.w  x      (4, 6)  float32" in table
    assert "x: 2 leaves, 30 elements" in table


def test_a_label_without_a_transformation_is_named_with_its_paths(params):
    tx = partition({"x": adam(0.1)}, {"encoder": "x", "decoder": "x", "head": "oops"})
    with pytest.raises(
        ValueError,
        match=r"label 'oops' \(at \['head'\]\['b'\], "
        r"\['head'\]\['w'\]\).*labels \['x'\]",
    ):
        tx.init(params)


def test_a_transformation_without_params_is_reported_by_name(params):
    tx = partition({"x": adam(0.1), "idle": sgd(0.1)}, "x")
    with pytest.warns(UserWarning, match=r"partition: the transformation for label 'idle' has no"):
        tx.init(params)


def test_a_label_tree_that_does_not_fit_names_the_path(params):
    tx = partition({"x": adam(0.1)}, {"encoder": "x", "decoder": "x", "tail": "x"})
    with pytest.raises(
        TreeMismatchError,
        match=r"param_labels has \['tail'\] which the params "
        r"lack; the params have \['head'\]\['b'\]",
    ):
        tx.init(params)


def test_selective_transform_gives_frozen_params_no_state_and_zero_updates(
    params, random_like, nbytes
):
    freeze_mask = {"encoder": True, "decoder": True, "head": False}
    tx = selective_transform(adam(0.1), freeze_mask=freeze_mask)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty group is not reported here
        state = tx.init(params)
        selective_transform(adam(0.1), freeze_mask=False).init(params)
    g = random_like(0, params)
    u, state = tx.update(g, state, params)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves((u["encoder"], u["decoder"])))
    # Adam's two moments for the head only (6*2 + 2 floats each) plus its int32 count.
    assert nbytes(state) == 2 * 4 * (12 + 2) + 4
    assert nbytes(adam(0.1).init(params)) == 2 * 4 * (24 + 6 + 36 + 6 + 12 + 2) + 4
    # A function of the params as freeze_mask (an optref extension).
    by_ndim = lambda p: jax.tree.map(lambda x: x.ndim == 1, p)  # noqa: E731
    by_fn = selective_transform(adam(0.1), freeze_mask=by_ndim)
    assert by_fn.groups_by_path(params)["head.b"] == "freeze"


def test_freezing_half_of_a_model_halves_adams_memory(params, nbytes):
    # encoder + decoder and head: 36 + 6 + 24 + 6 (frozen) vs 12 + 2 + ... pick two halves of
    # equal size: every "w" (24 + 36 + 12 = 72 floats) frozen, every "b" (14 floats) trained.
    frozen_w = {k: {"w": True, "b": False} for k in params}
    full = nbytes(adam(0.1).init(params))
    selective = nbytes(selective_transform(adam(0.1), freeze_mask=frozen_w).init(params))
    masked_chain = nbytes(chain(adam(0.1), freeze(frozen_w)).init(params))
    assert full == 4 + 2 * 4 * 86
    assert selective == 4 + 2 * 4 * 14  # moments for the trained biases only
    assert masked_chain == full  # freeze after adam zeroes the updates but keeps the moments


def _by_ndim(tree):
    return jax.tree.map(lambda x: "a" if x.ndim == 2 else "s", tree)


def test_updates_that_lack_a_key_are_named_before_the_members_run(params, random_like):
    g = random_like(0, params)
    lacking = {k: v for k, v in g.items() if k != "head"}
    tx = partition({"a": adam(0.1), "s": sgd(0.1)}, _by_ndim)
    state = tx.init(params)
    expected = r"given to init has \['head'\]\['b'\], \['head'\]\['w'\] which updates lacks"
    for given in (lacking, None):  # params that agree with the updates, or none
        with pytest.raises(TreeMismatchError, match=rf"^partition: .*{expected}"):
            tx.update(lacking, state, given)
    groups = param_groups([(r".*\.w", adam(0.1))], default=sgd(0.1))
    with pytest.raises(TreeMismatchError, match=rf"^param_groups: .*{expected}"):
        groups.update(lacking, groups.init(params), lacking)
    extra = {**g, "tail": g["head"]}
    with pytest.raises(TreeMismatchError, match=r"updates has \['tail'\]\['b'\]"):
        tx.update(extra, state)


def test_selective_transform_names_itself_and_freeze_mask_in_its_errors(params, random_like):
    tx = selective_transform(adam(0.1), freeze_mask={"encoder": True, "decoder": False})
    with pytest.raises(
        TreeMismatchError,
        match=r"^selective_transform: freeze_mask is neither .*the params have \['head'\]",
    ):
        tx.init(params)
    with pytest.raises(
        TreeMismatchError,
        match=r"^selective_transform: freeze_mask must hold booleans, got 1 at \['encoder'\]",
    ):
        selective_transform(adam(0.1), freeze_mask={"encoder": 1, "decoder": True, "head": False})
    tx = selective_transform(
        adam(0.1), freeze_mask={"encoder": True, "decoder": False, "head": False}
    )
    g = random_like(0, params)
    with pytest.raises(TreeMismatchError, match=r"^selective_transform: .*\['head'\]\['b'\]"):
        tx.update({k: v for k, v in g.items() if k != "head"}, tx.init(params), params)


def test_numpy_scalar_labels_are_the_python_labels(params, random_like):
    python = partition({0: adam(0.1), 1: sgd(0.1)}, {"encoder": 0, "decoder": 1, "head": 1})
    numpy = partition(
        {0: adam(0.1), 1: sgd(0.1)},
        {"encoder": np.int64(0), "decoder": np.int32(1), "head": np.int64(1)},
    )
    strings = partition(
        {"a": adam(0.1), "s": sgd(0.1)},
        {"encoder": np.str_("a"), "decoder": np.str_("s"), "head": "s"},
    )
    g = random_like(0, params)
    expected, _ = python.update(g, python.init(params), params)
    for tx in (numpy, strings):
        got, _ = tx.update(g, tx.init(params), params)
        assert same(got, expected)
    with pytest.raises(TreeMismatchError, match=r"hashable labels .*got array\(\[0\]\) at"):
        partition({0: sgd(0.1)}, {"encoder": np.array([0]), "decoder": 0, "head": 0}).init(params)
    with pytest.raises(TreeMismatchError, match=r"hashable labels .*got array\(0\) at"):
        partition({0: sgd(0.1)}, {"encoder": np.array(0), "decoder": 0, "head": 0}).init(params)


@pytest.mark.parametrize("factory", [partition, multi_transform])
@pytest.mark.parametrize("transforms", [None, [sgd(0.1)], sgd(0.1)])
def test_transforms_must_be_a_mapping(factory, transforms):
    with pytest.raises(TypeError, match=r"^partition: transforms must be a mapping from labels"):
        factory(transforms, "x")


def test_a_label_tree_of_the_filtered_model_fits_the_unfiltered_model_in_init(model, random_like):
    labels = jax.tree.map(lambda x: "a" if x.ndim == 2 else "s", eqx.filter(model, eqx.is_array))
    tx = partition({"a": adam(0.1), "s": sgd(0.1, momentum=0.9)}, labels)
    state = tx.init(model)
    assert same(state, tx.init(eqx.filter(model, eqx.is_array)))
    tx.update(random_like(0, model), state, model)
    groups = tx.groups_by_path(model)
    assert groups["encoder.linear.weight"] == "a" and groups["encoder.activation"] is None
    assert "encoder.activation" in tx.group_table(model)
