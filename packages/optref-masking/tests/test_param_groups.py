"""param_groups: regex patterns on canonical parameter names, on dicts, tuples and Equinox."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.core import adam, adamw, apply_updates, set_to_zero, sgd
from optref.masking import (
    DEFAULT_GROUP,
    NOT_A_PARAMETER,
    MaskedNode,
    param_groups,
    path_labels,
    path_name,
)


def names(tree) -> list[str]:
    return [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def test_canonical_names_for_dicts_tuples_and_modules(model):
    assert names({"encoder": {"w": 1, "layers": [2, {"b": 3}]}}) == [
        "encoder.layers[0]",
        "encoder.layers[1].b",
        "encoder.w",
    ]
    assert names((1, {"b": 2})) == ["[0]", "[1].b"]
    assert names({"a": {7: 2, 8: 3}}) == ["a[7]", "a[8]"]
    assert names(jnp.zeros(3)) == [""]
    assert "encoder.linear.weight" in names(model)
    assert "encoder.activation" in names(model)  # a non-array leaf still has a name
    mlp = eqx.nn.MLP(2, 1, 3, 1, key=jax.random.key(0))
    assert names(eqx.filter(mlp, eqx.is_array)) == [
        "layers[0].weight",
        "layers[0].bias",
        "layers[1].weight",
        "layers[1].bias",
    ]


def test_first_matching_pattern_wins_and_the_rest_go_to_default(params):
    tx = param_groups(
        [(r".*\.b", sgd(0.1)), (r"encoder\..*", adam(0.01)), (r".*", adam(0.1))],
    )
    assert tx.groups_by_path(params) == {
        "decoder.b": "group_0",
        "decoder.w": "group_2",
        "encoder.b": "group_0",
        "encoder.w": "group_1",
        "head.b": "group_0",
        "head.w": "group_2",
    }
    named = param_groups({"no_decay": (r".*\.b", sgd(0.1))}, default=adam(0.1))
    assert named.groups_by_path(params)["head.w"] == DEFAULT_GROUP
    assert list(named.transforms) == ["no_decay", "default"]


def test_each_group_gets_exactly_its_optimizers_updates(params, random_like):
    tx = param_groups(
        {"bias": (r".*\.b", sgd(0.1, momentum=0.9)), "enc": (r"encoder\..*", adam(0.01))},
        default=adam(0.1),
    )
    alone = {"bias": sgd(0.1, momentum=0.9), "enc": adam(0.01), "default": adam(0.1)}
    members = {
        "bias": ["encoder.b", "decoder.b", "head.b"],
        "enc": ["encoder.w"],
        "default": ["decoder.w", "head.w"],
    }

    def pick(tree, group):
        flat = dict(zip(names(tree), jax.tree.leaves(tree), strict=True))
        return [flat[n] for n in members[group]]

    state = tx.init(params)
    alone_states = {k: t.init(pick(params, k)) for k, t in alone.items()}
    for i in range(3):
        g = random_like(i, params)
        u, state = tx.update(g, state, params)
        for k, t in alone.items():
            ua, alone_states[k] = t.update(pick(g, k), alone_states[k], pick(params, k))
            for x, y in zip(pick(u, k), ua, strict=True):
                assert np.array_equal(x, y)


def test_equinox_model_filtered_with_none_and_non_array_leaves_under_jit(model, random_like):
    tx = param_groups(
        [(r".*\.bias|.*norm.*", adamw(0.01, weight_decay=0.0)), (r"encoder\..*", adam(0.001))],
        default=sgd(0.1),
    )
    # The head is frozen out by filtering: None leaves. The activation and the int are
    # non-array leaves of the unfiltered model.
    trainable = eqx.filter(model, eqx.is_array)
    trainable = eqx.tree_at(lambda m: m.head, trainable, None)
    groups = tx.groups_by_path(model)
    assert groups["encoder.linear.weight"] == "group_1"
    assert groups["encoder.linear.bias"] == "group_0"
    assert groups["decoder.norm.weight"] == "group_0"
    assert groups["decoder.linear.weight"] == "default"
    assert groups["encoder.activation"] is None and groups["encoder.repeats"] is None
    assert "head.weight" not in tx.groups_by_path(trainable)

    state = tx.init(trainable)
    assert tx.init(model) is not None  # the unfiltered model inits too: non-arrays are skipped

    @eqx.filter_jit
    def step(tx, model, state, x):
        params = eqx.filter(model, eqx.is_array)
        params = eqx.tree_at(lambda m: m.head, params, None)
        grads = eqx.filter_grad(lambda p, m: jnp.sum(eqx.combine(p, m)(x) ** 2))(params, model)
        updates, state = tx.update(grads, state, params)
        return eqx.apply_updates(model, updates), state, updates

    x = jnp.ones(4)
    new_model, state, updates = step(tx, model, state, x)
    assert updates.head is None
    assert updates.encoder.activation is None
    assert np.array_equal(new_model.head.weight, model.head.weight)
    assert not np.array_equal(new_model.encoder.linear.weight, model.encoder.linear.weight)
    # The unfiltered model as params: the non-array leaves line up with the None updates.
    state_full = tx.init(eqx.tree_at(lambda m: m.head, model, None))
    grads = jax.tree.map(lambda u: u, updates)
    u2, _ = tx.update(grads, state_full, eqx.tree_at(lambda m: m.head, model, None))
    assert u2.encoder.activation is None
    assert state.inner_states["group_1"].inner_state[0].mu.decoder.linear.weight == MaskedNode()


def test_tuples_of_params(random_like):
    params = (jnp.ones((2, 2)), {"b": jnp.zeros(2)})
    tx = param_groups([(r"\[0\]", adam(0.1)), (r"\[1\]\..*", sgd(0.1))])
    assert tx.groups_by_path(params) == {"[0]": "group_0", "[1].b": "group_1"}
    g = random_like(0, params)
    u, _ = tx.update(g, tx.init(params), params)
    np.testing.assert_allclose(u[1]["b"], -0.1 * g[1]["b"], rtol=1e-6)
    assert apply_updates(params, u)[0].shape == (2, 2)


def test_table_shows_groups_patterns_and_totals(model):
    tx = param_groups({"norms": (r".*norm.*", sgd(0.1))}, default=adam(0.1))
    table = tx.group_table(model)
    print(table)
    lines = table.splitlines()
    assert lines[0].split() == ["parameter", "group", "shape", "dtype", "pattern"]
    assert any(line.split()[:2] == ["encoder.norm.weight", "norms"] for line in lines)
    assert any(
        line.startswith("encoder.activation") and "not a parameter" in line for line in lines
    )
    assert "norms: 4 leaves, 24 elements" in table
    assert "default: 6 leaves, 86 elements" in table


def test_unmatched_params_without_a_default_are_named(params):
    tx = param_groups([(r"encoder\..*", adam(0.1))])
    with pytest.raises(
        ValueError,
        match=r"no pattern matches decoder\.b, decoder\.w, head\.b, "
        r"head\.w and there is no default group",
    ):
        tx.init(params)


def test_a_pattern_that_matches_nothing_is_reported(params):
    tx = param_groups([(r"encoder\..*", adam(0.1)), (r"enocder\..*", sgd(0.1))], default=adam(0.1))
    with pytest.raises(
        ValueError,
        match=r"the pattern 'enocder\\\\\.\.\*' of group 'group_1' "
        r"matches no parameter.*encoder\.b",
    ):
        tx.init(params)
    loose = param_groups(
        [(r"encoder\..*", adam(0.1)), (r"enocder\..*", sgd(0.1))], default=adam(0.1), strict=False
    )
    with pytest.warns(UserWarning, match="matches no parameter"):
        loose.init(params)


def test_a_pattern_shadowed_by_an_earlier_one_is_reported(params):
    tx = param_groups({"all": (r".*", adam(0.1)), "heads": (r"head\..*", sgd(0.1))})
    with pytest.raises(
        ValueError,
        match=r"group 'heads' gets no parameter: every name its "
        r"pattern .* is taken by an earlier group \('all'\)",
    ):
        tx.init(params)


def test_an_idle_default_group_is_a_warning(params):
    tx = param_groups([(r".*", adam(0.1))], default=set_to_zero())
    with pytest.warns(UserWarning, match="the default group gets no parameter"):
        tx.init(params)


def test_bad_patterns_and_groups_are_errors():
    with pytest.raises(ValueError, match=r"pattern '\(' of group 'group_0' is not a valid"):
        param_groups([("(", adam(0.1))])
    with pytest.raises(TypeError, match="group 'x' must be a \\(pattern, transformation\\) pair"):
        param_groups({"x": adam(0.1)})
    with pytest.raises(ValueError, match="'default' names the group of unmatched params"):
        param_groups({"default": (".*", adam(0.1))}, default=sgd(0.1))


def test_path_labels_alone(params):
    labels = path_labels({"weights": r".*\.w"}, default="rest")(params)
    assert labels["encoder"] == {"w": "weights", "b": "rest"}
    assert path_labels({"w": ".*"})({"f": jax.nn.relu})["f"] is NOT_A_PARAMETER
