"""Errors: wrong optimizer, other params, no counterpart, a leaf missing on one side."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest
from jaxtyping import Array, Inexact, Int, PyTree

import optref.core as oc
from optref.compat import (
    NoCounterpartError,
    StateConversionError,
    from_optax,
    has_optax_counterpart,
    optax_counterpart,
    register_optax_counterpart,
    state_from_optax,
    state_to_optax,
    to_optax,
)
from optref.core import StateMismatchError

PARAMS = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, -0.7], [1.1, 0.2]])}
GRADS = jax.tree.map(lambda x: 0.5 * x, PARAMS)


def test_state_of_another_optimizer_names_both() -> None:
    adam_state = oc.adam(0.1).init(PARAMS)
    with pytest.raises(StateConversionError) as error:
        state_to_optax(oc.sgd(0.1, momentum=0.9), adam_state)
    message = str(error.value)
    assert "chain(trace, scale_by_learning_rate)" in message  # the transformation
    assert "ScaleByAdamState(count, mu, nu)" in message  # the state given
    assert "TraceState(trace)" in message  # the state it expects

    with pytest.raises(StateConversionError) as error:
        state_from_optax(oc.adam(0.1), optax.sgd(0.1, momentum=0.9).init(PARAMS))
    message = str(error.value)
    assert "state_from_optax(chain(scale_by_adam, scale_by_learning_rate))" in message
    assert "TraceState(trace)" in message and "ScaleByAdamState(count, mu, nu)" in message


def test_a_state_whose_params_cannot_be_read_off_asks_for_them() -> None:
    """Adafactor's factored moments are rows and columns: no field is the params. The
    state is the optimizer's, so the error asks for params=, not for another optimizer."""
    tx = oc.adafactor(1e-2, min_dim_size_to_factor=2)
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    optax_state = optax.adafactor(1e-2, min_dim_size_to_factor=2).init(params)
    for convert in (
        lambda: state_to_optax(tx, tx.init(params)),
        lambda: state_from_optax(tx, optax_state),
    ):
        with pytest.raises(StateConversionError, match="pass params=") as error:
            convert()
        assert "another optimizer" not in str(error.value)
    converted = state_to_optax(tx, tx.init(params), params=params)
    assert jax.tree.structure(converted) == jax.tree.structure(optax_state)


def test_state_for_other_params_names_both_structures() -> None:
    tx = oc.adam(0.1)
    state = tx.init(PARAMS)
    other = {"w": jnp.zeros(3)}
    with pytest.raises(StateConversionError) as error:
        state_to_optax(tx, state, params=other)
    message = str(error.value)
    assert "{'b': float64[2, 2], 'w': float64[3]}" in message and "{'w': float64[3]}" in message
    with pytest.raises(StateConversionError, match=r"built for params"):
        state_from_optax(tx, optax.adam(0.1).init(PARAMS), params=other)


def test_from_optax_refuses_a_state_of_another_optimizer() -> None:
    tx = oc.chain(oc.clip(1.0), from_optax(optax.adam(0.1)))
    state = (oc.EmptyState(), optax.sgd(0.1, momentum=0.9).init(PARAMS))
    with pytest.raises(StateMismatchError) as error:
        tx.update(GRADS, state, PARAMS)
    message = str(error.value)
    assert "from_optax(chain(scale_by_adam, scale))" in message
    assert "TraceState(trace)" in message and "ScaleByAdamState(count, mu, nu)" in message
    with pytest.raises(StateMismatchError, match="shape"):
        tx.update(GRADS, tx.init({"w": jnp.zeros(3), "b": jnp.zeros((2, 3))}), PARAMS)


def test_to_optax_refuses_a_state_of_another_optimizer() -> None:
    opt = to_optax(oc.adam(0.1))
    with pytest.raises(StateMismatchError, match="scale_by_adam") as error:
        opt.update(GRADS, optax.adam(0.1).init(PARAMS), PARAMS)
    # The two classes share a name: the message says whose each is, and the way out.
    message = str(error.value)
    assert "ScaleByAdamState of optref.core" in message
    assert "ScaleByAdamState of optax" in message and "state_from_optax" in message


