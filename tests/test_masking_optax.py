"""optref.masking against Optax 0.2.8 in float64: groups of injected optimizers, Equinox
models with ``None`` and non-array leaves, and the errors both raise.

The conformance cases of ``optref.masking.conformance`` run through the audit runner in
``test_conformance.py``; this file checks what those cases cannot express.
"""

from __future__ import annotations

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optref.core as oc
import optref.masking as om
from optref.audit import flatten_state
from optref.compat import to_optax

jax.config.update("jax_enable_x64", True)

GROUPS = ("encoder", "decoder", "head")


def _params() -> dict:
    rng = np.random.default_rng(0)
    return {
        g: {"w": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.asarray(rng.normal(size=4))}
        for g in GROUPS
    }


def _grads(step: int, params):
    rng = np.random.default_rng(100 + step)
    return jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), params)


def _schedule(i: int):
    return lambda count: 0.1 / (i + 1) / (1.0 + 0.1 * count)


def _close(a, b, rtol: float = 1e-12) -> None:
    fa, fb = flatten_state(a), flatten_state(b)
    assert set(fa) == set(fb), set(fa) ^ set(fb)
    for key in fa:
        scale = max(float(np.sqrt(np.mean(np.abs(fb[key]) ** 2))), 1e-300)
        assert float(np.max(np.abs(fa[key] - fb[key]))) <= rtol * scale, key


def _run_both(ours, theirs, params, steps: int = 8, jit: bool = True):
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    _close(s_ours, s_theirs)
    up_ours = jax.jit(lambda g, s, p: ours.update(g, s, p)) if jit else ours.update
    up_theirs = jax.jit(lambda g, s, p: theirs.update(g, s, p)) if jit else theirs.update
    for step in range(steps):
        g = _grads(step, params)
        u_ours, s_ours = up_ours(g, s_ours, params)
        u_theirs, s_theirs = up_theirs(g, s_theirs, params)
        _close(u_ours, u_theirs)
        _close(s_ours, s_theirs)
    return s_ours, s_theirs


@pytest.mark.parametrize("kind", ["chain_of_masked", "partition"])
def test_groups_of_injected_adams_match_optax(kind):
    params = _params()
    ours_tx = {
        g: oc.inject_hyperparams(oc.adam)(learning_rate=_schedule(i), b1=0.8 + 0.05 * i)
        for i, g in enumerate(GROUPS)
    }
    theirs_tx = {
        g: optax.inject_hyperparams(optax.adam)(learning_rate=_schedule(i), b1=0.8 + 0.05 * i)
        for i, g in enumerate(GROUPS)
    }
    if kind == "chain_of_masked":
        masks = {g: {h: h == g for h in GROUPS} for g in GROUPS}
        ours = oc.chain(*(om.masked(ours_tx[g], masks[g]) for g in GROUPS))
        theirs = optax.chain(*(optax.masked(theirs_tx[g], masks[g]) for g in GROUPS))
    else:
        ours = om.partition(ours_tx, {g: g for g in GROUPS})
        theirs = optax.partition(theirs_tx, {g: g for g in GROUPS})
    s_ours, s_theirs = _run_both(ours, theirs, params)
    # Every group's learning rate, read from both states by path.
    found_ours = oc.tree_get_all(s_ours, "learning_rate")
    found_theirs = [
        v
        for _, v in optax.tree_utils.tree_get_all_with_path(
            s_theirs, "learning_rate", filtering=lambda _, v: isinstance(v, jax.Array)
        )
    ]
    assert len(found_ours) == len(found_theirs) == 3
    np.testing.assert_allclose(
        sorted(map(float, found_ours.values())), sorted(map(float, found_theirs)), rtol=1e-15
    )


def test_param_groups_match_optax_partition_on_a_filtered_equinox_model():
    model = eqx.nn.MLP(3, 2, 5, 2, key=jax.random.key(0), dtype=jnp.float64)
    params = eqx.filter(model, eqx.is_array)
    params = eqx.tree_at(lambda m: m.layers[2], params, replace_fn=lambda _: None)  # frozen
    patterns = {"biases": r".*\.bias", "first": r"layers\[0\]\..*"}
    ours = om.param_groups(
        {
            name: (pattern, oc.adam(0.01) if name == "first" else oc.sgd(0.1))
            for name, pattern in patterns.items()
        },
        default=oc.adamw(0.01, weight_decay=0.1),
    )
    theirs = optax.partition(
        {
            "biases": optax.sgd(0.1),
            "first": optax.adam(0.01),
            "default": optax.adamw(0.01, weight_decay=0.1),
        },
        om.path_labels(patterns, default="default"),
    )
    assert ours.groups_by_path(params) == {
        "layers[0].weight": "first",
        "layers[0].bias": "biases",
        "layers[1].weight": "default",
        "layers[1].bias": "biases",
    }
    s_ours, s_theirs = _run_both(ours, theirs, params, steps=3)
    assert flatten_state(s_ours).keys() == flatten_state(s_theirs).keys()


