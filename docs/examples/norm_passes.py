"""What the overflow-safe norms cost per leaf: scaled in two passes, or one pass first.

``safe_l2_norm`` and ``safe_rms`` (Adafactor's block norms, LAMB's and LARS's trust
ratios) scale each leaf by a power of two near its largest magnitude before summing its
squares, so that they neither overflow nor flush to zero: two reductions over the leaf.
On the CPU, leaves of at least 65,536 elements first take the unscaled sum, in one
reduction, and scale only where it overflowed or underflowed, under a ``jax.lax.cond``.
This script times both ways, on whatever platform it runs, on leaves of each size (the
norm of every leaf of a list that holds about 2M float32 in all), and then on a batch of
16 leaves of 625,000 under ``jax.vmap`` (whose rows take one branch of the conditional
together):

    python docs/examples/norm_passes.py
    python docs/examples/norm_passes.py --sizes 4096 65536 --steps 50

Compile time is the process's CPU time for lowering and compiling; the step time is the
wall time of one call, its median and minimum over ``--steps`` calls after a warm-up, per
leaf.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from optref.core import safe_sqrt
from optref.core._numerics import _scaled_sum_of_squares, _unscaled_sum_first


def _norm(sum_of_squares: Callable[[jax.Array], tuple[jax.Array, jax.Array]]):
    def norm(x: jax.Array) -> jax.Array:
        scale, total = sum_of_squares(x)
        return scale * safe_sqrt(total)

    return norm


WAYS = {
    "scaled (two passes)": _norm(_scaled_sum_of_squares),
    "one pass, scaled under cond": _norm(_unscaled_sum_first),
}


def measure(size: int, steps: int) -> dict[str, tuple[float, float, float]]:
    """For each way: (compile CPU s, median step µs per leaf, min step µs per leaf)."""
    count = max(1, min(200, 2**21 // size))
    keys = jax.random.split(jax.random.key(0), count)
    leaves = [jax.random.normal(k, (size,), jnp.float32) for k in keys]
    results = {}
    for name, norm in WAYS.items():
        program = jax.jit(lambda leaves, norm=norm: [norm(x) for x in leaves])
        start = time.process_time()
        compiled = program.lower(leaves).compile()
        compile_seconds = time.process_time() - start
        jax.block_until_ready(compiled(leaves))
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            jax.block_until_ready(compiled(leaves))
            times.append((time.perf_counter() - start) * 1e6 / count)
        results[name] = (compile_seconds, statistics.median(times), min(times))
    return results


def measure_batched(rows: int, size: int, steps: int) -> dict[str, tuple[float, float]]:
    """For each way, ``jax.vmap`` over ``rows`` leaves of ``size``: (median ms, min ms)."""
    batch = jax.random.normal(jax.random.key(0), (rows, size), jnp.float32)
    results = {}
    for name, norm in WAYS.items():
        program = jax.jit(jax.vmap(norm))
        jax.block_until_ready(program(batch))
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            jax.block_until_ready(program(batch))
            times.append((time.perf_counter() - start) * 1e3)
        results[name] = (statistics.median(times), min(times))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="The safe norms' cost per leaf size.")
    parser.add_argument("--sizes", type=int, nargs="*", default=[4**k for k in range(5, 11)])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}")
    print("| leaf size | way | compile CPU (s) | step median (µs/leaf) | step min (µs/leaf) |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for name, (compile_seconds, median, least) in measure(size, args.steps).items():
            print(f"| {size} | {name} | {compile_seconds:.2f} | {median:.1f} | {least:.1f} |")
    print("\n| batch under vmap | way | step median (ms) | step min (ms) |")
    print("|---|---|---|---|")
    for name, (median, least) in measure_batched(16, 625_000, args.steps).items():
        print(f"| 16 x 625000 | {name} | {median:.2f} | {least:.2f} |")


if __name__ == "__main__":
    main()
