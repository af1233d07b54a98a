"""tree_get, tree_set and tree_get_all through chain, named_chain, injection and wrappers."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

PARAMS = {"w": jnp.ones(3), "b": jnp.zeros(2)}


def _two_groups_state():
    tx = oc.chain(
        oc.inject_hyperparams(oc.adam)(learning_rate=0.1),
        oc.inject_hyperparams(oc.sgd)(learning_rate=0.2),
    )
    return tx, tx.init(PARAMS)


def test_one_value_through_injection_and_chain() -> None:
    tx = oc.chain(oc.clip_by_global_norm(1.0), oc.inject_hyperparams(oc.adam)(learning_rate=0.3))
    state = tx.init(PARAMS)
    assert float(oc.tree_get(state, "learning_rate")) == pytest.approx(0.3)
    assert float(oc.tree_get(state, "b2")) == pytest.approx(0.999)
    assert isinstance(oc.tree_get(state, "ScaleByAdamState"), oc.ScaleByAdamState)
    assert oc.tree_get(state, "missing") is None
    assert oc.tree_get(state, "missing", default=7) == 7


def test_a_scheduled_value_is_found_once() -> None:
    tx = oc.inject_hyperparams(oc.sgd)(learning_rate=lambda c: 1.0 / (c + 1))
    state = tx.init(PARAMS)
    # The schedule's own state is named after the hyperparameter too, but it is not a value.
    assert float(oc.tree_get(state, "learning_rate")) == pytest.approx(1.0)
    assert list(oc.tree_get_all(state, "learning_rate")) == [".hyperparams['learning_rate']"]


def test_ambiguity_lists_every_path() -> None:
    _, state = _two_groups_state()
    with pytest.raises(oc.TreeKeyError) as error:
        oc.tree_get(state, "learning_rate")
    message = str(error.value)
    assert "[0].hyperparams['learning_rate']" in message
    assert "[1].hyperparams['learning_rate']" in message
    assert "filtering" in message
    assert isinstance(error.value, KeyError)


def test_path_filter_chooses_one() -> None:
    _, state = _two_groups_state()
    assert float(oc.tree_get(state, "learning_rate", filtering="[1]")) == pytest.approx(0.2)
    first_level = re.compile(r"^\[0\]")
    assert float(oc.tree_get(state, "learning_rate", filtering=first_level)) == pytest.approx(0.1)
    first = lambda path, value: path[0] == jax.tree_util.SequenceKey(0)  # noqa: E731
    assert float(oc.tree_get(state, "learning_rate", filtering=first)) == pytest.approx(0.1)
    assert oc.tree_get(state, "learning_rate", filtering="[7]") is None


def test_string_filters_are_whole_entries_never_patterns() -> None:
    tx = oc.named_chain(
        ("encoder", oc.inject_hyperparams(oc.adam)(learning_rate=0.1)),
        ("decoder", oc.inject_hyperparams(oc.sgd)(learning_rate=0.2)),
    )
    state = tx.init(PARAMS)

    def rate(filtering):
        value = oc.tree_get(state, "learning_rate", filtering=filtering)
        return None if value is None else pytest.approx(float(value))

    # As a regex, "['decoder']" is a character class that every path matches.
    assert rate("['decoder']") == 0.2
    assert rate("decoder") == 0.2
    assert rate("['encoder'].hyperparams") == 0.1
    assert rate("coder") is None
    assert rate("['dec") is None
    assert rate(re.compile(r"\['dec")) == 0.2
    groups = tuple({"rate": jnp.asarray(float(i))} for i in range(11))
    assert float(oc.tree_get(groups, "rate", filtering="[1]")) == 1.0  # not [10]


def test_tree_get_all_is_keyed_by_path() -> None:
    _, state = _two_groups_state()
    found = oc.tree_get_all(state, "learning_rate")
    assert {k: float(v) for k, v in found.items()} == pytest.approx(
        {"[0].hyperparams['learning_rate']": 0.1, "[1].hyperparams['learning_rate']": 0.2}
    )
    counts = oc.tree_get_all(state, "count")
    assert set(counts) == {"[0].count", "[0].inner_state[0].count", "[1].count"}
    with_paths = oc.tree_get_all_with_path(state, "learning_rate", "[1]")
    assert len(with_paths) == 1 and jax.tree_util.keystr(with_paths[0][0]).startswith("[1]")


def test_named_chain_keys_and_members() -> None:
    tx = oc.named_chain(
        ("clip", oc.clip_by_global_norm(1.0)),
        ("opt", oc.inject_hyperparams(oc.adam)(learning_rate=0.05)),
    )
    state = tx.init(PARAMS)
    assert float(oc.tree_get(state, "learning_rate")) == pytest.approx(0.05)
    assert list(oc.tree_get_all(state, "learning_rate")) == ["['opt'].hyperparams['learning_rate']"]
    assert isinstance(oc.tree_get(state, "opt"), oc.InjectStatefulHyperparamsState)
    new = oc.tree_set(state, learning_rate=jnp.asarray(0.5))
    assert float(new["opt"].hyperparams["learning_rate"]) == 0.5


@pytest.mark.parametrize(
    "wrap",
    [
        lambda tx: oc.apply_if_finite(tx, 3),
        lambda tx: oc.MultiSteps(tx, 2),
        lambda tx: oc.flatten(tx),
        lambda tx: oc.conditionally_mask(tx, lambda step: step % 2 == 0),
        lambda tx: oc.conditionally_transform(tx, lambda step: step % 2 == 0),
        lambda tx: oc.lookahead(tx, 2, 0.5),
    ],
    ids=[
        "apply_if_finite",
        "MultiSteps",
        "flatten",
        "conditionally_mask",
        "conditionally_transform",
        "lookahead",
    ],
)
def test_through_every_wrapper(wrap) -> None:
    inner = oc.inject_hyperparams(oc.adam)(learning_rate=0.1)
    tx = wrap(oc.chain(oc.identity(), inner))
    params = oc.LookaheadParams.init_synced(PARAMS) if isinstance(tx, oc.Lookahead) else PARAMS
    state = tx.init(params)
    assert float(oc.tree_get(state, "learning_rate")) == pytest.approx(0.1)
    state = oc.tree_set(state, learning_rate=jnp.asarray(0.4))
    assert float(oc.tree_get(state, "learning_rate")) == pytest.approx(0.4)
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    _, state = jax.jit(lambda g, s: tx.update(g, s, params))(grads, state)
    assert float(oc.tree_get(state, "learning_rate")) == pytest.approx(0.4)


def test_tree_set_replaces_every_match_or_the_filtered_one() -> None:
    _, state = _two_groups_state()
    both = oc.tree_set(state, learning_rate=jnp.asarray(1.0))
    assert [float(v) for v in oc.tree_get_all(both, "learning_rate").values()] == [1.0, 1.0]
    second = oc.tree_set(state, "[1]", learning_rate=jnp.asarray(1.0))
    assert [float(v) for v in oc.tree_get_all(second, "learning_rate").values()] == pytest.approx(
        [0.1, 1.0]
    )
    # The original is unchanged, and untouched subtrees are shared, not copied.
    assert float(oc.tree_get(state, "learning_rate", filtering="[1]")) == pytest.approx(0.2)
    assert second[0] is state[0]


def test_tree_set_errors_and_several_keywords() -> None:
    _, state = _two_groups_state()
    with pytest.raises(oc.TreeKeyError, match="nope"):
        oc.tree_set(state, nope=1.0)
    with pytest.raises(oc.TreeKeyError, match="filter"):
        oc.tree_set(state, "[5]", learning_rate=1.0)
    new = oc.tree_set(state, "[0]", b1=jnp.asarray(0.5), eps=jnp.asarray(1e-3))
    assert float(new[0].hyperparams["b1"]) == 0.5
    assert float(new[0].hyperparams["eps"]) == pytest.approx(1e-3)


def test_tree_set_keeps_an_array_leaf_so_a_jitted_step_does_not_compile_again() -> None:
    tx, state = _two_groups_state()
    traces = []

    @jax.jit
    def step(state):
        traces.append(None)
        return tx.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS)

    old = oc.tree_get(state, "learning_rate", filtering="[1]")
    step(state)
    state = oc.tree_set(state, "[1]", learning_rate=0.05, count=3)
    new = oc.tree_get(state, "learning_rate", filtering="[1]")
    assert isinstance(new, jax.Array) and (new.dtype, new.shape) == (old.dtype, old.shape)
    assert float(new) == pytest.approx(0.05)
    assert oc.tree_get(state, "count", filtering="[1]").dtype == jnp.int32
    step(state)
    assert len(traces) == 1


def test_tree_set_rejects_a_value_the_leaf_cannot_hold() -> None:
    _, state = _two_groups_state()
    with pytest.raises(ValueError, match=r"learning_rate=.*\[1\]\.hyperparams.*shape \(2,\)"):
        oc.tree_set(state, "[1]", learning_rate=jnp.ones(2))
    with pytest.raises(ValueError, match=r"count=2\.5 at \[1\]\.count.*int32"):
        oc.tree_set(state, "[1]", count=2.5)


def test_tree_set_a_whole_state_by_class_name() -> None:
    tx = oc.adam(0.1)
    state = tx.init(PARAMS)
    fresh = oc.ScaleByAdamState(count=jnp.asarray(5, jnp.int32), mu=PARAMS, nu=PARAMS)
    new = oc.tree_set(state, ScaleByAdamState=fresh)
    assert new[0] is fresh
    assert int(oc.tree_get(new, "count")) == 5


def test_set_value_is_used_at_the_next_step_of_the_chosen_group() -> None:
    tx, state = _two_groups_state()
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    u_before, _ = tx.update(grads, state, PARAMS)
    state = oc.tree_set(state, "[1]", learning_rate=jnp.asarray(0.0, jnp.float32))
    u_after, state = tx.update(grads, state, PARAMS)
    np.testing.assert_array_equal(np.asarray(u_after["w"]), 0.0)
    assert np.all(np.asarray(u_before["w"]) != 0.0)


def test_tree_get_reads_transformations_too() -> None:
    tx = oc.chain(oc.scale_by_adam(b1=0.7), oc.scale_by_learning_rate(0.2))
    assert float(oc.tree_get(tx, "b1")) == pytest.approx(0.7)
    assert float(oc.tree_get(tx, "learning_rate")) == pytest.approx(0.2)
