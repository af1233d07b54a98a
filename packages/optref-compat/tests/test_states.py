"""State conversion: layouts, Optax-style access, params inference, round trips, jit."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optref.core as oc
from optref.compat import (
    StateConversionError,
    from_optax,
    optax_counterpart,
    state_from_optax,
    state_to_optax,
)

PARAMS = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, -0.7], [1.1, 0.2]])}
GRADS = jax.tree.map(lambda x: 0.5 * x - 0.1, PARAMS)


def _run(tx: Any, steps: int = 2, state: Any = None) -> Any:
    state = tx.init(PARAMS) if state is None else state
    for _ in range(steps):
        _, state = tx.update(GRADS, state, PARAMS)
    return state


def _same(a: Any, b: Any, rtol: float = 0.0) -> None:
    """The same layout and dtypes; the same values (to ``rtol``, across libraries)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol)


@pytest.mark.parametrize(
    ("optref_tx", "optax_tx"),
    [
        pytest.param(
            oc.named_chain(("clip", oc.clip(0.5)), ("opt", oc.adamw(0.1))),
            optax.named_chain(("clip", optax.clip(0.5)), ("opt", optax.adamw(0.1))),
            id="named_chain",
        ),
        pytest.param(
            oc.inject_hyperparams(oc.adam)(learning_rate=lambda c: 0.1 / (1 + c), b1=0.8),
            optax.inject_hyperparams(optax.adam)(learning_rate=lambda c: 0.1 / (1 + c), b1=0.8),
            id="inject_hyperparams-schedule",
        ),
        pytest.param(
            oc.chain(oc.clip_by_global_norm(1.0), oc.inject_hyperparams(oc.sgd)(0.1, 0.9)),
            optax.chain(
                optax.clip_by_global_norm(1.0), optax.inject_hyperparams(optax.sgd)(0.1, 0.9)
            ),
            id="chain-inject_hyperparams",
        ),
        pytest.param(
            oc.chain(from_optax(optax.scale_by_adam()), oc.scale(-0.1)),
            optax.chain(optax.scale_by_adam(), optax.scale(-0.1)),
            id="chain-from_optax",
        ),
    ],
)
def test_states_convert_exactly_both_ways(optref_tx: Any, optax_tx: Any) -> None:
    optref_state, optax_state = _run(optref_tx), _run(optax_tx)
    converted = state_to_optax(optref_tx, optref_state)
    _same(converted, optax_state, rtol=1e-12)
    _same(state_from_optax(optref_tx, optax_state), optref_state, rtol=1e-12)
    _same(state_from_optax(optref_tx, converted), optref_state)  # exactly back


def test_converted_state_reads_and_writes_like_optax() -> None:
    tx = oc.chain(oc.clip_by_global_norm(1.0), oc.inject_hyperparams(oc.adam)(learning_rate=0.1))
    state = state_to_optax(tx, _run(tx))
    assert optax.tree_utils.tree_get(state, "learning_rate") == pytest.approx(0.1)
    assert state[1].hyperparams["learning_rate"] == pytest.approx(0.1)
    assert isinstance(state[1], optax.InjectStatefulHyperparamsState)
    state = optax.tree_utils.tree_set(state, learning_rate=jnp.asarray(0.01))
    back = state_from_optax(tx, state)
    assert back[1].hyperparams["learning_rate"] == pytest.approx(0.01)
    # The next optref step uses the value set through Optax's API.
    opt = optax.chain(
        optax.clip_by_global_norm(1.0), optax.inject_hyperparams(optax.adam)(learning_rate=0.1)
    )
    expected, _ = opt.update(GRADS, state, PARAMS)
    got, _ = tx.update(GRADS, back, PARAMS)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_masked_and_partition_states() -> None:
    masking = pytest.importorskip("optref.masking")
    mask = {"w": True, "b": False}
    optref_tx = oc.chain(
        masking.masked(oc.inject_hyperparams(oc.adam)(learning_rate=0.1), mask),
        masking.partition({"a": oc.sgd(0.1, 0.9), "b": oc.adam(0.05)}, {"w": "a", "b": "b"}),
    )
    optax_tx = optax.chain(
        optax.masked(optax.inject_hyperparams(optax.adam)(learning_rate=0.1), mask),
        optax.partition({"a": optax.sgd(0.1, 0.9), "b": optax.adam(0.05)}, {"w": "a", "b": "b"}),
    )
    optref_state, optax_state = _run(optref_tx), _run(optax_tx)
    converted = state_to_optax(optref_tx, optref_state, params=PARAMS)
    _same(converted, optax_state, rtol=1e-12)
    assert isinstance(converted[0].inner_state.inner_state[0].mu["b"], optax.MaskedNode)
    assert optax.tree_utils.tree_get(converted, "learning_rate") == pytest.approx(0.1)
    _same(state_from_optax(optref_tx, optax_state, params=PARAMS), optref_state, rtol=1e-12)
    # No field of these states is shaped like the whole params: they must be given.
    with pytest.raises(StateConversionError, match="pass params="):
        state_to_optax(optref_tx, optref_state)


