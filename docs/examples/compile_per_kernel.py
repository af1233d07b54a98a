"""What XLA's compile time pays for on many small leaves: kernels alike, or each its own.

Each program below writes ``count`` arrays of 10 float32, one kernel each, and differs from
the others only in what the kernels have in common:

- ``p + g``: every kernel the same computation, on its own buffers;
- ``p + (i + 1) g``: the same, with a constant that differs from kernel to kernel;
- ``p - u[10 i : 10 i + 10]``: each leaf's slice of one vector, as splitting a flattened
  update back into the leaves does (``flatten``), the slice's offset a constant of its
  kernel;
- ``concatenate(g)``: the leaves gathered into one vector, as flattening does, one kernel
  with ``count`` operands;
- ``10 steps`` and ``50 steps``: every kernel the same, an elementwise chain of that many
  steps on its leaf (a square root, then a multiply-add, in turn).

    python docs/examples/compile_per_kernel.py            # 250, 500, 1000 and 2000 leaves
    python docs/examples/compile_per_kernel.py --leaves 1000

Compile time is the process's CPU time for ``jax.jit(f).lower(...).compile()`` (lowering
included), the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

PROGRAMS: dict[str, Callable[[list[jax.Array], jax.Array], Any]] = {
    "p + g": lambda p, u: [x + y for x, y in zip(p, p, strict=True)],
    "p + (i + 1) g": lambda p, u: [x + (i + 1) * x for i, x in enumerate(p)],
    "p - u[10 i : 10 i + 10]": lambda p, u: [
        x - jax.lax.slice(u, (10 * i,), (10 * i + 10,)) for i, x in enumerate(p)
    ],
    "concatenate(g)": lambda p, u: jnp.concatenate(p),
}


def _elementwise_chain(steps: int) -> Callable[[list[jax.Array], jax.Array], Any]:
    def step(x: jax.Array, j: int) -> jax.Array:
        return x * 1.0001 + 0.5 if j % 2 else jnp.sqrt(x * x + 1.0)

    def program(p: list[jax.Array], u: jax.Array) -> list[jax.Array]:
        out = []
        for x in p:
            for j in range(steps):
                x = step(x, j)
            out.append(x)
        return out

    return program


PROGRAMS.update({f"{n} steps": _elementwise_chain(n) for n in (10, 50)})


def compile_seconds(program: Callable[..., Any], count: int, repeats: int) -> float:
    """The best CPU time of ``repeats`` compilations of ``program`` on ``count`` leaves."""
    leaves = [jnp.full(10, float(i), jnp.float32) for i in range(count)]
    flat = jnp.zeros(10 * count, jnp.float32)
    best = float("inf")
    for _ in range(repeats):
        # A fresh function each time, so that JAX's caches do not answer the second call.
        fresh = jax.jit(lambda p, u: program(p, u))
        start = time.process_time()
        fresh.lower(leaves, flat).compile()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description="Compile time on many small leaves.")
    parser.add_argument("--leaves", type=int, nargs="*", default=[250, 500, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; compile CPU seconds")
    print("| program | " + " | ".join(f"{n} leaves" for n in args.leaves) + " |")
    print("|---|" + "---|" * len(args.leaves))
    for name, program in PROGRAMS.items():
        cells = [f"{compile_seconds(program, n, args.repeats):.2f}" for n in args.leaves]
        print(f"| `{name}` | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
