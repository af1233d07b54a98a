"""Hyperparameters as data across packages: schedules with batched parameters
(optref-schedules) and per-group optimizers (optref-masking) in sweeps and hypergradients.

Each check: the sweep compiles once, its vmapped members equal their separate runs (to a
few ulps, as in optref-core's own tests), and d(loss after K steps)/d(hyperparameter)
equals central differences in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import optref.core as oc
import optref.masking as om
import optref.schedules as osch
from optref.core.conformance import central_difference

STEPS = 3
EPS = np.finfo(np.float64).eps
#: As in optref-core's sweep tests: XLA:CPU vectorises the batched elementwise loops
#: differently from the single run's, a few ulps of the leaf's largest magnitude.
SWEEP_ULPS = 8
#: As in optref-core's hypergradient tests: the agreement asked of the extrapolated central
#: difference beyond its truncation and rounding estimates.
FD_RTOL = 1e-6


def _params(offset: float = 0.0) -> dict:
    rng = np.random.default_rng(0)
    return {
        "encoder": {"w": jnp.asarray(rng.normal(size=(3, 4))) + offset, "b": jnp.zeros(4)},
        "head": {"w": jnp.asarray(rng.normal(size=(4,))) + offset, "b": jnp.zeros(())},
    }


def _loss(params: dict) -> jax.Array:
    leaves = jax.tree.leaves(params)
    return sum(jnp.sum(0.5 * (x - 1.0) ** 2 + 0.05 * x**4) for x in leaves)


def _train(tx: Any, params: dict) -> jax.Array:
    def step(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(_loss)(params), state, params)
        return (oc.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), length=STEPS)
    return _loss(params)


def _check(factory: Callable[..., Any], values: dict[str, list[float]]) -> None:
    """Sweep, separate runs, compilations and hypergradients of ``factory``."""
    size = len(next(iter(values.values())))
    members = [factory(**{k: v[i] for k, v in values.items()}) for i in range(size)]
    params = [_params(0.1 * i) for i in range(size)]
    traces: list[int] = []

    def counted(tx, params):
        traces.append(1)
        return _train(tx, params)

    single = eqx.filter_jit(counted)
    separate = [single(tx, p) for tx, p in zip(members, params, strict=True)]
    assert len(traces) == 1
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *params)
    batched = eqx.filter_jit(eqx.filter_vmap(_train))(oc.sweep(factory, **values), stacked)
    for i, loss in enumerate(separate):
        assert abs(float(batched[i] - loss)) <= SWEEP_ULPS * EPS * abs(float(loss)), i

    at = {k: jnp.asarray(v[0]) for k, v in values.items()}
    value_and_grad = jax.jit(jax.value_and_grad(lambda h: _train(factory(**h), params[0])))
    grads = value_and_grad(at)[1]
    for name, x in at.items():
        gradient = float(grads[name])
        difference = central_difference(lambda y, name=name: value_and_grad({**at, name: y})[0], x)
        assert np.isfinite(gradient) and gradient != 0, name
        assert difference.agrees(gradient, FD_RTOL), (name, gradient, difference.extrapolated)


def _grouped(peak_value, end_value, head_lr, weight_decay):
    """Adam on the encoder with a warmup-cosine learning rate, injected SGD on the head,
    and weight decay masked to the matrices."""
    labels = {"encoder": {"w": "enc", "b": "enc"}, "head": {"w": "head", "b": "head"}}
    mask = {"encoder": {"w": True, "b": False}, "head": {"w": True, "b": False}}
    schedule = osch.warmup_cosine_decay_schedule(0.0, peak_value, 1, 6, end_value=end_value)
    return oc.chain(
        om.masked(oc.add_decayed_weights(weight_decay), mask),
        om.partition(
            {
                "enc": oc.adam(schedule),
                "head": oc.inject_hyperparams(oc.sgd)(learning_rate=head_lr, momentum=0.9),
            },
            labels,
        ),
    )


def test_sweep_over_schedule_parameters_through_masked_and_partition():
    """chain(masked(add_decayed_weights), partition(adam with a batched warmup-cosine
    schedule, injected sgd)): schedule parameters, an injected learning rate and a masked
    weight decay, batched together."""
    values = {
        "peak_value": [0.05, 0.1, 0.2],
        "end_value": [1e-3, 5e-3, 1e-2],
        "head_lr": [0.05, 0.1, 0.2],
        "weight_decay": [0.01, 0.05, 0.1],
    }
    _check(_grouped, values)
