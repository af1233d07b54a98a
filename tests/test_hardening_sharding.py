"""Sharding: with 8 simulated CPU devices, state follows the params' sharding.

``jax.jit(tx.init)(params)``, with no ``out_shardings``, must give every params-shaped
state leaf the sharding of its param; the jitted update must keep it; and the results
must equal the single-device run. Each check runs in a subprocess, because the device
count is fixed when JAX starts (``XLA_FLAGS=--xla_force_host_platform_device_count=8``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping

import pytest

from optref.core.conformance import CASES

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from optref.audit import build
    from optref.core.conformance import CASES

    assert len(jax.devices()) == 8
    mesh = Mesh(np.array(jax.devices()), ("x",))
    rows = NamedSharding(mesh, P("x"))
    params = {
        "w": jnp.linspace(0.5, 1.5, 32, dtype=jnp.float32).reshape(8, 4),
        "b": jnp.linspace(-1.0, 1.0, 8, dtype=jnp.float32),
    }
    sharded = jax.device_put(params, rows)

    def loss(p):
        return sum(0.5 * jnp.sum(x**2) for x in jax.tree.leaves(p))

    def step(tx, params, state):
        grads = jax.grad(loss)(params)
        extra = {"value": loss(params), "grad": grads, "value_fn": loss}
        return tx.update(grads, state, params, **extra)

    def unsharded_leaves(tree):
        return [x for x in jax.tree.leaves(tree) if x.ndim and not x.sharding.is_fully_replicated]

    report = {}
    for name in sys.argv[1:]:
        case = next((c for c in CASES if c.name == name), None)
        if name == "optax.adam":
            import optax
            tx = optax.adam(1e-2)
        else:
            tx = build(case, "optref")
        state = jax.jit(tx.init)(sharded)
        follows, total, others = 0, 0, {}
        for path, leaf in jax.tree_util.tree_leaves_with_path(state):
            shape = getattr(leaf, "shape", None)
            if shape in ((8, 4), (8,)):
                total += 1
                follows += leaf.sharding.is_equivalent_to(rows, leaf.ndim)
            elif shape:
                replicated = (
                    leaf.sharding.is_fully_replicated and len(leaf.sharding.device_set) == 8
                )
                others[jax.tree_util.keystr(path)] = "replicated" if replicated else str(
                    leaf.sharding
                )
        updates, new_state = jax.jit(lambda s, p: step(tx, p, s))(state, sharded)
        kept = all(
            u.sharding.is_equivalent_to(rows, u.ndim) for u in jax.tree.leaves(updates)
        )
        for path, leaf in jax.tree_util.tree_leaves_with_path(new_state):
            if getattr(leaf, "shape", None) in ((8, 4), (8,)):
                kept = kept and leaf.sharding.is_equivalent_to(rows, leaf.ndim)
        single = jax.device_put(params, jax.devices()[0])
        reference, _ = jax.jit(lambda s, p: step(tx, p, s))(tx.init(single), single)
        difference = max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / (np.abs(np.asarray(b)) + 1e-30)))
            for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(reference))
        )
        report[name] = {
            "follows": follows,
            "total": total,
            "others": others,
            "kept": bool(kept),
            "relative": difference,
        }
    print(json.dumps(report))
    """
)


def _run(names: list[str]) -> dict:
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    env.pop("JAX_ENABLE_X64", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# Their state holds reductions of the params: SM3's accumulator per axis, the row and
# column factors of the factored second moment (min_dim_size_to_factor=2 factors w[8, 4]
# into a factor of shape (8,), the mean over w's columns, and one of shape (4,), the mean
# over its rows), and one-element placeholders where a leaf is not factored. A reduction
# is laid out as a reduction of its param is: the (8,) statistics keep w's sharded axis
# and are sharded along it (counted with the params-shaped leaves); the (4,) statistics
# sum over the sharded axis, so they are replicated on all 8 devices, never put on one,
# and so are the placeholders, which hold nothing.
REDUCED_STATE = {
    "core.scale_by_sm3",
    "core.scale_by_sm3-b2",
    "core.sm3",
    "core.scale_by_factored_rms",
    "core.scale_by_factored_rms-default_decay",
    "core.adafactor",
    "core.adafactor-momentum",
}


def _check(report: dict) -> None:
    for name, row in report.items():
        assert row["follows"] == row["total"], f"{name}: {row}"
        if name in REDUCED_STATE:
            assert row["others"], f"{name}: no reduced statistics in the state: {row}"
            assert set(row["others"].values()) == {"replicated"}, f"{name}: {row}"
        assert row["kept"], f"{name}: the jitted update lost the sharding: {row}"
        # Reductions (norms) are summed in another order across 8 devices.
        assert row["relative"] <= 1e-6, f"{name}: differs from the single-device run: {row}"


# Every case but those whose arguments (a mask, a label tree) fix another params tree.
TRANSFORMATIONS = [
    case.name
    for case in CASES
    if case.kind == "transformation"
    and not any(isinstance(v, Mapping) for v in case.kwargs.values())
]


def test_state_follows_the_params_sharding() -> None:
    """Adam, noisy SGD, SM3 and Adafactor follow the sharding (SM3's and Adafactor's
    reduced statistics as their reductions do); Optax's Adam, run alongside as the
    measurement the fix is judged by, puts its moments on one device."""
    report = _run(
        ["core.adam", "core.noisy_sgd", "core.scale_by_sm3", "core.adafactor", "optax.adam"]
    )
    optax_adam = report.pop("optax.adam")
    assert optax_adam["total"] == 4 and optax_adam["follows"] == 0
    _check(report)


@pytest.mark.slow
def test_state_follows_the_params_sharding_for_every_transformation() -> None:
    report = _run(TRANSFORMATIONS)
    print(json.dumps(report, indent=1))  # the measurement docs/hardening.md quotes (-s)
    _check(report)