def test_selective_transform_state_and_memory_match_optax():
    params = _params()
    freeze_mask = {"encoder": True, "decoder": {"w": True, "b": False}, "head": False}
    s_ours, s_theirs = _run_both(
        om.selective_transform(oc.adam(0.01), freeze_mask=freeze_mask),
        optax.selective_transform(optax.adam(0.01), freeze_mask=freeze_mask),
        params,
        steps=3,
    )
    nbytes = [sum(x.nbytes for x in jax.tree.leaves(s)) for s in (s_ours, s_theirs)]
    assert nbytes[0] == nbytes[1] == 4 + 2 * 8 * (4 + 12 + 4)  # count + mu, nu of 20 floats


def test_a_missing_label_is_an_error_in_both():
    params = _params()
    labels = {"encoder": "a", "decoder": "a", "head": "b"}
    with pytest.raises(ValueError):
        optax.partition({"a": optax.sgd(0.1)}, labels).init(params)
    with pytest.raises(ValueError, match=r"label 'b' \(at \['head'\]"):
        om.partition({"a": oc.sgd(0.1)}, labels).init(params)


def test_extra_args_masking_matches_optax():
    params = _params()
    masks = {g: g != "head" for g in GROUPS}
    ours = om.masked(oc.add_decayed_weights(0.1), masks, mask_compatible_extra_args=True)
    theirs = optax.masked(optax.add_decayed_weights(0.1), masks, mask_compatible_extra_args=True)
    g = _grads(0, params)
    u_ours, _ = ours.update(g, ours.init(params), params, grad=g)
    u_theirs, _ = theirs.update(g, theirs.init(params), params, grad=g)
    _close(u_ours, u_theirs, rtol=0.0)


def _tree_map_params_specs(opt, params) -> dict[str, str]:
    """Which leaves of ``opt``'s state ``tree_map_params`` takes for params ("P") or not."""
    specs = optax.tree_utils.tree_map_params(
        opt, lambda _: "P", opt.init(params), transform_non_params=lambda _: "-"
    )
    return {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_flatten_with_path(specs)[0]}


_MASK = {"encoder": True, "decoder": {"w": True, "b": False}, "head": False}
_LABELS = {"encoder": "a", "decoder": {"w": "a", "b": "s"}, "head": "s"}


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (om.masked(oc.adam(0.1), _MASK), optax.masked(optax.adam(0.1), _MASK)),
        (
            om.partition({"a": oc.adam(0.1), "s": oc.sgd(0.1, momentum=0.9)}, _LABELS),
            optax.partition({"a": optax.adam(0.1), "s": optax.sgd(0.1, momentum=0.9)}, _LABELS),
        ),
        (
            oc.adamw(0.1, weight_decay=0.1, mask=_MASK),
            optax.adamw(0.1, weight_decay=0.1, mask=_MASK),
        ),
        (
            om.selective_transform(oc.adam(0.1), freeze_mask=_MASK),
            optax.selective_transform(optax.adam(0.1), freeze_mask=_MASK),
        ),
        (om.freeze(_MASK), optax.freeze(_MASK)),
        (
            om.partition(
                {"matrix": oc.adamw(0.1, mask=_MASK), "vector": oc.sgd(0.1, momentum=0.9)},
                om.ndim_labels(),
            ),
            optax.partition(
                {"matrix": optax.adamw(0.1, mask=_MASK), "vector": optax.sgd(0.1, momentum=0.9)},
                om.ndim_labels(),
            ),
        ),
    ],
    ids=["masked", "partition", "adamw", "selective_transform", "freeze", "partition_by_ndim"],
)
def test_tree_map_params_sees_the_params_in_states_with_tree_masks_as_optax_does(ours, theirs):
    # tree_map_params calls init with a leafless placeholder, which no tree mask or label
    # tree fits: optref passes it through unmasked, as Optax's masked does.
    params = _params()
    opt = to_optax(ours)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no group is reported idle for the placeholder
        specs = _tree_map_params_specs(opt, params)
    assert specs == _tree_map_params_specs(theirs, params)
    cast = optax.tree_utils.tree_map_params(opt, lambda x: x.astype(jnp.bfloat16), opt.init(params))
    dtypes = {k: v.dtype for k, v in flatten_state(cast).items()}
    assert {k for k, d in dtypes.items() if d == jnp.bfloat16} == {
        k for k, v in specs.items() if v == "P"
    }


def test_the_structure_of_real_params_is_still_checked_through_to_optax():
    params = _params()
    for tx in (om.masked(oc.adam(0.1), _MASK), oc.adamw(0.1, mask=_MASK)):
        with pytest.raises(
            oc.TreeMismatchError, match=r"mask has \['head'\] which the params lack"
        ):
            to_optax(tx).init({k: v for k, v in params.items() if k != "head"})
