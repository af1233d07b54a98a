"""inject_hyperparams: bit-identical to the plain optimizers, schedules, values set by hand."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optref.core as oc

STEPS = 1000

# Every alias of optref.core, with the arguments it is run with. A name missing from
# optref.core fails the test: the list is the contract.
ALIASES: dict[str, dict] = {
    "adabelief": {"learning_rate": 1e-2},
    "adadelta": {"learning_rate": 0.5},
    "adafactor": {"learning_rate": 1e-2},
    "adagrad": {"learning_rate": 1e-2},
    "adam": {"learning_rate": 1e-2},
    "adamax": {"learning_rate": 1e-2},
    "adamaxw": {"learning_rate": 1e-2},
    "adamw": {"learning_rate": 1e-2, "weight_decay": 0.05},
    "adan": {"learning_rate": 1e-2},
    "amsgrad": {"learning_rate": 1e-2},
    "fromage": {"learning_rate": 1e-2},
    "lamb": {"learning_rate": 1e-2},
    "lars": {"learning_rate": 1e-2},
    "lion": {"learning_rate": 1e-3},
    "nadam": {"learning_rate": 1e-2},
    "nadamw": {"learning_rate": 1e-2},
    "noisy_sgd": {"learning_rate": 1e-2, "key": jax.random.PRNGKey(3)},
    "novograd": {"learning_rate": 1e-2},
    "optimistic_adam": {"learning_rate": 1e-2},
    "optimistic_adam_v2": {"learning_rate": 1e-2},
    "optimistic_gradient_descent": {"learning_rate": 1e-2},
    "polyak_sgd": {"max_learning_rate": 0.1},
    "radam": {"learning_rate": 1e-2},
    "rmsprop": {"learning_rate": 1e-2, "momentum": 0.9, "centered": True},
    "rprop": {"learning_rate": 1e-2},
    "sgd": {"learning_rate": 1e-2, "momentum": 0.9},
    "sign_sgd": {"learning_rate": 1e-2},
    "signum": {"learning_rate": 1e-2},
    "sm3": {"learning_rate": 1e-2},
    "yogi": {"learning_rate": 1e-2},
}
# Arguments that set shapes are not hyperparameters (as in Optax, name them static).
STATIC_ARGS: dict[str, tuple[str, ...]] = {"adafactor": ("min_dim_size_to_factor",)}
# Aliases whose update needs the loss value.
NEEDS_VALUE = {"polyak_sgd"}


def _params() -> dict:
    return {
        "w": jnp.linspace(-1.0, 1.0, 7, dtype=jnp.float32),
        "m": jnp.full((2, 3), 0.5, jnp.float32),
    }


def _loss(p: dict) -> jax.Array:
    return jnp.sum(jnp.cos(3 * p["w"]) * p["w"] ** 2) + jnp.sum(p["m"] ** 4 - p["m"])


def _loop_params() -> dict:
    """Params of 1 KiB per tree, above XLA:CPU's limit for compiling a loop whole.

    XLA:CPU compiles a ``while`` loop that accesses fewer bytes than its
    ``xla_cpu_small_while_loop_byte_threshold`` into one function, whose reductions can
    round differently from the kernels it otherwise emits; injection adds a few scalars to
    the loop, so on a tiny model the plain loop can be compiled one way and the injected
    one the other (docs/wrappers.md). The guarantee is for programs compiled alike.
    """
    return {
        "w": jnp.linspace(-1.0, 1.0, 250, dtype=jnp.float32),
        "m": jnp.full((2, 3), 0.5, jnp.float32),
    }


def _trajectory_pair(
    plain: oc.GradientTransformation,
    injected: oc.GradientTransformation,
    needs_value: bool,
    steps: int = STEPS,
) -> tuple:
    """Both optimizers along their own trajectories, in one jitted scan, each compiled
    into a sequence of kernels."""

    def run(tx, params):
        def step(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(_loss)(p)
            extra = {"value": value} if needs_value else {}
            u, s = tx.update(g, s, p, **extra)
            return (oc.apply_updates(p, u), s), u

        return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)

    @jax.jit
    def both(params):
        return run(plain, params), run(injected, params)

    params = _loop_params()
    compiled = both.lower(params).compile()
    entry = compiled.as_text().split("\nENTRY ")[1]
    assert entry.count(" while(") == 2, "a training loop was compiled into one function"
    return compiled(params)


@pytest.mark.filterwarnings("ignore:optimistic_adam is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name", sorted(ALIASES))
def test_injection_is_bit_identical(name: str) -> None:
    assert hasattr(oc, name), f"optref.core has no alias {name}"
    factory = getattr(oc, name)
    kwargs = ALIASES[name]
    injected = oc.inject_hyperparams(factory, static_args=STATIC_ARGS.get(name, ()))(**kwargs)
    ((_, _), u_plain), ((_, state), u_injected) = _trajectory_pair(
        factory(**kwargs), injected, name in NEEDS_VALUE
    )
    for a, b in zip(jax.tree.leaves(u_plain), jax.tree.leaves(u_injected), strict=True):
        assert a.dtype == b.dtype == jnp.float32
        assert np.isfinite(np.asarray(a)).all()
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert int(state.count) == STEPS


def test_state_layout_and_values() -> None:
    tx = oc.inject_hyperparams(oc.adam)(learning_rate=0.1, b1=0.8)
    state = tx.init(_params())
    assert isinstance(state, oc.InjectHyperparamsState)
    assert isinstance(state, oc.InjectStatefulHyperparamsState)
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps", "eps_root"}
    assert state.hyperparams_states == {}
    assert float(state.hyperparams["b1"]) == pytest.approx(0.8)
    assert state.hyperparams["learning_rate"].dtype == jnp.zeros((), float).dtype
    assert isinstance(state.inner_state[0], oc.ScaleByAdamState)
    assert int(state.count) == 0


def test_schedules_show_their_current_value() -> None:
    schedule = lambda count: 0.1 / (1.0 + count)  # noqa: E731
    b1_schedule = lambda count: 0.5 + 0.1 * jnp.minimum(count, 3)  # noqa: E731
    tx = oc.inject_hyperparams(oc.adam)(learning_rate=schedule, b1=b1_schedule)
    params = _params()
    state = tx.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)
    assert isinstance(state.hyperparams_states["learning_rate"], oc.WrappedScheduleState)
    step = jax.jit(lambda g, s, p: tx.update(g, s, p))
    for t in range(5):
        grads = jax.grad(_loss)(params)
        _, state = step(grads, state, params)
        # As in Optax, the state shows the values the step just taken used.
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1 / (1 + t))
        assert float(state.hyperparams["b1"]) == pytest.approx(0.5 + 0.1 * min(t, 3))
    assert int(state.count) == 5
    assert int(state.hyperparams_states["learning_rate"].count) == 5


def test_scheduled_adam_matches_plain_adam_with_that_schedule() -> None:
    schedule = lambda count: 0.05 / (1.0 + 0.1 * count)  # noqa: E731
    plain = oc.adam(schedule)
    injected = oc.inject_hyperparams(oc.adam)(learning_rate=schedule)
    (_, u_plain), (_, u_injected) = _trajectory_pair(plain, injected, False, steps=50)
    for a, b in zip(jax.tree.leaves(u_plain), jax.tree.leaves(u_injected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("setter", ["tree_at", "tree_set"])
def test_value_set_in_the_state_takes_effect_next_step(setter: str) -> None:
    tx = oc.inject_hyperparams(oc.sgd)(learning_rate=0.1)
    params = _params()
    grads = jax.grad(_loss)(params)
    state = tx.init(params)
    u1, state = tx.update(grads, state, params)
    new_rate = jnp.asarray(0.025, jnp.float32)
    if setter == "tree_at":
        state = eqx.tree_at(lambda s: s.hyperparams["learning_rate"], state, new_rate)
    else:
        state = oc.tree_set(state, learning_rate=new_rate)
    u2, state = jax.jit(lambda g, s, p: tx.update(g, s, p))(grads, state, params)
    np.testing.assert_allclose(np.asarray(u2["w"]), np.asarray(u1["w"]) / 4, rtol=1e-6)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.025)
    u3, _ = tx.update(grads, state, params)
    np.testing.assert_array_equal(np.asarray(u3["w"]), np.asarray(u2["w"]))


def test_a_scheduled_value_set_by_hand_is_overridden() -> None:
    tx = oc.inject_hyperparams(oc.sgd)(learning_rate=lambda c: 0.1 + 0.0 * c)
    params = _params()
    state = oc.tree_set(tx.init(params), learning_rate=jnp.asarray(5.0))
    _, state = tx.update(jax.grad(_loss)(params), state, params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1)


def test_hyperparam_dtype_and_static_args() -> None:
    tx = oc.inject_hyperparams(oc.adam, hyperparam_dtype=jnp.float16)(learning_rate=0.1)
    state = tx.init(_params())
    assert all(v.dtype == jnp.float16 for v in state.hyperparams.values())
    mask_fn = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    tx = oc.inject_hyperparams(oc.adamw, static_args="mask")(learning_rate=0.1, mask=mask_fn)
    state = tx.init(_params())
    assert "mask" not in state.hyperparams and "mask" not in state.hyperparams_states
    with pytest.raises(ValueError, match="static_args"):
        oc.inject_hyperparams(oc.adam, static_args=("nope",))


def test_dtypes_flags_and_none_are_not_hyperparameters() -> None:
    tx = oc.inject_hyperparams(oc.adam)(learning_rate=0.1, mu_dtype=jnp.bfloat16, nesterov=True)
    state = tx.init(_params())
    assert set(state.hyperparams) == {"learning_rate", "b1", "b2", "eps", "eps_root"}
    assert state.inner_state[0].mu["w"].dtype == jnp.bfloat16


def test_bad_hyperparameter_fails_when_built() -> None:
    with pytest.raises(oc.HyperparameterError, match="b1"):
        oc.inject_hyperparams(oc.adam)(learning_rate=0.1, b1=1.5)
    with pytest.raises(TypeError, match="adam"):
        oc.inject_hyperparams(oc.adam)(learning_rate=0.1, nonsense=3)


def test_gradient_reaches_an_injected_hyperparameter() -> None:
    tx = oc.inject_hyperparams(oc.sgd)(learning_rate=0.1)
    params = _params()
    state = tx.init(params)

    def loss_after_step(rate):
        s = eqx.tree_at(lambda s: s.hyperparams["learning_rate"], state, rate)
        u, _ = tx.update(jax.grad(_loss)(params), s, params)
        return _loss(oc.apply_updates(params, u))

    grad = jax.grad(loss_after_step)(jnp.asarray(0.1, jnp.float32))
    assert np.isfinite(float(grad)) and float(grad) != 0.0


def test_inject_stateful_hyperparams_and_a_stateful_schedule() -> None:
    class Halving(eqx.Module):
        def init(self):
            return jnp.asarray(1.0)

        def update(self, state, **extra):
            return state / 2

        def __call__(self, state, **extra):
            return 0.1 * state

    tx = oc.inject_stateful_hyperparams(oc.sgd)(learning_rate=Halving())
    params = _params()
    state = tx.init(params)
    grads = jax.grad(_loss)(params)
    for t in range(3):
        _, state = tx.update(grads, state, params)
        assert float(state.hyperparams["learning_rate"]) == pytest.approx(0.1 / 2**t)


def test_factories_with_args_and_kwargs() -> None:
    def adam_with_options(learning_rate, **options):
        return oc.adam(learning_rate, **options)

    tx = oc.inject_hyperparams(adam_with_options)(0.1, b1=0.8, nesterov=True)
    state = tx.init(_params())
    assert set(state.hyperparams) == {"learning_rate", "b1"}
    assert float(state.hyperparams["b1"]) == pytest.approx(0.8)
    chained = oc.inject_hyperparams(oc.chain)(oc.sgd(0.1), oc.identity())
    grads = jax.grad(_loss)(_params())
    updates, _ = chained.update(grads, chained.init(_params()))
    np.testing.assert_allclose(np.asarray(updates["w"]), -0.1 * np.asarray(grads["w"]), rtol=1e-6)


# --- The transformation as an argument of the jitted step -----------------------------

# As a user's jitted step (and the audit) takes it: the transformation is an argument of
# the program, so the hyperparameters it holds are the program's inputs, not constants
# that XLA folds and contracts into fused multiply-adds differently.
ARGUMENT_ALIASES: dict[str, dict] = {
    "adafactor": {"learning_rate": 0.05, "min_dim_size_to_factor": 2},
    "adam": {"learning_rate": 1e-2},
    "fromage": {"learning_rate": 1e-2},
    "sm3": {"learning_rate": 0.05},
}
_MLP_X = np.random.default_rng(0).normal(size=(16, 3))
_MLP_Y = np.sin(_MLP_X @ np.array([1.0, -2.0, 0.5]))[:, None]


def _mlp_params() -> dict:
    rng = np.random.default_rng(1)
    draw = lambda *shape: jnp.asarray(rng.normal(size=shape) / np.sqrt(shape[0]), jnp.float32)  # noqa: E731
    return {
        "hidden": {"w": draw(3, 8), "b": jnp.zeros(8, jnp.float32)},
        "head": {"w": draw(8, 1), "b": jnp.zeros(1, jnp.float32)},
    }


def _mlp_loss(p: dict) -> jax.Array:
    h = jnp.tanh(jnp.asarray(_MLP_X, jnp.float32) @ p["hidden"]["w"] + p["hidden"]["b"])
    out = h @ p["head"]["w"] + p["head"]["b"]
    return jnp.mean((out - jnp.asarray(_MLP_Y, jnp.float32)) ** 2)


@eqx.filter_jit
def _argument_step(tx, grads, state, params):
    updates, state = tx.update(grads, state, params)
    return updates, state, oc.apply_updates(params, updates)


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "x64"])
@pytest.mark.parametrize("name", sorted(ARGUMENT_ALIASES))
def test_injection_is_bit_identical_with_the_transformation_an_argument(
    name: str, x64: bool
) -> None:
    """Plain and injected float32 updates agree bit for bit when each transformation is an
    argument of the compiled step (with the default float64 hyperparameters too)."""
    with jax.enable_x64(x64):
        factory = getattr(oc, name)
        kwargs = ARGUMENT_ALIASES[name]
        static = STATIC_ARGS.get(name, ())
        forms = [factory(**kwargs), oc.inject_hyperparams(factory, static_args=static)(**kwargs)]
        gradient = jax.jit(jax.grad(_mlp_loss))
        runs = [[tx, tx.init(_mlp_params()), _mlp_params()] for tx in forms]
        for step in range(4):
            updates = []
            for run in runs:
                tx, state, params = run
                u, run[1], run[2] = _argument_step(tx, gradient(params), state, params)
                updates.append(u)
            for a, b in zip(*map(jax.tree.leaves, updates), strict=True):
                assert a.dtype == b.dtype == jnp.float32
                np.testing.assert_array_equal(
                    np.asarray(a), np.asarray(b), err_msg=f"{name}, step {step}"
                )
