"""The ``optref-audit`` command's arguments: parsed, and checked before anything runs.

A value the audit cannot use (a count below its least value, a check, dtype or backend
that does not exist here, a ``--cases`` pattern that matches no case, a ``--compare``
directory without a report) is a usage error naming the argument and the value (exit
status 2), never a finding of the report: a typo must not give a green audit.
"""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Callable, Sequence

import jax

from ._cases import load_cases, unmatched_patterns
from ._check_low_precision import DEFAULT_DTYPES
from ._findings import SEVERITIES
from ._run import ALL_CHECKS

__all__ = ["available_backends", "parse_arguments"]


def available_backends() -> list[str]:
    """The JAX backends present on this machine (``cpu`` always)."""
    backends = []
    for name in ("cpu", "gpu", "tpu"):
        try:
            jax.devices(name)
        except RuntimeError:
            continue
        backends.append(name)
    return backends


def _at_least(least: int) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
        return value

    return parse


def _comma_list(what: str, accepted: Sequence[str]) -> Callable[[str], str]:
    """An argparse type: a comma list of names among ``accepted`` (``what`` they are, for
    the message), kept as the string given."""

    def parse(text: str) -> str:
        unknown = [name for name in text.split(",") if name not in accepted]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, unknown))}; accepted: {', '.join(accepted)}"
            )
        return text

    return parse


def _backend(name: str) -> str:
    """An argparse type: a JAX backend that this machine has."""
    present = available_backends()
    if name not in present:
        raise argparse.ArgumentTypeError(
            f"no {name!r} backend on this machine; it has: {', '.join(present)}"
        )
    return name


def _report_directory(directory: str) -> str:
    """An argparse type: a directory holding an audit's ``report.json``."""
    if not os.path.isdir(directory):
        raise argparse.ArgumentTypeError(f"no such directory: {directory!r}")
    if not os.path.isfile(os.path.join(directory, "report.json")):
        raise argparse.ArgumentTypeError(f"no report.json in {directory!r}")
    return directory


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optref-audit",
        description="Audit the installed Optax against optref, the reference implementation.",
    )
    parser.add_argument(
        "--cases",
        metavar="PATTERN",
        help="glob or substring of case names (e.g. 'core.adam*'); several separated by commas",
    )
    parser.add_argument(
        "--checks",
        type=_comma_list("checks", ALL_CHECKS),
        help=f"comma list of checks (default all: {','.join(ALL_CHECKS)})",
    )
    parser.add_argument(
        "--backend",
        type=_backend,
        help="JAX backend to run on (default: every backend present)",
    )
    parser.add_argument(
        "--dtypes",
        type=_comma_list("dtypes", DEFAULT_DTYPES),
        help="comma list of dtypes for low_precision and robustness "
        f"(default {','.join(DEFAULT_DTYPES)})",
    )
    parser.add_argument(
        "--steps",
        type=_at_least(1),
        help="float64 trajectory length, at least 1 (default: each case's own)",
    )
    parser.add_argument("--out", default="audit-report", help="report directory")
    parser.add_argument(
        "--fail-on",
        choices=(*SEVERITIES, "never"),
        default="never",
        help="exit 1 if any finding is at least this severe",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a representative subset of cases, each on its first problem (real params), "
        "with fewer steps, checks and dtypes",
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        type=_report_directory,
        metavar="DIR",
        help="compare the reports in these directories (one per Optax "
        "version) and write compare.md into --out",
    )
    parser.add_argument(
        "--jobs",
        type=_at_least(0),
        default=1,
        help="cases run in this many processes at once (0: one per CPU core; default 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")
    parser.add_argument("--no-plots", action="store_true", help="no plots in report.html")
    return parser


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command's arguments (``sys.argv[1:]`` if ``argv`` is ``None``), each checked;
    a bad one exits with a usage error (status 2) that names it and its value.

    Each part of a ``--cases`` pattern must match a case; the message suggests the
    names closest to one that does not.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cases is not None:
        names = [case.name for case in load_cases()]
        unmatched = unmatched_patterns(args.cases, names)
        if unmatched:
            parser.error(
                "argument --cases: " + "; ".join(_no_case_matches(p, names) for p in unmatched)
            )
    return args


def _no_case_matches(part: str, names: list[str]) -> str:
    close = difflib.get_close_matches(part, names, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"no case matches {part!r}{hint}"
