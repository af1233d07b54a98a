"""Benchmark: optref's jitted optimizer step against Optax's, side by side in one process.

For each model (a tree of params) and optimizer, the step ``(params, state, grads) ->
(params, state)`` (the update, then ``apply_updates``) is compiled with the params and
the state donated, and timed for both libraries in alternating rounds, so that a change
in the machine's load hits both alike. Reported: compile time (trace, lowering and XLA
compilation; the process's CPU time, which other work on a shared machine inflates less
than the wall time, and the wall time), step time (median and minimum over every timed
step, after warm-up), XLA's peak memory for the compiled step, and for the one-leaf model
the effective bandwidth (the bytes the step must read and write over the step time)
against the machine's measured copy bandwidth. Ratios are Optax's time over optref's:
above 1, optref is faster.

    python docs/examples/bench.py            # the full suite; rewrites docs/benchmarks.md
    python docs/examples/bench.py --quick    # small models, a short smoke run, no files

``nox -s bench`` runs the full suite. Every backend JAX has (CPU, and a GPU when there is
one) gets its own table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import optref.core as oc
import optref.linesearch as ols

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


class Block(eqx.Module):
    """A pre-norm transformer block: self-attention and an MLP, each with a residual."""

    norm1: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    up: eqx.nn.Linear
    down: eqx.nn.Linear

    def __init__(self, width: int, heads: int, key: jax.Array) -> None:
        k1, k2, k3 = jax.random.split(key, 3)
        self.norm1, self.norm2 = eqx.nn.LayerNorm(width), eqx.nn.LayerNorm(width)
        self.attention = eqx.nn.MultiheadAttention(heads, width, key=k1)
        self.up = eqx.nn.Linear(width, 4 * width, key=k2)
        self.down = eqx.nn.Linear(4 * width, width, key=k3)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = jax.vmap(self.norm1)(x)
        x = x + self.attention(h, h, h)
        h = jax.vmap(self.norm2)(x)
        return x + jax.vmap(self.down)(jax.nn.gelu(jax.vmap(self.up)(h)))


class Transformer(eqx.Module):
    """A small decoder-style language model: embedding, blocks, a final norm and head."""

    embedding: eqx.nn.Embedding
    blocks: list[Block]
    norm: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, vocab: int, width: int, depth: int, heads: int, key: jax.Array) -> None:
        keys = jax.random.split(key, depth + 2)
        self.embedding = eqx.nn.Embedding(vocab, width, key=keys[0])
        self.blocks = [Block(width, heads, k) for k in keys[1:-1]]
        self.norm = eqx.nn.LayerNorm(width)
        self.head = eqx.nn.Linear(width, vocab, key=keys[-1])

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = jax.vmap(self.embedding)(tokens)
        for block in self.blocks:
            x = block(x)
        return jax.vmap(self.head)(jax.vmap(self.norm)(x))


def _leaves_model(count: int, shape: tuple[int, ...]) -> Callable[[jax.Array], Any]:
    def build(key: jax.Array) -> Any:
        keys = jax.random.split(key, count)
        return {
            f"p{i:04d}": 0.1 * jax.random.normal(k, shape, jnp.float32) for i, k in enumerate(keys)
        }

    return build


def _transformer_model(vocab: int, width: int, depth: int) -> Callable[[jax.Array], Any]:
    def build(key: jax.Array) -> Any:
        model = Transformer(vocab, width, depth, heads=4, key=key)
        return eqx.filter(model, eqx.is_inexact_array)

    return build


def _stacked_transformer_model(vocab: int, width: int, depth: int) -> Callable[[jax.Array], Any]:
    """The transformer's params with its blocks' arrays stacked along a leading axis, as a
    model that scans over its layers keeps them: 17 leaves instead of 149."""

    def build(key: jax.Array) -> Any:
        params = _transformer_model(vocab, width, depth)(key)
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *params.blocks)
        return eqx.tree_at(lambda m: m.blocks, params, [stacked])

    return build


def _transformer_grads(vocab: int, width: int, depth: int) -> Callable[[jax.Array, Any], Any]:
    """Real gradients: of the next-token loss of the model on a random sequence."""

    def grads(key: jax.Array, params: Any) -> Any:
        model = Transformer(vocab, width, depth, heads=4, key=jax.random.key(0))
        model = eqx.combine(params, eqx.filter(model, eqx.is_inexact_array, inverse=True))
        tokens = jax.random.randint(key, (65,), 0, vocab)

        def loss(m: Transformer) -> jax.Array:
            logits = m(tokens[:-1])
            return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, tokens[1:]))

        return eqx.filter(eqx.filter_grad(loss)(model), eqx.is_inexact_array)

    return grads


def _random_grads(key: jax.Array, params: Any) -> Any:
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
    )


@dataclasses.dataclass(frozen=True)
class Model:
    name: str
    params: Callable[[jax.Array], Any]
    grads: Callable[[jax.Array, Any], Any] = _random_grads
    single_leaf: bool = False


FULL_MODELS = [
    Model("1 leaf, 10M", _leaves_model(1, (2500, 4000)), single_leaf=True),
    Model("100 leaves, 10M", _leaves_model(100, (250, 400))),
    Model("1000 leaves, 1M", _leaves_model(1000, (25, 40))),
    Model("1000 leaves, 10k", _leaves_model(1000, (10,))),
    Model(
        "transformer, 12x256", _transformer_model(1024, 256, 12), _transformer_grads(1024, 256, 12)
    ),
    Model("transformer, 12x256, stacked", _stacked_transformer_model(1024, 256, 12)),
]
QUICK_MODELS = [
    Model("1 leaf, 1M", _leaves_model(1, (1000, 1000)), single_leaf=True),
    Model("30 leaves, 3k", _leaves_model(30, (10, 10))),
    Model("transformer, 2x64", _transformer_model(256, 64, 2), _transformer_grads(256, 64, 2)),
]


def _objective(params: Any) -> jax.Array:
    """A smooth convex objective for L-BFGS, flat at its minimum (so runs do not stop)."""
    terms = [jnp.sum(0.5 * p**2 + jnp.cos(p)) for p in jax.tree.leaves(params)]
    return sum(terms[1:], terms[0])


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """A pair of factories; ``line_search`` steps minimise :func:`_objective` instead."""

    optref: Callable[[], Any]
    optax: Callable[[], Any]
    line_search: bool = False
    fuses: bool = True  # whether its chain has consecutive leafwise members to fuse
    max_leaves: int | None = None  # larger models are left out unless named in --models
    rounds: int | None = None  # fewer timing rounds for slow steps


OPTIMIZERS = {
    "adamw": Optimizer(lambda: oc.adamw(1e-3), lambda: optax.adamw(1e-3)),
    "sgd(momentum)": Optimizer(lambda: oc.sgd(1e-2, 0.9), lambda: optax.sgd(1e-2, 0.9)),
    "lion": Optimizer(lambda: oc.lion(1e-4), lambda: optax.lion(1e-4)),
    "adafactor": Optimizer(lambda: oc.adafactor(1e-3), lambda: optax.adafactor(1e-3)),
    # Both libraries' flatten: the leaves concatenated into one vector for adamw, and its
    # updates split back into the leaves.
    "flatten(adamw)": Optimizer(
        lambda: oc.flatten(oc.adamw(1e-3)), lambda: optax.flatten(optax.adamw(1e-3))
    ),
    # A zoom line search per step: about half a second a step on 10M params, and Optax's
    # compile grows with the square of the leaves (minutes for a thousand), so by default
    # it runs on the models with at most 200 leaves.
    "lbfgs": Optimizer(
        ols.lbfgs, optax.lbfgs, line_search=True, fuses=False, max_leaves=200, rounds=2
    ),
}


def _unfused(tx: Any) -> Any:
    """``tx`` with every chain applying its members one at a time (``fuse=False``)."""

    def rebuild(x: Any) -> Any:
        if isinstance(x, oc.Chain):
            return oc.Chain(tuple(_unfused(t) for t in x.transformations), fuse=False)
        return x

    return jax.tree.map(rebuild, tx, is_leaf=lambda x: isinstance(x, oc.Chain))


def _step_function(optimizer: Any, line_search: bool) -> Callable[..., Any]:
    if line_search:

        def search_step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
            del grads
            value, grad = jax.value_and_grad(_objective)(params)
            updates, state = optimizer.update(
                grad, state, params, value=value, grad=grad, value_fn=_objective
            )
            return optax.apply_updates(params, updates), state

        return search_step

    def step(params: Any, state: Any, grads: Any) -> tuple[Any, Any]:
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


@dataclasses.dataclass
class Timing:
    compile_s: list[float] = dataclasses.field(default_factory=list)  # CPU time
    compile_wall_s: list[float] = dataclasses.field(default_factory=list)
    staging_s: list[float] = dataclasses.field(default_factory=list)  # CPU: trace and lower
    steps_s: list[float] = dataclasses.field(default_factory=list)
    peak_bytes: int = 0
    traffic_bytes: int = 0
    kernels: int = 0


def _copy(tree: Any) -> Any:
    return jax.tree.map(jnp.copy, tree)


def _compile(fn: Callable[..., Any], *args: Any, donate: bool) -> tuple[Any, float, float, float]:
    """The compiled step; the CPU time and the wall time that tracing, lowering and XLA's
    compilation took; and the CPU time of tracing and lowering alone (JAX's share)."""
    cpu, wall = time.process_time(), time.perf_counter()
    lowered = jax.jit(fn, donate_argnums=(0, 1) if donate else ()).lower(*args)
    staging = time.process_time() - cpu
    compiled = lowered.compile()
    return compiled, time.process_time() - cpu, time.perf_counter() - wall, staging


def _kernels(compiled: Any) -> int:
    """The number of fused loops (kernels) in the compiled step's entry computation."""
    return len(re.findall(r"^\s*\S+ = \S+ fusion\(", compiled.as_text(), re.MULTILINE))


def _memory(compiled: Any) -> tuple[int, int]:
    """(peak bytes, bytes read and written): from XLA's analysis of the compiled step."""
    stats = compiled.memory_analysis()
    traffic = stats.argument_size_in_bytes + stats.output_size_in_bytes
    peak = getattr(stats, "peak_memory_in_bytes", 0) or (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        - stats.alias_size_in_bytes
        + stats.temp_size_in_bytes
    )
    return int(peak), int(traffic)


def bench_pair(
    model: Model,
    optimizer: Optimizer,
    device: Any,
    *,
    rounds: int,
    steps: int,
    compiles: int,
    unfused: bool,
) -> dict[str, Timing]:
    """Compile and time one optimizer on one model, optref and Optax interleaved (and
    optref with its chains unfused, with ``unfused``)."""
    line_search = optimizer.line_search
    with jax.default_device(device):
        params = jax.device_put(model.params(jax.random.key(0)), device)
        grads = jax.device_put(model.grads(jax.random.key(1), params), device)
        libraries = {"optref": optimizer.optref(), "optax": optimizer.optax()}
        if unfused and optimizer.fuses:
            libraries["optref unfused"] = _unfused(libraries["optref"])
        timings = {name: Timing() for name in libraries}
        runs: dict[str, list[Any]] = {}
        for repeat in range(compiles):
            for name, tx in libraries.items():
                state = tx.init(params)
                # An L-BFGS state holds one array in two places (the last gradient is also
                # a history entry), which cannot be donated twice: its step donates nothing.
                step = _step_function(tx, line_search)
                compiled, cpu, wall, staging = _compile(
                    step, params, state, grads, donate=not line_search
                )
                timings[name].compile_s.append(cpu)
                timings[name].compile_wall_s.append(wall)
                timings[name].staging_s.append(staging)
                # Progress, for the long compiles (L-BFGS on many leaves).
                print(f"  {name}: compiled in {cpu:.2f} s of CPU", flush=True)
                if repeat == 0:
                    timings[name].peak_bytes, timings[name].traffic_bytes = _memory(compiled)
                    timings[name].kernels = _kernels(compiled)
                    runs[name] = [compiled, _copy(params), state]
        for name, (compiled, p, s) in runs.items():  # warm-up
            for _ in range(3):
                p, s = compiled(p, s, grads)
            jax.block_until_ready((p, s))
            runs[name][1:] = [p, s]
        for round_index in range(optimizer.rounds or rounds):
            order = list(runs) if round_index % 2 == 0 else list(reversed(runs))
            for name in order:
                compiled, p, s = runs[name]
                for _ in range(steps):
                    start = time.perf_counter()
                    p, s = compiled(p, s, grads)
                    jax.block_until_ready((p, s))
                    timings[name].steps_s.append(time.perf_counter() - start)
                runs[name][1:] = [p, s]
    return timings


def _floor_step(params: Any, moments: tuple[Any, ...], grads: Any) -> tuple[Any, tuple[Any, ...]]:
    """``(params + grads, (m + grads for each moment tree m))``: one addition per output."""
    return optax.apply_updates(params, grads), tuple(
        jax.tree.map(jnp.add, m, grads) for m in moments
    )


def bench_floor(model: Model, device: Any, *, moments: int, rounds: int, steps: int) -> Timing:
    """A step with no optimizer that writes the new params and ``moments`` trees with the
    params' structure, each output one addition of the gradient (params and moments
    donated): what any optimizer whose state holds that many such trees costs at least on
    this model, the per-leaf overhead of the jitted call and of its kernels included.
    ``moments=0`` is ``apply_updates(params, grads)`` alone; ``moments=2`` has Adam's
    buffers (``mu`` and ``nu``)."""
    with jax.default_device(device):
        params = jax.device_put(model.params(jax.random.key(0)), device)
        grads = jax.device_put(model.grads(jax.random.key(1), params), device)
        state = tuple(_copy(params) for _ in range(moments))
        compiled, cpu, wall, staging = _compile(_floor_step, params, state, grads, donate=True)
        timing = Timing([cpu], [wall], [staging], kernels=_kernels(compiled))
        p, s = compiled(_copy(params), state, grads)
        for _ in range(rounds * steps):
            start = time.perf_counter()
            p, s = jax.block_until_ready(compiled(p, s, grads))
            timing.steps_s.append(time.perf_counter() - start)
    return timing


def copy_bandwidth(device: Any, elements: int, repeats: int) -> float:
    """Bytes per second of ``x <- x + 1`` on ``elements`` float32 values (one read and one
    write of each), with ``x`` donated as the optimizer steps donate theirs, so that
    neither allocates fresh memory."""
    with jax.default_device(device):
        x = jax.device_put(jnp.ones(elements, jnp.float32), device)
        add = jax.jit(lambda v: v + 1, donate_argnums=0)
        x = jax.block_until_ready(add(x))
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            x = jax.block_until_ready(add(x))
            best = min(best, time.perf_counter() - start)
    return 2 * 4 * elements / best


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def _ratio(theirs: float, ours: float) -> str:
    return f"**{theirs / ours:.2f}**"


def table(results: list[tuple[Model, str, dict[str, Timing]]], bandwidth: float) -> str:
    """The Markdown table of one backend's results; with unfused runs, a last column of
    optref unfused's compile and median step time."""
    unfused = any("optref unfused" in timing for *_, timing in results)
    head = (
        "| model | optimizer | compile CPU optref / Optax (s) | speed-up | compile wall (s) | "
        "of which trace and lowering (CPU s) | "
        "step median optref / Optax (ms) | speed-up | step min optref / Optax (ms) | "
        "speed-up | peak memory optref / Optax (MB) | kernels optref / Optax | "
        "effective bandwidth optref / Optax |"
        + (" optref unfused: compile (s), step median (ms) |" if unfused else "")
        + "\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        + ("---|" if unfused else "")
        + "\n"
    )
    rows = []
    for model, optimizer, timing in results:
        ours, theirs = timing["optref"], timing["optax"]
        compile_ours, compile_theirs = min(ours.compile_s), min(theirs.compile_s)
        median_ours, median_theirs = np.median(ours.steps_s), np.median(theirs.steps_s)
        min_ours, min_theirs = min(ours.steps_s), min(theirs.steps_s)
        if model.single_leaf:
            bw_ours, bw_theirs = ours.traffic_bytes / min_ours, theirs.traffic_bytes / min_theirs
            bw = (
                f"{bw_ours / 1e9:.1f} / {bw_theirs / 1e9:.1f} GB/s "
                f"({bw_ours / bandwidth:.0%} / {bw_theirs / bandwidth:.0%} of copy)"
            )
        else:
            bw = ""
        rows.append(
            f"| {model.name} | {optimizer} | {compile_ours:.2f} / {compile_theirs:.2f} | "
            f"{_ratio(compile_theirs, compile_ours)} | {min(ours.compile_wall_s):.2f} / "
            f"{min(theirs.compile_wall_s):.2f} | {min(ours.staging_s):.2f} / "
            f"{min(theirs.staging_s):.2f} | {_ms(median_ours)} / "
            f"{_ms(median_theirs)} | {_ratio(median_theirs, median_ours)} | "
            f"{_ms(min_ours)} / {_ms(min_theirs)} | {_ratio(min_theirs, min_ours)} | "
            f"{ours.peak_bytes / 1e6:.3g} / {theirs.peak_bytes / 1e6:.3g} | "
            f"{ours.kernels} / {theirs.kernels} | {bw} |"
        )
        if unfused:
            plain = timing.get("optref unfused")
            rows[-1] += (
                f" {min(plain.compile_s):.2f}, {_ms(np.median(plain.steps_s))} |" if plain else " |"
            )
    return head + "\n".join(rows) + "\n"


def floor_table(floors: list[tuple[Model, int, int, int, Timing]]) -> str:
    """The Markdown table of the no-optimizer steps on each model."""
    rows = [
        f"| {model.name} | {leaves} | {size / 1e6:.3g}M | {moments} | "
        f"{min(t.compile_s):.2f} ({min(t.compile_wall_s):.2f}) | "
        f"{_ms(np.median(t.steps_s))} | {_ms(min(t.steps_s))} | {t.kernels} |"
        for model, leaves, size, moments, t in floors
    ]
    return (
        "| model | leaves | params | moment trees | compile CPU (wall) (s) | step median (ms) "
        "| step min (ms) | kernels |\n"
        "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def plot(
    sections: list[tuple[str, list[tuple[Model, str, dict[str, Timing]]]]], path: Path
) -> None:
    """Speed-ups of the median step and of compilation, one bar pair per model and optimizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(sections), 1, figsize=(11, 4.2 * len(sections)), squeeze=False)
    for ax, (backend, results) in zip(axes[:, 0], sections, strict=True):
        labels = [f"{m.name}\n{o}" for m, o, _ in results]
        step = [np.median(t["optax"].steps_s) / np.median(t["optref"].steps_s) for *_, t in results]
        comp = [min(t["optax"].compile_s) / min(t["optref"].compile_s) for *_, t in results]
        x = np.arange(len(results))
        ax.bar(x - 0.2, step, 0.4, label="step (median)")
        ax.bar(x + 0.2, comp, 0.4, label="compile")
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_xticks(x, labels, rotation=90, fontsize=7)
        ax.set_ylabel("Optax time / optref time")
        ax.set_title(f"{backend}: above 1, optref is faster")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _backends() -> list[str]:
    found = []
    for backend in ("cpu", "gpu"):
        try:
            jax.devices(backend)
        except RuntimeError:
            print(f"no {backend} backend: its section is skipped")
            continue
        found.append(backend)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description="optref against Optax, side by side.")
    parser.add_argument("--quick", action="store_true", help="small models, few steps, no files")
    parser.add_argument("--output", type=Path, help="the Markdown page to update")
    parser.add_argument("--plot", type=Path, help="the PNG to write")
    parser.add_argument("--optimizers", nargs="*", default=list(OPTIMIZERS))
    parser.add_argument("--models", nargs="*", help="model names (default: all)")
    parser.add_argument("--rounds", type=int, help="alternating timing rounds")
    parser.add_argument("--steps", type=int, help="steps per round")
    parser.add_argument("--compiles", type=int, help="compilations per library (best kept)")
    parser.add_argument(
        "--unfused", action="store_true", help="also time optref with chain(..., fuse=False)"
    )
    args = parser.parse_args()
    if not args.quick and args.output is None:
        # The docs' page and its plot by default; a run written elsewhere leaves both alone.
        args.output = ROOT / "docs" / "benchmarks.md"
        args.plot = args.plot or ROOT / "docs" / "assets" / "benchmarks.png"
    rounds = args.rounds or (2 if args.quick else 6)
    steps = args.steps or (5 if args.quick else 10)
    compiles = args.compiles or (1 if args.quick else 2)
    models = QUICK_MODELS if args.quick else FULL_MODELS
    if args.models:
        models = [m for m in models if m.name in args.models]

    command = "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()
    sections, text = [], []
    for backend in _backends():
        device = jax.devices(backend)[0]
        big = next((m for m in models if m.single_leaf), models[0])
        elements = sum(
            x.size for x in jax.tree.leaves(jax.eval_shape(big.params, jax.random.key(0)))
        )
        # The copy moves as many bytes as adamw's one-leaf step reads (params, gradient, mu
        # and nu): a buffer of the model's size alone can stay in a large last-level cache,
        # where the step's working set cannot, and would overstate the bandwidth.
        copied = 4 * elements
        bandwidth = copy_bandwidth(device, copied, repeats=50)
        print(f"{backend} ({device.device_kind}): copy bandwidth {bandwidth / 1e9:.1f} GB/s")
        results, floors = [], []
        for model in models:
            shapes = jax.tree.leaves(jax.eval_shape(model.params, jax.random.key(0)))
            leaves, size = len(shapes), sum(x.size for x in shapes)
            for moments in (0, 2):
                floor = bench_floor(model, device, moments=moments, rounds=rounds, steps=steps)
                floors.append((model, leaves, size, moments, floor))
                print(floor_table(floors[-1:]).splitlines()[-1], flush=True)
            for optimizer in args.optimizers:
                spec = OPTIMIZERS[optimizer]
                too_many = spec.max_leaves is not None and leaves > spec.max_leaves
                if too_many and not args.models:
                    continue
                timing = bench_pair(
                    model,
                    spec,
                    device,
                    rounds=rounds,
                    steps=steps,
                    compiles=compiles,
                    unfused=args.unfused,
                )
                results.append((model, optimizer, timing))
                print(table([(model, optimizer, timing)], bandwidth).splitlines()[-1], flush=True)
        sections.append((backend, results))
        text.append(
            f"### {backend}: {device.device_kind}\n\n"
            f"Copy bandwidth (`x <- x + 1`, donated, {copied / 1e6:.0f}M float32, four times the "
            f"one-leaf model, best of 50): "
            f"{bandwidth / 1e9:.1f} GB/s.\n\n"
            + table(results, bandwidth)
            + "\nThe floors: steps with no optimizer that write the params and 0 or 2 trees "
            "like them (Adam's `mu` and `nu`), each output one addition of the gradient, all "
            "donated.\n\n" + floor_table(floors)
        )
    load_after = os.getloadavg()
    own_rounds = "".join(
        f" ({name}: {OPTIMIZERS[name].rounds} rounds)"
        for name in args.optimizers
        if OPTIMIZERS[name].rounds is not None
    )
    header = (
        f"Measured {started} with `python docs/examples/bench.py{command}`: "
        f"jax {jax.__version__}, Optax {optax.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{rounds} alternating rounds of {steps} steps per library after 3 warm-up steps"
        f"{own_rounds}; "
        f"compile time (CPU and wall) the best of {compiles}. Load average (1, 5, 15 min) "
        f"{'/'.join(f'{x:.1f}' for x in load_before)} before, "
        f"{'/'.join(f'{x:.1f}' for x in load_after)} after.\n\n"
    )
    report = header + "\n".join(text)
    print(report)
    if args.plot:
        plot(sections, args.plot)
        where = args.output.parent if args.output else ROOT
        report += f"\n![speed-ups]({os.path.relpath(args.plot, where)})\n"
    if args.output:
        page = args.output.read_text() if args.output.exists() else f"{BEGIN}\n{END}\n"
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        args.output.write_text(pattern.sub(lambda _: f"{BEGIN}\n{report}{END}", page))


if __name__ == "__main__":
    main()
