"""The shims inside the other library's machinery: Optax's wrappers around ``to_optax``,
optref's around ``from_optax``, extra arguments, jit, factories and round trips."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import pytest

import optref.core as oc
from optref.compat import FromOptax, from_optax, to_optax

PARAMS = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array([[0.3, -0.7], [1.1, 0.2]])}


def _loss(params: Any) -> jax.Array:
    return (
        jnp.sum((params["w"] - 0.5) ** 2)
        + jnp.sum(params["b"] ** 4)
        + jnp.sum(params["w"][:2] @ params["b"])
    )


_value_and_grad = jax.jit(jax.value_and_grad(_loss))


def _trajectory(tx: Any, steps: int = 4, extra: bool = False, compiled: bool = False) -> list[Any]:
    """Eager steps (``lax.cond`` in apply_if_finite runs its branch in Python), or with
    ``compiled`` one compiled update (Optax's MultiSteps is slow op by op)."""
    params, out = PARAMS, []
    with jax.disable_jit(not compiled):
        state = tx.init(PARAMS)
    update = jax.jit(tx.update) if compiled else tx.update
    for _ in range(steps):
        value, grads = _value_and_grad(params)
        kwargs = {"value": value, "grad": grads, "value_fn": _loss} if extra else {}
        with jax.disable_jit(not compiled):
            updates, state = update(grads, state, params, **kwargs)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return out


def _assert_close(got: list[Any], expected: list[Any], rtol: float = 1e-12) -> None:
    for g, e in zip(got, expected, strict=True):
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(e), strict=True):
            assert jnp.allclose(a, b, rtol=rtol, atol=rtol), (a, b)


def test_to_optax_is_a_gradient_transformation_extra_args() -> None:
    opt = to_optax(oc.adam(0.1))
    assert isinstance(opt, optax.GradientTransformationExtraArgs)
    state = opt.init(PARAMS)
    assert isinstance(state[0], oc.ScaleByAdamState)  # the optref transformation's own state


@pytest.mark.parametrize(
    ("ours", "theirs", "compiled"),
    [
        pytest.param(
            lambda: optax.MultiSteps(
                to_optax(oc.adam(0.1)), every_k_schedule=2
            ).gradient_transformation(),
            lambda: optax.MultiSteps(optax.adam(0.1), every_k_schedule=2).gradient_transformation(),
            True,
            id="MultiSteps",
        ),
        pytest.param(
            lambda: optax.apply_if_finite(to_optax(oc.sgd(0.05, momentum=0.9)), 2),
            lambda: optax.apply_if_finite(optax.sgd(0.05, momentum=0.9), 2),
            False,
            id="apply_if_finite",
        ),
        pytest.param(
            lambda: optax.masked(to_optax(oc.adam(0.1)), {"w": True, "b": False}),
            lambda: optax.masked(optax.adam(0.1), {"w": True, "b": False}),
            False,
            id="masked",
        ),
        pytest.param(
            lambda: optax.partition(
                {"a": to_optax(oc.adam(0.1)), "s": optax.sgd(0.05)}, {"w": "a", "b": "s"}
            ),
            lambda: optax.partition(
                {"a": optax.adam(0.1), "s": optax.sgd(0.05)}, {"w": "a", "b": "s"}
            ),
            False,
            id="partition",
        ),
        pytest.param(
            lambda: optax.inject_hyperparams(to_optax(oc.adam))(learning_rate=0.1, b1=0.8),
            lambda: optax.inject_hyperparams(optax.adam)(learning_rate=0.1, b1=0.8),
            False,
            id="inject_hyperparams",
        ),
        pytest.param(
            lambda: optax.named_chain(("clip", optax.clip(0.5)), ("opt", to_optax(oc.adamw(0.1)))),
            lambda: optax.named_chain(("clip", optax.clip(0.5)), ("opt", optax.adamw(0.1))),
            False,
            id="named_chain",
        ),
    ],
)
def test_to_optax_inside_optax_wrappers(ours: Any, theirs: Any, compiled: bool) -> None:
    _assert_close(_trajectory(ours(), compiled=compiled), _trajectory(theirs(), compiled=compiled))


def test_to_optax_in_injected_state_can_be_set_by_hand() -> None:
    ours = optax.inject_hyperparams(to_optax(oc.sgd))(learning_rate=0.1)
    theirs = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    results = []
    for tx in (ours, theirs):
        state = tx.init(PARAMS)
        grads = jax.grad(_loss)(PARAMS)
        _, state = tx.update(grads, state, PARAMS)
        state.hyperparams["learning_rate"] = jnp.asarray(0.01)
        updates, state = tx.update(grads, state, PARAMS)
        results.append(updates)
        assert optax.tree_utils.tree_get(state, "learning_rate") == 0.01
    _assert_close([results[0]], [results[1]])


