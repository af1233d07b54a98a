"""Independent computations compiled and run as one program.

Nearly all of an audit's time is XLA compilation, and much of a small program's
compilation is a fixed cost per program (on the CPU: an Adam update on a five-element
vector compiles in about 0.11 s, four independent copies of it in one program in about
0.20 s). So each check gathers the computations it needs at a step (both libraries,
every problem, every dtype, every wrapped form) and compiles them as one program, called
again for each later step with new values.

The computations have no data dependencies between them, so each is the same arithmetic
as when compiled alone; the conformance tests compare results of both ways.

A check whose tolerances are set by the mathematics rather than by the rounding of the
compiled program (derivatives against finite differences, finite or not) can ask for
:data:`FAST_COMPILE`: XLA's backend optimisations off, which roughly halves compilation
on the CPU and changes results by rounding only. The other checks compile as users do:
low precision and the bit-identical wrapper forms measure rounding, and in float64 a line
search's branch decisions follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx

__all__ = ["FAST_COMPILE", "call_together"]

#: XLA options for the fastest compilation: no backend optimisation passes, no
#: expensive LLVM passes, no fusion emitters (on the CPU; other backends ignore them).
FAST_COMPILE: dict[str, Any] = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


def _calls_in_order(calls: tuple[tuple[Callable[..., Any], tuple], ...]) -> tuple:
    # The functions (and any non-array argument: an Optax transformation's closures, a
    # problem's name, a step scale) are static; the arrays are the program's inputs. The
    # same functions with arrays of the same shapes reuse the compiled program.
    return tuple(fn(*args) for fn, args in calls)


# filter_jit passes keywords it does not take itself on to jax.jit; its type stubs do not
# list them.
_PROGRAMS = {
    False: eqx.filter_jit(_calls_in_order),
    True: eqx.filter_jit(_calls_in_order, compiler_options=FAST_COMPILE),  # pyright: ignore[reportCallIssue]
}


def call_together(
    calls: Sequence[tuple[Callable[..., Any], tuple]], *, fast_compile: bool = False
) -> list[Any]:
    """``[fn(*args) for fn, args in calls]``, compiled as one program (with
    :data:`FAST_COMPILE` where ``fast_compile``).

    Where tracing or running the whole raises (an Optax transformation that rejects the
    params, say), each call is traced on its own (``eqx.filter_eval_shape``: nothing is
    compiled) to find the ones that raise; their entries are the exceptions, and the
    others are again compiled together as one program, so one failing computation
    neither hides the others nor costs a compilation for each. Where every call traces
    and the program still fails to run, each runs on its own.
    """
    calls = tuple((fn, tuple(args)) for fn, args in calls)
    program = _PROGRAMS[fast_compile]
    try:
        return list(program(calls))
    except Exception as error:
        if len(calls) == 1:
            return [error]
    results: list[Any] = [_trace_error(fn, args) for fn, args in calls]
    traced = [i for i, result in enumerate(results) if result is None]
    if len(traced) == len(calls):
        return [call_together([call], fast_compile=fast_compile)[0] for call in calls]
    if traced:
        outputs = call_together([calls[i] for i in traced], fast_compile=fast_compile)
        for i, output in zip(traced, outputs, strict=True):
            results[i] = output
    return results


def _trace_error(fn: Callable[..., Any], args: tuple) -> Exception | None:
    """What tracing ``fn(*args)`` raises, or ``None``."""
    try:
        eqx.filter_eval_shape(fn, *args)
    except Exception as error:
        return error
    return None