class Doubling(oc.GradientTransformation):
    """A transformation that Optax does not have."""

    def init(self, params: PyTree) -> oc.EmptyState:
        return oc.EmptyState()

    def update(self, updates: PyTree, state: Any, params: Any = None, **extra: Any) -> Any:
        return jax.tree.map(lambda g: 2 * g, updates), state


class ScaleByAdamPlus(oc.ScaleByAdam):
    """``scale_by_adam`` with a field that Optax's ``scale_by_adam`` has no argument for."""

    amplitude: float = eqx.field(static=True, default=1.0)

    def update(self, updates: PyTree, state: Any, params: Any = None, **extra: Any) -> Any:
        updates, state = super().update(updates, state, params, **extra)
        return jax.tree.map(lambda u: self.amplitude * u, updates), state


def test_no_counterpart_names_the_transformation() -> None:
    tx = oc.chain(oc.clip(1.0), Doubling())
    assert not has_optax_counterpart(tx)
    with pytest.raises(NoCounterpartError) as error:
        state_to_optax(tx, tx.init(PARAMS))
    message = str(error.value)
    assert (
        "member 1" in message and "doubling" in message and "register_optax_counterpart" in message
    )
    # A subclass that changes update is not taken for its base.
    with pytest.raises(NoCounterpartError, match="scale_by_adam_plus"):
        optax_counterpart(ScaleByAdamPlus(amplitude=2.0))
    # Declared to be scale_by_adam, its extra field has no Optax argument...
    register_optax_counterpart(ScaleByAdamPlus, "optax.scale_by_adam")
    with pytest.raises(NoCounterpartError, match="amplitude"):
        optax_counterpart(ScaleByAdamPlus(amplitude=2.0))
    # ... but at its default it changes nothing: the counterpart is scale_by_adam.
    assert has_optax_counterpart(ScaleByAdamPlus())


class RenamedAdam(oc.ScaleByAdam):
    """A subclass that keeps ``init`` and ``update``: the same numbers as its base."""


def test_subclass_with_the_same_update_uses_the_base_counterpart() -> None:
    tx = RenamedAdam()
    state = tx.init(PARAMS)
    _, state = tx.update(GRADS, state, PARAMS)
    converted = state_to_optax(tx, state)
    assert isinstance(converted, optax.ScaleByAdamState) and int(converted.count) == 1


class CountOnlyState(eqx.Module):
    count: Int[Array, ""]
    mu: PyTree[Inexact[Array, "?*shape"], " P"] = oc.params_like()


class AdamWithoutNu(oc.GradientTransformation):
    """A made-up transformation whose state lacks Adam's ``nu``."""

    def init(self, params: PyTree) -> CountOnlyState:
        return CountOnlyState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

    def update(self, updates: PyTree, state: Any, params: Any = None, **extra: Any) -> Any:
        return updates, state


def test_leaf_missing_on_one_side_is_named() -> None:
    register_optax_counterpart(AdamWithoutNu, "optax.scale_by_adam")
    tx = oc.chain(oc.clip(1.0), AdamWithoutNu())
    with pytest.raises(StateConversionError) as error:
        state_to_optax(tx, tx.init(PARAMS))
    message = str(error.value)
    assert "adam_without_nu (at [1] in chain(clip, adam_without_nu))" in message
    assert "[1].nu" in message and "lacks" in message


def test_registered_counterpart_is_used() -> None:
    register_optax_counterpart(Doubling, builder=lambda tx: optax.scale(2.0))
    tx = oc.chain(oc.clip(1.0), Doubling())
    converted = state_to_optax(tx, tx.init(PARAMS), params=PARAMS)
    assert converted == (optax.EmptyState(), optax.EmptyState())


def test_wrong_arguments() -> None:
    with pytest.raises(TypeError, match="expected an optref GradientTransformation"):
        to_optax(3)
    with pytest.raises(TypeError, match="expected an Optax GradientTransformation"):
        from_optax(3)
    with pytest.raises(TypeError, match="tx must be an optref GradientTransformation"):
        state_to_optax(optax.adam(0.1), optax.adam(0.1).init(PARAMS))
