"""Independent computations compiled and run as one program.

Nearly all of an audit's time is XLA compilation, and much of a small program's
compilation is a fixed cost per program (on the CPU: an Adam update on a five-element
vector compiles in about 0.11 s, four independent copies of it in one program in about
0.20 s). So each check gathers the computations it needs at a step (both libraries,
every problem, every dtype, every wrapped form) and compiles them as one program, called
again for each later step with new values.

The computations have no data dependencies between them, so each is the same arithmetic
as when compiled alone; the conformance tests compare results of both ways.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx

__all__ = ["call_together"]


@eqx.filter_jit
def _program(calls: tuple[tuple[Callable[..., Any], tuple], ...]) -> tuple:
    # The functions (and any non-array argument: an Optax transformation's closures, a
    # problem's name, a step scale) are static; the arrays are the program's inputs. The
    # same functions with arrays of the same shapes reuse the compiled program.
    return tuple(fn(*args) for fn, args in calls)


def call_together(calls: Sequence[tuple[Callable[..., Any], tuple]]) -> list[Any]:
    """``[fn(*args) for fn, args in calls]``, compiled as one program.

    Where tracing or running the whole raises (an Optax transformation that rejects the
    params, say), each call runs on its own and an entry is either its result or the
    exception it raised, so one failing computation does not hide the others.
    """
    calls = tuple((fn, tuple(args)) for fn, args in calls)
    try:
        return list(_program(calls))
    except Exception as error:
        if len(calls) == 1:
            return [error]
    results: list[Any] = []
    for call in calls:
        try:
            results.append(_program((call,))[0])
        except Exception as error:
            results.append(error)
    return results