def test_to_optax_forwards_extra_arguments() -> None:
    ours = optax.chain(
        optax.clip_by_global_norm(10.0), to_optax(oc.polyak_sgd(max_learning_rate=0.5))
    )
    theirs = optax.chain(optax.clip_by_global_norm(10.0), optax.polyak_sgd(max_learning_rate=0.5))
    _assert_close(_trajectory(ours, extra=True), _trajectory(theirs, extra=True))


def test_to_optax_under_jit_and_with_hyperparameters_as_leaves() -> None:
    expected = _trajectory(optax.adam(0.1), steps=2)

    @jax.jit
    def step(params: Any, state: Any) -> tuple[Any, Any]:
        grads = jax.grad(_loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    opt = to_optax(oc.adam(0.1))
    params, state, got = PARAMS, opt.init(PARAMS), []
    for _ in range(2):
        params, state = step(params, state)
        got.append(params)
    _assert_close(got, expected)


def test_tree_map_params_sees_the_params_shaped_fields() -> None:
    opt = to_optax(oc.adam(0.1))
    state = opt.init(PARAMS)
    specs = optax.tree_utils.tree_map_params(
        opt, lambda _: "P", state, transform_non_params=lambda _: "-"
    )
    assert specs[0].mu == {"w": "P", "b": "P"} and specs[0].count == "-"


def test_from_optax_in_optref_chain_and_masks() -> None:
    ours = oc.chain(oc.clip_by_global_norm(1.0), from_optax(optax.adam(0.1)))
    theirs = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
    _assert_close(_trajectory(ours), _trajectory(theirs))
    # Extra arguments reach an Optax transformation that takes them, and only those.
    ours = oc.chain(
        from_optax(optax.clip(1.0)), from_optax(optax.polyak_sgd(max_learning_rate=0.5))
    )
    theirs = optax.chain(optax.clip(1.0), optax.polyak_sgd(max_learning_rate=0.5))
    _assert_close(_trajectory(ours, extra=True), _trajectory(theirs, extra=True))


def test_from_optax_inside_optref_masking() -> None:
    masking = pytest.importorskip("optref.masking")
    ours = masking.partition(
        {"a": from_optax(optax.adam(0.1)), "s": oc.sgd(0.05)}, {"w": "a", "b": "s"}
    )
    theirs = optax.partition({"a": optax.adam(0.1), "s": optax.sgd(0.05)}, {"w": "a", "b": "s"})
    _assert_close(_trajectory(ours), _trajectory(theirs))
    ours = masking.masked(from_optax(optax.adam(0.1)), {"w": True, "b": False})
    theirs = optax.masked(optax.adam(0.1), {"w": True, "b": False})
    _assert_close(_trajectory(ours), _trajectory(theirs))


def test_factories_and_round_trips() -> None:
    tx = oc.adam(0.1)
    opt = optax.adam(0.1)
    assert from_optax(to_optax(tx)) is tx
    assert to_optax(from_optax(opt)) is opt
    wrapped = from_optax(optax.adam)(learning_rate=0.1)
    assert isinstance(wrapped, FromOptax) and wrapped.name == "chain(scale_by_adam, scale)"
    _assert_close(_trajectory(wrapped), _trajectory(opt))
    made = to_optax(oc.adam)(0.1)
    assert isinstance(made, optax.GradientTransformationExtraArgs)
    _assert_close(_trajectory(made), _trajectory(opt))
    with pytest.raises(TypeError, match="already an Optax transformation"):
        to_optax(opt)
    with pytest.raises(TypeError, match="already an optref transformation"):
        from_optax(tx)


def test_optref_injection_of_an_optax_factory() -> None:
    ours = oc.inject_hyperparams(from_optax(optax.adam))(learning_rate=0.1, b1=0.8)
    theirs = optax.inject_hyperparams(optax.adam)(learning_rate=0.1, b1=0.8)
    _assert_close(_trajectory(ours), _trajectory(theirs))


class _Halve(eqx.Module):
    """A transformation by the protocol alone (init and update), as
    ``optref.schedules.reduce_on_plateau`` is: not a ``GradientTransformation`` subclass."""

    def init(self, params: Any) -> tuple:
        return ()

    def update(self, updates: Any, state: Any, params: Any = None, **extra: Any) -> tuple:
        return jax.tree.map(lambda u: u / 2, updates), state


def test_a_module_that_follows_the_protocol_goes_to_optax() -> None:
    tx = optax.chain(optax.scale(3.0), to_optax(_Halve()))
    params = {"w": jnp.ones(2)}
    updates, _ = tx.update(params, tx.init(params), params)
    assert jnp.array_equal(updates["w"], jnp.full(2, 1.5))
