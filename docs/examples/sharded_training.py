"""Data-parallel plus parameter-sharded (FSDP-style) training with optref, on 8 devices.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 \\
        python docs/examples/sharded_training.py [--steps 100]

The 8 devices form a mesh of shape (2, 4) with axes ``("data", "fsdp")``. Each batch is
split over all 8 devices (data parallelism); each weight matrix is split along its first
axis over the 4 ``"fsdp"`` devices and replicated over ``"data"`` (fully sharded data
parallelism, as in ZeRO-3), and so are Adam's moments: the optimizer state is sharded like
the params, leaf by leaf. JAX's compiler inserts the collectives (all-gathers of the
weights, reduce-scatters of the gradients). The same training function then runs on one
device, and the script checks that both runs give the same params and losses.

Without the flag, JAX on a CPU has one device and the script says so. On several hosts,
call ``jax.distributed.initialize()`` first on every host: ``jax.devices()`` then lists
every host's devices, the same mesh spans them, and ``batch_to_devices`` builds each
global batch from the rows this host holds (``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from sklearn.datasets import load_digits

import optref.core as opt

Params = dict[str, jax.Array]


def init_mlp(
    rng: np.random.Generator, dtype: Any, sizes: tuple[int, ...] = (64, 256, 256, 10)
) -> Params:
    """A tanh MLP, LeCun-initialised: ``w{i}`` of shape (fan_in, fan_out), ``b{i}`` zero."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        params[f"w{i}"] = jnp.asarray(rng.normal(size=(fan_in, fan_out)) / np.sqrt(fan_in), dtype)
        params[f"b{i}"] = jnp.zeros(fan_out, dtype)
    return params


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    layers = len(params) // 2
    for i in range(layers):
        x = x @ params[f"w{i}"] + params[f"b{i}"]
        if i < layers - 1:
            x = jnp.tanh(x)
    log_probs = jax.nn.log_softmax(x)
    return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))


def param_shardings(params: Params, mesh: Mesh) -> dict[str, NamedSharding]:
    """Shard each leaf's first axis over ``"fsdp"`` when it divides evenly; else replicate."""
    fsdp = mesh.shape["fsdp"]

    def spec(leaf: jax.Array) -> NamedSharding:
        if leaf.ndim and leaf.shape[0] % fsdp == 0:
            return NamedSharding(mesh, PartitionSpec("fsdp"))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(spec, params)


def state_shardings(state: Any, params: Params, shardings: dict[str, NamedSharding], mesh: Mesh):
    """The optimizer state's shardings: every subtree with the params' structure (Adam's
    ``mu`` and ``nu``, ...) is sharded like the params; every other leaf (step counts,
    hyperparameters) is replicated."""
    structure = jax.tree.structure(params)
    replicated = NamedSharding(mesh, PartitionSpec())

    def like_params(node: Any) -> bool:
        return isinstance(node, dict) and jax.tree.structure(node) == structure

    return jax.tree.map(
        lambda node: shardings if like_params(node) else replicated,
        state,
        is_leaf=like_params,
    )


def batch_to_devices(x: np.ndarray, y: np.ndarray, mesh: Mesh) -> tuple[jax.Array, jax.Array]:
    """A global batch split over every device of the mesh, from this process's rows."""
    sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
    return (
        jax.make_array_from_process_local_data(sharding, x),
        jax.make_array_from_process_local_data(sharding, y),
    )


