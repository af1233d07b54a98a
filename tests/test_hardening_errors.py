"""Bad input is named: every transformation of the catalogue, fed the mistakes users make.

Each mistake (:func:`optref.audit.bad_inputs`) must give, at construction or trace time,
an error of the promised class whose message starts with the name of the transformation
that refused it and names the argument or PyTree path at fault. NaN and infinite
gradients are not errors: their documented behaviour is checked here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optref.audit import bad_inputs, check_bad_input
from optref.masking.conformance import CASES as MASKING_CASES

# The transformations whose updates stay finite after a NaN gradient, by design:
# apply_if_finite and MultiSteps with a skip function skip the step, zero_nans zeroes the
# NaN, set_to_zero zeroes everything. scale_by_rss and scale_by_sm3 (and adagrad and sm3,
# built on them) give a zero step where their accumulator is not positive, which a NaN is
# not; Optax's scale_by_rss and scale_by_sm3 do the same. Every other transformation
# passes the NaN on to the updates.
NAN_GIVES_FINITE_UPDATES = {
    "optref.core.apply_if_finite",
    "optref.core.zero_nans",
    "optref.core.set_to_zero",
    "optref.core.scale_by_rss",
    "optref.core.adagrad",
    "optref.core.scale_by_sm3",
    "optref.core.sm3",
}
NAN_SKIPPED_BY_CASE = {"core.MultiSteps-skip_not_finite", "core.MultiSteps-skip_large_updates"}
# Enough steps for the accumulating wrappers (apply_every, MultiSteps: k = 3) to emit.
STEPS = 3


def test_bad_input_is_named(transformation_case) -> None:
    problems = [p for b in bad_inputs(transformation_case) if (p := check_bad_input(b)) is not None]
    assert not problems, "\n".join(problems)


def _poisoned(grads, value: float):
    """``grads`` with the first element of every leaf set to ``value``."""
    return jax.tree.map(lambda g: g.reshape(-1).at[0].set(value).reshape(g.shape), grads)


def _all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree.leaves(tree))


def _run_with_first_gradient(run, value: float) -> list:
    """The updates of ``STEPS`` steps whose first gradient holds ``value``."""
    tx, params = run.tx, run.params
    state = tx.init(params)
    updates = []
    for step in range(STEPS):
        poison = (lambda g: _poisoned(g, value)) if step == 0 else None
        params, state, u = run.step(tx, params, state, transform_grads=poison)
        updates.append(u)
    return updates


def test_nan_gradients_propagate_unless_documented(transformation_case, case_run) -> None:
    run = case_run(transformation_case, jnp.float32)
    updates = _run_with_first_gradient(run, np.nan)
    finite = _all_finite(updates)
    documented = (
        transformation_case.optref in NAN_GIVES_FINITE_UPDATES
        or transformation_case.name in NAN_SKIPPED_BY_CASE
    )
    assert finite == documented, (
        "NaN gradient gave " + ("finite" if finite else "non-finite") + " updates"
    )


def test_infinite_gradients_raise_nothing(transformation_case, case_run) -> None:
    run = case_run(transformation_case, jnp.float32)
    updates = _run_with_first_gradient(run, np.inf)
    assert len(updates) == STEPS


@pytest.mark.parametrize("case", MASKING_CASES, ids=lambda case: case.name)
def test_masking_bad_input_is_named(case) -> None:
    """The wrappers of optref-masking check the updates against the params once, at their
    own ``update``, so a mistake is named there rather than deep inside a mask."""
    problems = [p for b in bad_inputs(case) if (p := check_bad_input(b)) is not None]
    assert not problems, "\n".join(problems)
