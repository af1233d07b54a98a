"""The ``optref-audit`` command: run the conformance cases against the installed Optax and
write a report (``report.json``, ``report.md``, ``report.html``).

Usage::

    optref-audit [--cases PATTERN] [--checks float64,low_precision] [--quick] [--jobs N]
                 [--out DIR]
    optref-audit --compare audit-report/optax-0.2.3 audit-report/optax-0.2.8
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence

from optref.core.conformance import Case

from ._arguments import available_backends, parse_arguments
from ._cases import load_cases
from ._findings import SEVERITIES, Finding
from ._run import ALL_CHECKS, audit_case

__all__ = ["QUICK_CASES", "main", "quick_cases"]

#: Cases the quick audit always keeps (when present), besides one per package/family.
QUICK_CASES: tuple[str, ...] = (
    "core.sgd",
    "core.adam",
    "core.optimistic_gradient_descent",
    "linesearch.lbfgs-zoom",
)
#: Trajectory length of the quick audit's float64 check.
QUICK_STEPS = 10
#: The quick audit's checks and dtypes (unless ``--checks`` / ``--dtypes`` are given).
QUICK_CHECKS = ("float64", "low_precision", "robustness")
QUICK_DTYPES = ("float32", "bfloat16")


def quick_cases(cases: list[Case]) -> list[Case]:
    """A representative subset: :data:`QUICK_CASES` plus the first case of each package."""
    names = {c.name for c in cases}
    keep = [n for n in QUICK_CASES if n in names]
    seen_packages = {n.split(".")[0] for n in keep}
    for case in cases:
        package = case.name.split(".")[0]
        if package not in seen_packages:
            seen_packages.add(package)
            keep.append(case.name)
    return [c for c in cases if c.name in set(keep)]


def _run_all(
    args: argparse.Namespace,
) -> tuple[list[Case], list[str], list[Finding], dict, float]:
    cases = load_cases(args.cases)
    if args.quick:
        cases = quick_cases(cases)
    checks = (
        tuple(args.checks.split(",")) if args.checks else QUICK_CHECKS if args.quick else ALL_CHECKS
    )
    backends = [args.backend] if args.backend else available_backends()
    options: dict[str, object] = {}
    if args.dtypes:
        options["dtypes"] = tuple(args.dtypes.split(","))
    steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick else None)
    if args.quick:
        options.setdefault("dtypes", QUICK_DTYPES)
    findings: list[Finding] = []
    timings: dict[str, float] = {}
    work = []
    for backend in backends:
        for case in cases:
            if steps is not None:
                case = dataclasses.replace(
                    case, steps=min(steps, case.steps) if args.quick else steps
                )
            if args.quick:  # one problem, real params: a compilation or two per check
                case = dataclasses.replace(case, problems=case.problems[:1], complex_params=False)
            work.append((case, checks, backend, options))
    jobs = args.jobs or os.cpu_count() or 1
    pool = None
    if jobs == 1:
        results = map(audit_case, work)
    else:
        # Processes, not threads: compilation holds the GIL. Spawned, as JAX cannot fork.
        context = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(min(jobs, len(work)), mp_context=context)
        results = pool.map(audit_case, work)
    cpu = 0.0
    for done, (item, (case_findings, seconds, case_cpu)) in enumerate(
        zip(work, results, strict=True), start=1
    ):
        case, _, backend, _ = item
        if not args.no_progress:
            print(
                f"[{done}/{len(work)}] {case.name} ({backend}): {len(case_findings)} findings, "
                f"{seconds:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        findings.extend(case_findings)
        timings[f"{case.name}@{backend}"] = seconds
        cpu += case_cpu
    if pool is not None:
        pool.shutdown()
    return cases, backends, findings, timings, cpu


def main(argv: Sequence[str] | None = None) -> int:
    """Run the audit; return the exit status (1 when ``--fail-on`` is met). A bad argument
    exits with a usage error, status 2 (:func:`~optref.audit._arguments.parse_arguments`)."""
    from ._report import write_report

    args = parse_arguments(argv)
    if args.compare:
        from ._compare import write_comparison

        path = write_comparison(args.compare, args.out)
        print(f"Report: {path}")
        return 0
    # Where the report will be comes first, so that it is read before the progress lines.
    print(f"Report: {os.path.join(args.out, 'report.html')}", flush=True)
    start = time.perf_counter()
    cases, backends, findings, timings, cpu = _run_all(args)
    elapsed = time.perf_counter() - start
    paths = write_report(
        args.out,
        cases,
        backends,
        findings,
        timings,
        elapsed,
        options={**{k: v for k, v in vars(args).items() if k != "compare"}, "cpu_s": cpu},
        plots={} if args.no_plots else None,
    )
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    print(
        f"{len(cases)} cases on {', '.join(backends)} in {elapsed:.1f} s "
        f"({cpu:.1f} s of CPU time): " + ", ".join(f"{n} {s}" for s, n in reversed(counts.items()))
    )
    print(f"Report: {paths['html']} (also {paths['md']}, {paths['json']})")
    if args.fail_on != "never":
        threshold = SEVERITIES.index(args.fail_on)
        if any(SEVERITIES.index(f.severity) >= threshold for f in findings):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
