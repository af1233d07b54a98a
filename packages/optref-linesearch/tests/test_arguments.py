"""The extra arguments of the line searches: clear errors, and value_fn's own arguments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.core import (
    HyperparameterError,
    TreeMismatchError,
    chain,
    identity,
    inject_hyperparams,
    sgd,
)
from optref.linesearch import (
    lbfgs,
    scale_by_backtracking_linesearch,
    scale_by_lbfgs,
    scale_by_zoom_linesearch,
    value_and_grad_from_state,
)

SEARCHES = {
    "scale_by_zoom_linesearch": lambda: scale_by_zoom_linesearch(5),
    "scale_by_backtracking_linesearch": lambda: scale_by_backtracking_linesearch(5),
}


def fit(params, x, y):
    return jnp.mean((x @ params - y) ** 2)


X, Y = jnp.ones((4, 2)), jnp.arange(4.0)
PARAMS = jnp.asarray([0.5, -0.5])


def arguments(**changes):
    value, grad = jax.value_and_grad(fit)(PARAMS, X, Y)
    extra = {"value": value, "grad": grad, "value_fn": fit, "x": X, "y": Y}
    extra.update(changes)
    return {k: v for k, v in extra.items() if v is not None}


@pytest.mark.parametrize("name", list(SEARCHES))
@pytest.mark.parametrize("missing", ["value", "grad", "value_fn"])
def test_missing_argument_is_named(name: str, missing: str) -> None:
    tx = SEARCHES[name]()
    extra = arguments()
    del extra[missing]
    with pytest.raises(TypeError, match=f"{name}: update needs the keyword argument {missing}"):
        tx.update(-PARAMS, tx.init(PARAMS), PARAMS, **extra)


@pytest.mark.parametrize("name", list(SEARCHES))
def test_bad_arguments_are_named(name: str) -> None:
    tx = SEARCHES[name]()
    state = tx.init(PARAMS)
    with pytest.raises(TypeError, match=f"{name}: update needs params"):
        tx.update(-PARAMS, state, **arguments())
    with pytest.raises(TypeError, match="value_fn does not accept: \\['batch'\\]"):
        tx.update(-PARAMS, state, PARAMS, **arguments(batch=1))
    with pytest.raises(TypeError, match="value_fn must be callable"):
        tx.update(-PARAMS, state, PARAMS, **arguments(value_fn=3.0))
    with pytest.raises(ValueError, match="value must be a real floating scalar"):
        tx.update(-PARAMS, state, PARAMS, **arguments(value=jnp.ones(2)))
    with pytest.raises(TreeMismatchError, match="grad"):
        tx.update(-PARAMS, state, PARAMS, **arguments(grad=jnp.ones(3)))


def test_lbfgs_without_value_fn_says_what_is_missing() -> None:
    tx = lbfgs()
    value, grad = jax.value_and_grad(fit)(PARAMS, X, Y)
    with pytest.raises(
        TypeError, match="scale_by_zoom_linesearch: update needs the keyword argument value_fn"
    ):  # raised when the update is traced
        jax.eval_shape(lambda: tx.update(grad, tx.init(PARAMS), PARAMS, value=value, grad=grad))


def test_data_arguments_reach_value_fn_through_the_chain() -> None:
    tx = lbfgs()

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(fit)(params, X, Y)
        updates, state = tx.update(
            grad, state, params, value=value, grad=grad, value_fn=fit, x=X, y=Y
        )
        return params + updates, state

    params, state = PARAMS, tx.init(PARAMS)
    for _ in range(3):
        params, state = step(params, state)
    assert float(fit(params, X, Y)) <= 1.25 + 1e-12  # the least-squares minimum is 1.25


def test_value_fn_with_var_keywords_takes_every_extra_argument() -> None:
    def loss(params, **data):
        return fit(params, data["x"], data["y"])

    tx = scale_by_zoom_linesearch(10)
    value, grad = jax.value_and_grad(fit)(PARAMS, X, Y)
    _, state = tx.update(
        -grad, tx.init(PARAMS), PARAMS, value=value, grad=grad, value_fn=loss, x=X, y=Y
    )
    assert float(state.value) < float(value)


def test_value_and_grad_from_state_reuses_the_search_s_evaluation() -> None:
    calls = []

    def loss(params):
        calls.append(1)  # traced once per jax transformation, counts compilations
        return jnp.sum((params - 1.0) ** 2)

    tx = lbfgs()
    value_and_grad = value_and_grad_from_state(loss)
    params, state = jnp.zeros(3), tx.init(jnp.zeros(3))
    value, grad = value_and_grad(params, state=state)  # first step: computed (value is inf)
    np.testing.assert_allclose(value, 3.0)
    updates, state = tx.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    params = params + updates
    value, grad = value_and_grad(params, state=state)
    assert value is state[2].value or float(value) == float(state[2].value)
    np.testing.assert_allclose(grad, jax.grad(loss)(params), rtol=1e-15)


def test_value_and_grad_from_state_needs_a_stored_gradient() -> None:
    tx = chain(sgd(1.0), scale_by_backtracking_linesearch(5))
    with pytest.raises(ValueError, match=r"holds no 'grad'.*store_grad=True"):
        value_and_grad_from_state(fit)(PARAMS, X, Y, state=tx.init(PARAMS))


def test_wrappers_change_no_bit(lib) -> None:
    """chain(identity(), .) and injected hyperparameters give the same bits."""
    zoom = inject_hyperparams(scale_by_zoom_linesearch, static_args="max_linesearch_steps")
    forms = [
        chain(sgd(1.0), scale_by_zoom_linesearch(10)),
        chain(identity(), sgd(1.0), scale_by_zoom_linesearch(10)),
        chain(sgd(1.0), zoom(max_linesearch_steps=10)),
    ]
    runs = [lib.run_solver(tx, lib.quadratic, lib.quadratic_init(), 4) for tx in forms]
    for run in runs[1:]:
        for a, b in zip(jax.tree.leaves(runs[0][0]), jax.tree.leaves(run[0]), strict=True):
            np.testing.assert_array_equal(a, b)


BAD_OUTPUTS = {
    "shape (1,)": (lambda p, x, y: fit(p, x, y).reshape(1), r"float64\[1\]"),
    "a tuple": (lambda p, x, y: (fit(p, x, y), 0.0), "tuple"),
    "an integer": (lambda p, x, y: jnp.sum(p > 0), r"int64\[\]"),
    "a complex number": (lambda p, x, y: fit(p, x, y) + 0j, r"complex128\[\]"),
}


@pytest.mark.parametrize("name", list(SEARCHES))
@pytest.mark.parametrize("output", list(BAD_OUTPUTS))
def test_value_fn_output_that_is_not_a_real_scalar_is_named(name: str, output: str) -> None:
    tx = SEARCHES[name]()
    value_fn, shown = BAD_OUTPUTS[output]
    extra = arguments(value_fn=value_fn)
    message = f"{name}: value_fn must return a real floating scalar.*{shown}"
    with pytest.raises(ValueError, match=message):
        tx.update(-PARAMS, tx.init(PARAMS), PARAMS, **extra)
    with pytest.raises(ValueError, match=message):  # also when traced
        jax.jit(lambda p, s: tx.update(-p, s, p, **extra))(PARAMS, tx.init(PARAMS))


def test_lbfgs_with_a_mis_shaped_objective_names_it() -> None:
    tx = lbfgs()
    value, grad = jax.value_and_grad(fit)(PARAMS, X, Y)
    with pytest.raises(ValueError, match=r"scale_by_zoom_linesearch: value_fn .*float64\[1\]"):
        tx.update(
            grad,
            tx.init(PARAMS),
            PARAMS,
            value=value,
            grad=grad,
            value_fn=lambda p, x, y: fit(p, x, y)[None],
            x=X,
            y=Y,
        )


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: scale_by_zoom_linesearch(3, slope_rtol=0.95, curv_rtol=0.9),
            r"scale_by_zoom_linesearch: slope_rtol must be smaller than curv_rtol.*0 < "
            r"slope_rtol < curv_rtol < 1.*slope_rtol=0.95, curv_rtol=0.9",
        ),
        (
            lambda: scale_by_zoom_linesearch(3, slope_rtol=0.5, curv_rtol=0.5),
            "slope_rtol must be smaller than curv_rtol",
        ),
        (lambda: scale_by_lbfgs(True), r"scale_by_lbfgs: memory_size must be .*got True"),
        (lambda: lbfgs(memory_size=False), r"scale_by_lbfgs: memory_size must be .*got False"),
        (
            lambda: scale_by_zoom_linesearch(True),
            r"scale_by_zoom_linesearch: max_linesearch_steps must be .*got True",
        ),
    ],
)
def test_inconsistent_or_boolean_hyperparameters_are_refused(build, message) -> None:
    with pytest.raises(HyperparameterError, match=message):
        build()


def test_strong_wolfe_constants_in_order_are_accepted() -> None:
    scale_by_zoom_linesearch(3, slope_rtol=0.1, curv_rtol=0.9)
    scale_by_zoom_linesearch(3, slope_rtol=0.1, curv_rtol=float("inf"))
    jax.jit(lambda c: scale_by_zoom_linesearch(3, slope_rtol=0.95, curv_rtol=c).curv_rtol)(0.9)