@pytest.mark.parametrize(
    "tx",
    [
        pytest.param(oc.adam(0.1), id="adam"),
        pytest.param(oc.chain(oc.clip(1.0), oc.sgd(0.1, momentum=0.9)), id="chain"),
        pytest.param(oc.adam(0.1, mu_dtype=jnp.float32), id="adam-mu_dtype"),
        pytest.param(oc.inject_hyperparams(oc.adamw)(0.1, weight_decay=0.01), id="inject"),
    ],
)
def test_params_are_found_in_the_state(tx: Any) -> None:
    """Without ``params=``, the params are read off the state's params-shaped fields."""
    state = _run(tx)
    with_params = state_to_optax(tx, state, params=PARAMS)
    _same(state_to_optax(tx, state), with_params)
    _same(state_from_optax(tx, with_params), state_from_optax(tx, with_params, params=PARAMS))


def test_stateless_needs_no_params_and_masks_ask_for_them() -> None:
    tx = oc.chain(oc.clip(1.0), oc.scale(-0.1))
    assert state_to_optax(tx, tx.init(PARAMS)) == (optax.EmptyState(), optax.EmptyState())
    decay = oc.add_decayed_weights(0.1, mask={"w": True, "b": False})
    with pytest.raises(StateConversionError, match="pass params="):
        state_to_optax(decay, decay.init(PARAMS))
    # Optax's masked weight decay wraps its (empty) state in a MaskedState.
    expected = optax.add_decayed_weights(0.1, mask={"w": True, "b": False}).init(PARAMS)
    assert state_to_optax(decay, decay.init(PARAMS), params=PARAMS) == expected


def test_round_trip_and_jit() -> None:
    tx = oc.chain(oc.clip_by_global_norm(1.0), oc.adamw(lambda c: 0.1 / (1 + c), weight_decay=0.1))
    state = _run(tx)

    @jax.jit
    def round_trip(state: Any) -> Any:
        return state_from_optax(tx, state_to_optax(tx, state, PARAMS), PARAMS)

    _same(round_trip(state), state)


def test_dtypes_follow_the_target_library() -> None:
    """Leaves are cast to the dtype the target library gives them, never across kinds."""
    params = jax.tree.map(lambda x: x.astype(jnp.float32), PARAMS)
    tx = oc.inject_hyperparams(oc.sgd)(learning_rate=0.1)  # optref keeps float64 values
    state = tx.init(params)
    with pytest.raises(StateConversionError, match="pass params="):
        state_to_optax(tx, state)  # nothing in the state says the params are float32
    converted = state_to_optax(tx, state, params=params)
    assert converted.hyperparams["learning_rate"].dtype == jnp.float32  # as Optax holds it
    back = state_from_optax(tx, converted, params=params)
    assert back.hyperparams["learning_rate"].dtype == jnp.float64


def test_optax_counterpart_of_chains_and_wrappers() -> None:
    tx = oc.chain(oc.clip_by_global_norm(1.0), oc.lars(0.1), from_optax(optax.scale(2.0)))
    opt = optax_counterpart(tx)
    expected = optax.chain(optax.clip_by_global_norm(1.0), optax.lars(0.1), optax.scale(2.0))
    _same(_run(opt), _run(expected), rtol=1e-12)


def test_lookahead_switches_library() -> None:
    """``lookahead`` (not among the conformance cases): its params are LookaheadParams, an
    optref module or an Optax NamedTuple, with the same fields."""
    optref_tx = oc.lookahead(oc.adam(0.1), sync_period=2, slow_step_size=0.5)
    optax_tx = optax.lookahead(optax.adam(0.1), sync_period=2, slow_step_size=0.5)

    def steps(tx: Any, params: Any, state: Any, n: int) -> tuple[Any, Any]:
        for _ in range(n):
            grads = jax.grad(lambda p: jnp.sum(p["w"] ** 4) + jnp.sum(p["b"] ** 2))(params.fast)
            updates, state = tx.update(grads, state, params)
            params = type(params)(
                fast=optax.apply_updates(params.fast, updates.fast),
                slow=optax.apply_updates(params.slow, updates.slow),
            )
        return params, state

    start = optax.LookaheadParams.init_synced(PARAMS)
    expected, _ = steps(optax_tx, start, optax_tx.init(start), 4)
    params = oc.LookaheadParams.init_synced(PARAMS)
    params, state = steps(optref_tx, params, optref_tx.init(params), 3)
    converted = state_to_optax(optref_tx, state, params=params)
    assert isinstance(converted, optax.LookaheadState)
    at = optax.LookaheadParams(params.fast, params.slow)
    got, _ = steps(optax_tx, at, converted, 1)
    _same(got, expected, rtol=1e-12)

    head, optax_state = steps(optax_tx, start, optax_tx.init(start), 3)
    at = oc.LookaheadParams(head.fast, head.slow)  # optref's, which Optax's init takes too
    state = state_from_optax(optref_tx, optax_state, params=at)
    got, _ = steps(optref_tx, at, state, 1)
    _same(optax.LookaheadParams(got.fast, got.slow), expected, rtol=1e-12)
