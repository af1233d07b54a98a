"""Trace, lower and compile each optimizer's jitted step on many small leaves, optref and Optax.

Where Optax's cost is per leaf, optref's leafwise transformations trace their leaf math
once per leaf signature; this script measures what that leaves of the compile time, alias
by alias, as a Markdown table (CPU seconds of this process, the best of ``--repeats``),
with what XLA's compile grows with, the HLO instructions of the compiled step per leaf:

    python docs/examples/compile_catalogue.py --leaves 1000 --size 10
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optref.core as oc

#: alias -> keyword arguments of both libraries' factories.
ALIASES: dict[str, dict[str, Any]] = {
    "adamw": {"learning_rate": 1e-3},
    "rmsprop": {"learning_rate": 1e-3},
    "adabelief": {"learning_rate": 1e-3},
    "yogi": {"learning_rate": 1e-3},
    "amsgrad": {"learning_rate": 1e-3},
    "adamax": {"learning_rate": 1e-3},
    "adadelta": {"learning_rate": 1e-3},
    "radam": {"learning_rate": 1e-3},
    "novograd": {"learning_rate": 1e-3},
    "adagrad": {"learning_rate": 1e-3},
    "sm3": {"learning_rate": 1e-3},
    "adan": {"learning_rate": 1e-3},
}


def measure(library: Any, alias: str, params: dict, repeats: int) -> tuple[float, float]:
    """(trace and lowering, XLA compile) CPU seconds of ``library.alias``'s jitted step,
    each the best of ``repeats``."""
    tx = getattr(library, alias)(**ALIASES[alias])

    def step(p: Any, state: Any, g: Any) -> Any:
        updates, state = tx.update(g, state, p)
        return library.apply_updates(p, updates), state

    state = tx.init(params)
    lower, compile_ = float("inf"), float("inf")
    for _ in range(repeats):
        jax.clear_caches()
        start = time.process_time()
        lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, params)
        lower = min(lower, time.process_time() - start)
        start = time.process_time()
        lowered.compile()
        compile_ = min(compile_, time.process_time() - start)
    return lower, compile_


def instructions_per_leaf(library: Any, alias: str, size: int) -> float:
    """The HLO instructions that each leaf adds to ``library.alias``'s compiled step.

    Half the difference between the instructions (``%name = type op(...)`` lines of
    ``compiled.as_text()``, fusions' bodies included) on three leaves of ``size`` float32
    and on one: what is compiled again for every leaf, without what is compiled once per
    step (the step count, the bias corrections, a schedule).
    """

    def instructions(leaves: int) -> int:
        params = {f"p{i}": jnp.ones(size, jnp.float32) for i in range(leaves)}
        tx = getattr(library, alias)(**ALIASES[alias])

        def step(p: Any, state: Any, g: Any) -> Any:
            updates, state = tx.update(g, state, p)
            return library.apply_updates(p, updates), state

        text = jax.jit(step).lower(params, tx.init(params), params).compile().as_text()
        return len(re.findall(r"= \S+ [\w-]+\(", text))

    return (instructions(3) - instructions(1)) / 2


def table(aliases: list[str], leaves: int, size: int, repeats: int, write: Callable) -> None:
    """Print one Markdown row per alias: optref's and Optax's times, the speed-up and the
    HLO instructions a leaf."""
    rng = np.random.default_rng(0)
    params = {f"p{i:04d}": jnp.asarray(rng.random(size, np.float32)) for i in range(leaves)}
    write(
        "| alias | trace and lowering, optref / Optax (s) | XLA compile, optref / Optax (s) "
        "| total speed-up | HLO instructions a leaf, optref / Optax |"
    )
    write("|---|---|---|---|---|")
    for alias in aliases:
        (ol, oc_), (xl, xc) = (measure(lib, alias, params, repeats) for lib in (oc, optax))
        oi, xi = (instructions_per_leaf(lib, alias, size) for lib in (oc, optax))
        write(
            f"| {alias} | {ol:.2f} / {xl:.2f} | {oc_:.2f} / {xc:.2f} "
            f"| **{(xl + xc) / (ol + oc_):.2f}** | {oi:g} / {xi:g} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--aliases", nargs="*", default=list(ALIASES), choices=list(ALIASES))
    args = parser.parse_args(argv)
    table(args.aliases, args.leaves, args.size, args.repeats, lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
