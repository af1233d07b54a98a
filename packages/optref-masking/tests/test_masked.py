"""masked and freeze: what is transformed, what passes through, what the state holds."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.core import TreeMismatchError, adam, add_decayed_weights, chain, identity, sgd
from optref.masking import (
    Masked,
    MaskedNode,
    MaskedState,
    freeze,
    masked,
    selective_transform,
)


def leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        x.dtype == y.dtype and np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(la, lb, strict=True)
    )


def run(tx, params, grads_list):
    state = tx.init(params)
    out = []
    for g in grads_list:
        u, state = tx.update(g, state, params)
        out.append(u)
    return out, state


def test_masked_in_updates_are_the_inner_ones_and_the_rest_pass_through(params, random_like):
    grads = [random_like(i, params) for i in range(3)]
    mask = {"encoder": True, "decoder": {"w": True, "b": False}, "head": False}
    got, state = run(masked(adam(0.1), mask), params, grads)
    alone, _ = run(adam(0.1), params, grads)
    for u, a, g in zip(got, alone, grads, strict=True):
        assert leaves_equal(u["encoder"], a["encoder"])
        assert leaves_equal(u["decoder"]["w"], a["decoder"]["w"])
        assert leaves_equal(u["decoder"]["b"], g["decoder"]["b"])  # unchanged
        assert leaves_equal(u["head"], g["head"])
    # The inner state holds moments for the masked-in leaves only.
    mu = state.inner_state[0].mu
    assert mu["head"] == {"w": MaskedNode(), "b": MaskedNode()}
    assert mu["decoder"]["b"] == MaskedNode()
    assert isinstance(state, MaskedState)


def test_all_true_mask_is_bit_identical_to_the_inner_alone(params, random_like):
    grads = [random_like(i, params) for i in range(4)]
    got, _ = run(masked(adam(0.1), True), params, grads)
    alone, _ = run(adam(0.1), params, grads)
    assert all(leaves_equal(u, a) for u, a in zip(got, alone, strict=True))


def test_callable_mask_is_called_with_params_then_updates(params, random_like):
    seen = []

    def by_ndim(tree):
        seen.append(tree)
        return jax.tree.map(lambda x: x.ndim == 2, tree)

    tx = masked(add_decayed_weights(0.5), by_ndim)
    state = tx.init(params)
    g = random_like(0, params)
    u, _ = tx.update(g, state, params)
    # In init, the params as their updates see them (the same arrays); then the updates.
    assert jax.tree.structure(seen[0]) == jax.tree.structure(params)
    assert all(
        a is b for a, b in zip(jax.tree.leaves(seen[0]), jax.tree.leaves(params), strict=True)
    )
    assert seen[1] is g
    np.testing.assert_array_equal(u["head"]["w"], g["head"]["w"] + 0.5 * params["head"]["w"])
    np.testing.assert_array_equal(u["head"]["b"], g["head"]["b"])


def test_mask_shaped_like_a_callable_equinox_module_is_a_tree():
    mlp = eqx.nn.MLP(3, 2, 4, 1, key=jax.random.key(0))
    params = eqx.filter(mlp, eqx.is_array)
    mask = jax.tree.map(lambda x: x.ndim == 2, params)  # an MLP of bools: callable, yet a tree
    tx = masked(adam(0.1), mask)
    state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, state, params)
    assert np.all(np.asarray(updates.layers[0].bias) == 1.0)
    assert not np.allclose(updates.layers[0].weight, 1.0)


def test_freeze_zeroes_only_the_masked_params_and_keeps_no_state(params, random_like):
    tx = chain(sgd(0.1), freeze({"encoder": True, "decoder": False, "head": False}))
    state = tx.init(params)
    g = random_like(0, params)
    u, state = tx.update(g, state, params)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u["encoder"]))
    np.testing.assert_allclose(u["head"]["w"], -0.1 * g["head"]["w"], rtol=1e-6)
    assert jax.tree.leaves(state[1]) == []


def test_freeze_with_a_single_bool(params, random_like):
    g = random_like(0, params)
    u, _ = freeze(True).update(g, freeze(True).init(params), params)
    assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(u))
    u, _ = freeze(False).update(g, freeze(False).init(params), params)
    assert leaves_equal(u, g)


def test_none_leaves_pass_through(params, random_like):
    filtered = {**params, "head": None}
    g = random_like(0, filtered)
    tx = masked(adam(0.1), {"encoder": True, "decoder": False, "head": True})
    u, state = tx.update(g, tx.init(filtered), filtered)
    assert u["head"] is None
    assert len(jax.tree.leaves(state.inner_state[0].mu)) == 2


def test_extra_args_shaped_like_the_updates_are_masked_when_asked(params, random_like):
    seen = {}

    class Spy(type(identity())):
        def update(self, updates, state, params=None, **extra):
            seen.update(extra)
            return updates, state

    g = random_like(0, params)
    for compatible in (False, True):
        tx = masked(
            Spy(),
            {"encoder": True, "decoder": False, "head": False},
            mask_compatible_extra_args=compatible,
        )
        tx.update(g, tx.init(params), params, grad=g, value=1.0)
        assert isinstance(seen["grad"]["head"]["w"], MaskedNode) is compatible
        assert seen["value"] == 1.0


def test_works_under_jit(params, random_like):
    tx = masked(adam(0.1), lambda p: jax.tree.map(lambda x: x.ndim == 2, p))
    g = random_like(0, params)
    state = tx.init(params)
    eager, _ = tx.update(g, state, params)
    jitted, _ = jax.jit(lambda g, s, p: tx.update(g, s, p))(g, state, params)
    filtered, _ = eqx.filter_jit(lambda t, g, s, p: t.update(g, s, p))(tx, g, state, params)
    for a, b in ((eager, jitted), (eager, filtered)):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), a, b)


def test_boolean_arrays_in_a_mask_become_static_bools(params, random_like):
    tx = masked(sgd(0.1), {"encoder": jnp.array(True), "decoder": np.bool_(False), "head": False})
    assert tx.mask["encoder"] is True and tx.mask["decoder"] is False
    g = random_like(0, params)
    u, _ = eqx.filter_jit(lambda t, g, s: t.update(g, s))(tx, g, tx.init(params))
    np.testing.assert_allclose(u["encoder"]["w"], -0.1 * g["encoder"]["w"], rtol=1e-6)


def test_a_mask_that_does_not_fit_names_the_paths(params):
    with pytest.raises(
        TreeMismatchError,
        match=r"masked: mask .*\['encoder'\]\['x'\].*"
        r"\['encoder'\]\['w'\]",
    ):
        masked(adam(0.1), {"encoder": {"x": True, "b": True}, "decoder": True, "head": True}).init(
            params
        )
    with pytest.raises(TreeMismatchError, match=r"the params have \['head'\]"):
        masked(adam(0.1), {"encoder": True, "decoder": True}).init(params)
    with pytest.raises(TreeMismatchError, match=r"booleans, got 1 at \['head'\]"):
        masked(adam(0.1), {"encoder": True, "decoder": True, "head": 1}).init(params)


def test_a_traced_mask_is_an_error(params):
    def init(flag):
        return masked(adam(0.1), {"encoder": flag, "decoder": True, "head": True}).init(params)

    with pytest.raises(TypeError, match=r"mask must be static .* at \['encoder'\]"):
        jax.jit(init)(True)


def test_inner_must_be_an_optref_transformation():
    with pytest.raises(TypeError, match="masked: inner must be an optref GradientTransformation"):
        masked(lambda u: u, True)


def test_updates_that_do_not_fit_are_named_at_the_wrapper(params, random_like):
    g = random_like(0, params)
    mask = {"encoder": True, "decoder": False, "head": False}
    tx = masked(sgd(0.1, momentum=0.9), mask)
    state = tx.init(params)
    missing = {k: v for k, v in g.items() if k != "head"}
    with pytest.raises(TreeMismatchError, match=r"^masked: .*params has \['head'\]\['b'\]"):
        tx.update(missing, state, params)
    # A leaf the mask leaves out is checked too: the inner transformation never sees it.
    wrong_shape = {**g, "head": {**g["head"], "b": jnp.zeros(3)}}
    with pytest.raises(TreeMismatchError, match=r"^masked: at \['head'\]\['b'\], .*shape"):
        tx.update(wrong_shape, state, params)
    leaves = tuple(jax.tree.leaves(params))
    listed = masked(sgd(0.1, momentum=0.9), lambda p: jax.tree.map(lambda x: x.ndim == 2, p))
    with pytest.raises(TreeMismatchError, match=r"^masked: at <root>, updates is a list"):
        listed.update(list(jax.tree.leaves(g)), listed.init(leaves), leaves)
    # Without params, None for a masked-out subtree is named at the wrapper too: the inner
    # state, built with a placeholder per masked-out leaf, records the params' structure.
    with pytest.raises(
        TreeMismatchError,
        match=r"^masked: updates does not have the structure of the params given to init: "
        r"the params given to init has \['head'\]\['b'\], \['head'\]\['w'\] which updates lacks",
    ):
        tx.update({**g, "head": None}, state)


def test_freeze_names_itself_in_its_errors(params, random_like):
    with pytest.raises(TreeMismatchError, match=r"^freeze: mask is neither .*\['head'\]"):
        freeze({"encoder": True, "decoder": False}).init(params)
    with pytest.raises(
        TreeMismatchError, match=r"^freeze: mask .*booleans, got 1 at \['encoder'\]"
    ):
        freeze({"encoder": 1, "decoder": True, "head": False})
    tx = freeze({"encoder": True, "decoder": False, "head": False})
    g = random_like(0, params)
    with pytest.raises(TreeMismatchError, match=r"^freeze: .*params has \['head'\]\['b'\]"):
        tx.update({k: v for k, v in g.items() if k != "head"}, tx.init(params), params)
    assert isinstance(tx, Masked) and repr(tx).startswith("Freeze(mask=")


def test_masks_hold_booleans_not_integers_in_every_masking_function(params):
    # Optax takes any value for its truth; optref asks for booleans everywhere, as core's
    # add_decayed_weights does, and says so when the mask is built.
    ints = {"encoder": 1, "decoder": 0, "head": 0}
    for build, name, argument in (
        (lambda m: masked(adam(0.1), m), "masked", "mask"),
        (freeze, "freeze", "mask"),
        (
            lambda m: selective_transform(adam(0.1), freeze_mask=m),
            "selective_transform",
            "freeze_mask",
        ),
    ):
        with pytest.raises(
            TreeMismatchError,
            match=rf"^{name}: {argument} must hold booleans, got 0 at \['decoder'\]",
        ):
            build(ints)
    with pytest.raises(TreeMismatchError, match=r"^masked: mask must hold booleans, got 1 at"):
        masked(adam(0.1), lambda p: jax.tree.map(lambda _: 1, p)).init(params)


def test_a_mask_of_the_filtered_model_fits_the_unfiltered_model_in_init(model, random_like):
    # None at the model's activation functions and Python ints, as eqx.filter leaves them.
    mask = jax.tree.map(lambda x: x.ndim == 2, eqx.filter(model, eqx.is_array))
    grads = random_like(0, model)
    for tx in (masked(adam(0.1), mask), freeze(mask)):
        state = tx.init(model)
        assert leaves_equal(state, tx.init(eqx.filter(model, eqx.is_array)))
        u, _ = tx.update(grads, state, model)
        assert jax.tree.structure(u) == jax.tree.structure(grads)


def test_updates_that_lack_a_key_are_named_at_the_wrapper_even_with_a_function_mask(params):
    by_ndim = masked(adam(0.1), lambda p: jax.tree.map(lambda x: x.ndim == 2, p))
    state = by_ndim.init(params)
    lacking = {k: v for k, v in params.items() if k != "head"}
    with pytest.raises(
        TreeMismatchError,
        match=r"^masked: .*given to init has \['head'\]\['b'\], \['head'\]\['w'\]",
    ):
        by_ndim.update(lacking, state, lacking)
