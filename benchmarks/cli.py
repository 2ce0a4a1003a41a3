"""Command line of ``python -m benchmarks``.

This process imports neither NumPy nor torch: each library runs in a worker process of
its own (``benchmarks.worker``), whose thread count is pinned before those imports.
"""

from __future__ import annotations

import argparse
import os
import sys

ALL_WORKLOADS = ("mlp", "cnn", "cifar", "cifar_bn", "lstm")
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "latest.json")


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Training and inference throughput of neural_networks next to PyTorch CPU eager, "
        "per-layer times, peak memory per step and the share of the machine's matmul rate.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="few repeats and short timing windows (for CI); numbers are noisy")
    parser.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                        help=f"comma-separated subset of {','.join(ALL_WORKLOADS)} (default: all)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP/torch threads of each library's process (default: all cores)")
    parser.add_argument("--output", default=DEFAULT_OUTPUT,
                        help="where to write the JSON results (default: benchmarks/results/latest.json)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per library, interleaved (default: 9, quick: 3)")
    parser.add_argument("--batch", type=int, default=None,
                        help="override every workload's batch size (default: the workload's own)")
    parser.add_argument("--no-torch", action="store_true", help="measure this library alone")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="tune glibc malloc to keep freed memory instead of returning it to the "
                        "OS (both workers; see benchmarks/allocator.py)")
    parser.add_argument("--wait-quiet", action=argparse.BooleanOptionalAction, default=None,
                        help="before each timing window, wait (up to 10 s) until other processes "
                        "leave the CPU idle (default: on, off with --quick)")
    args = parser.parse_args(argv)
    args.workloads = [name.strip() for name in args.workloads.split(",") if name.strip()]
    unknown = [name for name in args.workloads if name not in ALL_WORKLOADS]
    if unknown or not args.workloads:
        parser.error(f"--workloads: unknown {unknown}; choose from {','.join(ALL_WORKLOADS)}")
    if args.threads is None:
        args.threads = available_cores()
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.batch is not None and args.batch < 1:
        parser.error("--batch must be >= 1")
    return args


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--distributed" in argv:
        # data-parallel scaling: 1 and 2 MPI ranks against 1 process with 2 threads, and the
        # Allreduce time per step (benchmarks/distributed.py, which takes its own options)
        import subprocess
        from pathlib import Path

        script = Path(__file__).with_name("distributed.py")
        return subprocess.call([sys.executable, str(script), *(a for a in argv if a != "--distributed")])
    args = parse_args(argv)
    from .run import run_all

    command = " ".join(["python -m benchmarks", *argv])
    return 0 if run_all(args, command=command) is not None else 1
