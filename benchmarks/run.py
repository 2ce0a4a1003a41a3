"""Run every measurement in one worker process per library, print the tables, write JSON.

This process only orchestrates: it starts ``benchmarks.worker`` once for this library
and once for PyTorch (same thread count, pinned before either imports NumPy or torch),
hands torch the weights ours drew, checks that both give the same probabilities, and
then times windows in turn — ours, torch, torch, ours, ... — each after a pause and,
by default, a wait for a quiet machine. The ratio it reports is the median over
repeats of ours/torch within one repeat (the two windows are a second apart, so a
drifting machine cancels out), with the range of those paired ratios.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from .cpu import MONITOR
from .workloads import WORKLOADS, matmul_flops

#: a repeat ran "at full speed" when its matmul probe reached this share of the run's best
FULL_SPEED = 0.85
#: fewest calls in one timing window
MIN_CALLS = 3
#: largest max |ours − torch| of the probabilities, same weights, same batch
AGREEMENT = 1e-4

#: ours/torch ratios the library aims for on this benchmark (own processes, paired median)
TARGETS = {
    "train": {"mlp": 1.0, "cnn": 0.7, "cifar": 0.7, "cifar_bn": 0.7, "lstm": 0.7},
    "inference": {"mlp": 1.0, "cnn": 1.0, "cifar": 1.0, "cifar_bn": 1.0, "lstm": 1.0},
    "memory_ratio": 3.0,
}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerError(RuntimeError):
    """A worker process failed a request or died."""


class WorkerProcess:
    """One ``python -m benchmarks.worker`` process, driven by JSON lines over a pipe."""

    def __init__(self, library: str, threads: int, keep_freed_memory: bool) -> None:
        from .worker import THREAD_VARIABLES

        self.library = library
        env = dict(os.environ)
        env.update({name: str(threads) for name in THREAD_VARIABLES})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "benchmarks.worker", library, str(threads)]
        if keep_freed_memory:
            command.append("--keep-freed-memory")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env, cwd=ROOT)

    def request(self, command: str, **arguments):
        try:
            self.process.stdin.write(json.dumps({"command": command, **arguments}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.process.wait(timeout=30)
            raise WorkerError(f"the {self.library} worker exited (code {code}) during {command!r}; "
                              "its error is on stderr above")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"the {self.library} worker failed {command!r}:\n{reply['error']}")
        return reply["ok"]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"command": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def settings_for(args) -> dict:
    if args.quick:
        settings = {"repeats": 3, "window_s": 0.05, "pause_s": 0.05, "warmup": 5, "profile_steps": 3,
                    "matmul_size": 512, "matmul_repeats": 5}
    else:
        settings = {"repeats": 11, "window_s": 0.5, "pause_s": 0.2, "warmup": 10, "profile_steps": 20,
                    "matmul_size": 2048, "matmul_repeats": 10}
    if args.repeats is not None:
        settings["repeats"] = args.repeats
    settings["wait_quiet"] = (not args.quick) if args.wait_quiet is None else args.wait_quiet
    return settings


def start_workers(args) -> tuple[dict[str, WorkerProcess], dict]:
    """The ours worker, and the torch worker unless it is disabled or cannot start."""
    workers = {"ours": WorkerProcess("ours", args.threads, args.keep_freed_memory)}
    info = {"ours": workers["ours"].request("hello")}
    if args.no_torch:
        info["torch_status"] = "disabled (--no-torch)"
        return workers, info
    candidate = WorkerProcess("torch", args.threads, args.keep_freed_memory)
    try:
        info["torch"] = candidate.request("hello")
    except WorkerError as error:  # torch not installed, or broken
        candidate.close()
        info["torch_status"] = f"unavailable ({str(error).splitlines()[0]})"
        return workers, info
    workers["torch"] = candidate
    info["torch_status"] = info["torch"]["torch"]
    return workers, info


def machine_info(threads: int, info: dict) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "thread_limit_method": "environment variables before import in each worker, torch.set_num_threads",
        "python": platform.python_version(),
        "numpy": info["ours"]["numpy"],
        "torch": info["torch_status"],
        "allocator": info["ours"]["allocator"],
        "workers": {key: value for key, value in info.items() if key in ("ours", "torch")},
        "platform": platform.platform(),
    }


def run_workload(name: str, args, settings: dict, workers: dict[str, WorkerProcess], folder: str) -> dict:
    workload = WORKLOADS[name]
    batch = args.batch or workload.batch
    flops = matmul_flops(workload)
    result = {"description": workload.description, "batch": batch, "matmul_flops_per_sample": flops}
    weights = os.path.join(folder, f"{name}.npz")
    for library, worker in workers.items():  # ours first: it writes the weights torch reads
        worker.request("setup", workload=name, batch=batch, weights_path=weights)
    if "torch" in workers:
        ours, theirs = (workers[library].request("probabilities")["probabilities"] for library in ("ours", "torch"))
        difference = max(abs(a - b) for row_a, row_b in zip(ours, theirs) for a, b in zip(row_a, row_b))
        result["agreement"] = {"max_abs_diff_probabilities": difference, "limit": AGREEMENT,
                               "ok": difference <= AGREEMENT}

    for kind, flop_key in (("train", "train"), ("inference", "forward")):
        print(f"  {name}: {kind} throughput ...", file=sys.stderr, flush=True)
        measured = time_alternately(workers, kind, batch, settings)
        for library in workers:
            measured[library]["gflops"] = measured[library]["samples_per_s"] * flops[flop_key] / 1e9
        if "torch" in workers:
            pairs = [a / b for a, b in zip(measured["ours"]["runs"], measured["torch"]["runs"])]
            measured["ratio"] = statistics.median(pairs)
            measured["ratio_of_medians"] = measured["ours"]["samples_per_s"] / measured["torch"]["samples_per_s"]
            measured["ratio_range"] = [min(pairs), max(pairs)]
            measured["paired_ratios"] = pairs
        result[kind] = measured

    print(f"  {name}: per-layer profile and memory ...", file=sys.stderr, flush=True)
    result["profile"] = workers["ours"].request("profile", steps=settings["profile_steps"])
    result["memory"] = workers["ours"].request("memory")
    return result


def time_alternately(workers: dict[str, WorkerProcess], kind: str, batch: int, settings: dict) -> dict:
    """Every repeat times one window of each library, the order alternating between
    repeats (ours first, then torch first, ...); before each window, a pause (the idle
    threads of the library timed before spin a while before they sleep) and, with
    ``wait_quiet``, a wait for other processes to leave the CPU idle."""
    calls = {library: worker.request("calibrate", kind=kind, warmup=settings["warmup"],
                                     window=settings["window_s"], min_calls=MIN_CALLS)["calls"]
             for library, worker in workers.items()}
    windows: dict[str, list[dict]] = {library: [] for library in workers}
    probes = []
    for repeat in range(settings["repeats"]):
        probes.append(workers["ours"].request("probe")["gflops"])
        order = list(workers) if repeat % 2 == 0 else list(reversed(workers))
        for library in order:
            time.sleep(settings["pause_s"])
            if settings["wait_quiet"]:
                MONITOR.wait_until_quiet()
            windows[library].append(workers[library].request("window", kind=kind, calls=calls[library]))
    measured = {}
    for library, timed in windows.items():
        runs = [w["calls"] * batch / w["seconds"] for w in timed]
        measured[library] = {
            "samples_per_s": statistics.median(runs),
            "runs": runs,
            "calls_per_run": calls[library],
            "others_cpu_share": [w["others_cpu_share"] for w in timed],
            "page_faults_per_call": statistics.median(w["page_faults_per_call"] for w in timed),
        }
    measured["matmul_probe_gflops"] = probes
    return measured


def run_all(args, command: str) -> dict | None:
    """The whole run; None when a worker failed or the libraries disagreed."""
    settings = settings_for(args)
    workers, info = start_workers(args)
    try:
        results = {
            "command": command,
            "measurement": "own processes (one worker per library), alternating windows",
            "quick": bool(args.quick),
            "settings": settings,
            "machine": machine_info(args.threads, info),
            "targets": TARGETS,
        }
        print("matmul rate of each process ...", file=sys.stderr, flush=True)
        results["matmul"] = {library: worker.request("gemm_rate", size=settings["matmul_size"],
                                                     repeats=settings["matmul_repeats"])
                             for library, worker in workers.items()}
        results["workloads"] = {}
        with tempfile.TemporaryDirectory(prefix="nn-benchmark-") as folder:
            for name in args.workloads:
                results["workloads"][name] = entry = run_workload(name, args, settings, workers, folder)
                for kind in ("train", "inference"):
                    for library in workers:
                        rate = results["matmul"][library]["gflops"]
                        entry[kind][library]["share_of_matmul_rate"] = entry[kind][library]["gflops"] / rate
        # Asked again at the end: by now every BLAS/OpenMP library a step loads is loaded.
        results["machine"]["workers"] = {library: worker.request("hello") for library, worker in workers.items()}
    except WorkerError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return None
    finally:
        for worker in workers.values():
            worker.close()
    add_full_speed_ratios(results)

    print(format_report(results))
    if args.output:
        directory = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(directory, exist_ok=True)
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)
        print(f"\nresults written to {args.output}")
    disagreeing = [name for name, w in results["workloads"].items() if not w.get("agreement", {}).get("ok", True)]
    if disagreeing:
        print(f"FAILED: ours and torch disagree by more than {AGREEMENT:g} in their probabilities "
              f"on {', '.join(disagreeing)}", file=sys.stderr)
        return None
    return results


def add_full_speed_ratios(results: dict) -> None:
    """ours/torch over the repeats in which the machine ran at full speed: its matmul probe
    within 15% of the best probe of the whole run (a shared VM is slowed by its host at times)."""
    measured = [w[kind] for w in results["workloads"].values() for kind in ("train", "inference")]
    best = max(probe for entry in measured for probe in entry["matmul_probe_gflops"])
    for entry in measured:
        if "paired_ratios" not in entry:
            continue
        fast = [ratio for ratio, probe in zip(entry["paired_ratios"], entry["matmul_probe_gflops"])
                if probe >= FULL_SPEED * best]
        entry["ratio_at_full_speed"] = statistics.median(fast) if fast else None
        entry["repeats_at_full_speed"] = len(fast)


# -- the printed report --------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(cell).rjust(width) if i else str(cell).ljust(width)
                       for i, (cell, width) in enumerate(zip(row, widths)))
             for row in [header] + rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.2f} MiB"


def format_report(results: dict) -> str:
    machine = results["machine"]
    with_torch = any("torch" in w["train"] for w in results["workloads"].values())
    title = f"neural_networks vs PyTorch {machine['torch']}" if with_torch else \
        f"neural_networks alone (PyTorch: {machine['torch']})"
    gemm = ", ".join(f"{library} {entry['gflops']:.1f}" for library, entry in results["matmul"].items())
    size = results["matmul"]["ours"]["size"]
    out = [
        f"{title} — {machine['cpu']}, {machine['threads']} thread(s) each, numpy {machine['numpy']}",
        "Own processes: one worker per library (threads pinned before import), alternating windows.",
        f"float32 matmul {size}² in each process: {gemm} GFLOP/s; allocator: {machine['allocator']}",
        "",
    ]
    header = ["workload", "mode", "batch", "ours samples/s"]
    if with_torch:
        header += ["torch samples/s", "ours/torch", "(range)", "at full speed", "target", "met"]
    header += ["ours GFLOP/s", "ours % of GEMM"]
    if with_torch:
        header += ["torch % of GEMM"]
    rows = []
    for name, w in results["workloads"].items():
        for kind in ("train", "inference"):
            ours = w[kind]["ours"]
            row = [name, kind, str(w["batch"]), f"{ours['samples_per_s']:,.0f}"]
            if with_torch:
                target = results["targets"][kind][name]
                ratio = w[kind]["ratio"]
                low, high = w[kind]["ratio_range"]
                fast_ratio = w[kind]["ratio_at_full_speed"]
                fast = ("-" if fast_ratio is None else f"{fast_ratio:.2f}") + \
                    f" ({w[kind]['repeats_at_full_speed']}/{len(w[kind]['ours']['runs'])})"
                row += [f"{w[kind]['torch']['samples_per_s']:,.0f}", f"{ratio:.2f}",
                        f"{low:.2f}–{high:.2f}", fast, f"≥ {target:.1f}", "yes" if ratio >= target else "NO"]
            row += [f"{ours['gflops']:.1f}", f"{100 * ours['share_of_matmul_rate']:.1f}%"]
            if with_torch:
                row += [f"{100 * w[kind]['torch']['share_of_matmul_rate']:.1f}%"]
            rows.append(row)
    caption = "Throughput: medians of the timed windows"
    if with_torch:
        caption += ("; ours/torch is the median of the per-repeat paired ratios (range: min–max; "
                    "at full speed: over the repeats whose matmul probe was within 15% of the best); "
                    "% of GEMM: the model's matrix-product FLOP rate over its own process' matmul rate")
    out += [caption, _table(header, rows)]
    shares = [share for w in results["workloads"].values() for kind in ("train", "inference")
              for library in ("ours", "torch") if library in w[kind]
              for share in w[kind][library]["others_cpu_share"] if share is not None]
    if shares:
        out.append(f"Other processes used {100 * statistics.median(shares):.0f}% (median) / "
                   f"{100 * max(shares):.0f}% (max) of the CPU during the timing windows "
                   f"(wait for quiet: {'on' if results['settings']['wait_quiet'] else 'off'}).")
    probes = [p for w in results["workloads"].values() for kind in ("train", "inference")
              for p in w[kind]["matmul_probe_gflops"]]
    out.append(f"Machine speed probe (512² matmul before each repeat): {min(probes):.0f}–{max(probes):.0f} "
               f"GFLOP/s, median {statistics.median(probes):.0f} (a low value: the host slowed this VM down).")
    faults = [f"{name} {w['train']['ours']['page_faults_per_call']:,.0f}"
              + (f" (torch {w['train']['torch']['page_faults_per_call']:,.0f})" if "torch" in w["train"] else "")
              for name, w in results["workloads"].items()]
    out += ["Minor page faults per training step (memory mapped in afresh): " + ", ".join(faults), ""]

    rows = []
    for name, w in results["workloads"].items():
        memory = w["memory"]
        rows.append([name, _mib(memory["peak_extra_bytes"]), _mib(memory["activations_bytes"]),
                     _mib(memory["cached_patch_bytes"]), f"{memory['ratio']:.2f}",
                     f"≤ {results['targets']['memory_ratio']:.0f}",
                     "yes" if memory["ratio"] <= results["targets"]["memory_ratio"] else "NO"])
    out += ["Peak extra memory per training step (tracemalloc) vs activations kept for backward",
            _table(["workload", "peak extra", "activations kept", "cached patches", "ratio", "target", "met"],
                   rows), ""]

    for name, w in results["workloads"].items():
        profile = w["profile"]
        rows = []
        for row in profile["rows"]:
            total = row["forward_ms"] + row["backward_ms"]
            rows.append([row["layer"], f"{row['forward_ms']:.3f}", f"{row['backward_ms']:.3f}",
                         f"{100 * total / profile['step_ms']:.1f}%"])
        out += [f"Per-layer time, {name} (ours, batch {w['batch']}, step {profile['step_ms']:.2f} ms)",
                _table(["layer", "forward ms", "backward ms", "% of step"], rows)]
        if profile["wrong_dtypes"]:
            out.append("  NOT float32: " + "; ".join(profile["wrong_dtypes"]))
        if "agreement" in w:
            out.append(f"  ours vs torch, same weights: max |Δ probability| = "
                       f"{w['agreement']['max_abs_diff_probabilities']:.2e}")
        out.append("")
    return "\n".join(out).rstrip()
