"""The catalogue of bad-input messages on the hardening page (docs/hardening.md).

    python docs/examples/error_catalogue.py

For a few transformations of optref-core's and optref-masking's conformance cases, every
bad input of ``optref.audit.bad_inputs`` (the calls the hardening tests make) and the
message it gives, printed as Markdown tables. ``tests/test_hardening_errors.py`` asserts, for every
case, that each message is the promised one.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

from optref.audit import bad_inputs, outcome  # noqa: E402
from optref.core.conformance import CASES  # noqa: E402
from optref.masking.conformance import CASES as MASKING_CASES  # noqa: E402

SHOWN = (
    "core.adam",
    "core.sgd-momentum",
    "core.flatten",
    "core.lars-masks-nesterov",
    "masking.partition-ndim",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("[", "\\[").replace("\n", " ")


def main() -> None:
    for name in SHOWN:
        case = next(c for c in [*CASES, *MASKING_CASES] if c.name == name)
        print(f"#### `{case.optref.rsplit('.', 1)[-1]}` (case `{name}`)\n")
        print("| bad input | raised | message |")
        print("|---|---|---|")
        for bad in bad_inputs(case):
            kind, message = outcome(bad)
            shown = message if kind != "accepted" else "(accepted: valid for this transformation)"
            print(f"| {bad.kind} | `{kind}` | {_cell(shown)} |")
        print()


if __name__ == "__main__":
    main()