def train(
    mesh: Mesh, steps: int, batch_size: int, dtype: Any = jnp.float32, seed: int = 0
) -> dict[str, Any]:
    """Trains the MLP with ``optref.core.adamw`` on ``mesh``; returns params and losses."""
    data = load_digits()
    x_all = (data.data / 16.0).astype(dtype)
    y_all = data.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    optimizer = opt.adamw(1e-3, weight_decay=1e-4)

    params = init_mlp(rng, dtype)
    p_shardings = param_shardings(params, mesh)
    params = jax.device_put(params, p_shardings)
    abstract_state = jax.eval_shape(optimizer.init, params)
    s_shardings = state_shardings(abstract_state, params, p_shardings, mesh)
    state = jax.jit(optimizer.init, out_shardings=s_shardings)(params)
    replicated = NamedSharding(mesh, PartitionSpec())

    @jax.jit
    def step(params, state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = optimizer.update(grads, state, params)
        params = opt.apply_updates(params, updates)
        params = jax.lax.with_sharding_constraint(params, p_shardings)
        state = jax.lax.with_sharding_constraint(state, s_shardings)
        return params, state, jax.lax.with_sharding_constraint(loss, replicated)

    losses = []
    for _ in range(steps):
        index = rng.choice(len(x_all), batch_size, replace=False)
        x, y = batch_to_devices(x_all[index], y_all[index], mesh)
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
    return {"params": params, "state": state, "losses": losses, "state_shardings": s_shardings}


def make_mesh(devices: list[jax.Device], data: int, fsdp: int) -> Mesh:
    return Mesh(np.array(devices).reshape(data, fsdp), ("data", "fsdp"))


def main(steps: int = 100, batch_size: int = 256, dtype: Any = jnp.float32) -> dict[str, Any]:
    """Trains on the (2, 4) mesh and on one device; returns both runs' largest
    differences, and how the params and Adam's moments are laid out.

    The two runs sum each batch's gradient in a different order, so they differ by
    rounding, which Adam amplifies where a gradient coordinate is rounding noise (its
    step is about ``lr * sign(g)`` whatever the size of ``g``). In float64 (with
    ``jax_enable_x64``) the difference is far below any training effect; in float32 it is
    a few 1e-5 of the params' RMS."""
    devices = jax.devices()
    if len(devices) < 8:
        raise RuntimeError(
            f"this example needs 8 devices and JAX sees {len(devices)}: run it with "
            "XLA_FLAGS=--xla_force_host_platform_device_count=8 (set before JAX starts)"
        )
    sharded = train(make_mesh(devices[:8], 2, 4), steps, batch_size, dtype)
    single = train(make_mesh(devices[:1], 1, 1), steps, batch_size, dtype)

    adam_state = sharded["state"][0]
    layout = {
        name: {
            "shape": tuple(leaf.shape),
            "param_shard": tuple(leaf.sharding.shard_shape(leaf.shape)),
            "mu_shard": tuple(adam_state.mu[name].sharding.shard_shape(leaf.shape)),
            "nu_shard": tuple(adam_state.nu[name].sharding.shard_shape(leaf.shape)),
            "mu_sharding_is_params": adam_state.mu[name].sharding.is_equivalent_to(
                leaf.sharding, leaf.ndim
            ),
            "nu_sharding_is_params": adam_state.nu[name].sharding.is_equivalent_to(
                leaf.sharding, leaf.ndim
            ),
        }
        for name, leaf in sharded["params"].items()
    }

    def relative(a: jax.Array, b: jax.Array) -> float:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return float(np.max(np.abs(a - b)) / np.sqrt(np.mean(b**2)))

    params_difference = max(
        relative(sharded["params"][k], single["params"][k]) for k in single["params"]
    )
    loss_difference = float(
        np.max(np.abs(np.array(sharded["losses"]) - np.array(single["losses"])))
    )
    return {
        "devices": len(devices),
        "dtype": jnp.dtype(dtype).name,
        "layout": layout,
        "losses": sharded["losses"],
        "single_device_losses": single["losses"],
        "max_param_difference": params_difference,
        "max_loss_difference": loss_difference,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--float64", action="store_true", help="train in float64")
    args = parser.parse_args()
    if args.float64:
        jax.config.update("jax_enable_x64", True)
    out = main(args.steps, args.batch_size, jnp.float64 if args.float64 else jnp.float32)
    print(f"{out['devices']} devices, mesh (data=2, fsdp=4), {out['dtype']}")
    print(f"{'leaf':6} {'shape':12} {'param shard':12} {'mu shard':12} {'nu shard':12} like params")
    for name, row in out["layout"].items():
        like = row["mu_sharding_is_params"] and row["nu_sharding_is_params"]
        print(
            f"{name:6} {row['shape']!s:12} {row['param_shard']!s:12} "
            f"{row['mu_shard']!s:12} {row['nu_shard']!s:12} {like}"
        )
    print(f"loss: {out['losses'][0]:.4f} -> {out['losses'][-1]:.4f} over {args.steps} steps")
    print(
        f"largest difference from the single-device run: params {out['max_param_difference']:.2e}"
        f" (of their RMS), loss {out['max_loss_difference']:.2e}"
    )
