"""Run every measurement, print the tables and write the JSON results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys

import numpy as np

from . import measure
from .workloads import WORKLOADS, build_ours, build_torch, make_batch, matmul_flops, torch_batch

#: a repeat ran "at full speed" when its matmul probe reached this share of the run's best
FULL_SPEED = 0.85

#: ours/torch ratios the library aims for on this benchmark
TARGETS = {
    "train": {"mlp": 0.9, "cnn": 0.6, "cifar": 0.6},
    "inference": {"mlp": 0.8, "cnn": 0.8, "cifar": 0.8},
    "memory_ratio": 3.0,
}


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


def import_torch(args, threads: int):
    if args.no_torch:
        return None, "disabled (--no-torch)"
    try:
        import torch
    except Exception as error:  # ImportError, or a broken install
        return None, f"unavailable ({type(error).__name__}: {error})"
    torch.set_num_threads(threads)
    return torch, torch.__version__


def machine_info(threads: int, thread_method: str, torch_version: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {key: pool.get(key) for key in ("internal_api", "version", "num_threads", "architecture",
                                             "threading_layer", "prefix")}
            for pool in threadpool_info()
        ]
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "thread_limit_method": thread_method,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "thread_pools": blas,
        "torch": torch_version,
        "platform": platform.platform(),
    }


def check_agreement(torch, ours_model, torch_model, X, labels) -> dict:
    """Both networks start from the same weights: their outputs must agree."""
    probabilities = ours_model.predict(X, batch_size=X.shape[0])
    Xt, _ = torch_batch(X, labels)
    with torch.no_grad():
        torch_probabilities = torch.softmax(torch_model(Xt), dim=1).numpy()
    return {"max_abs_diff_probabilities": float(np.max(np.abs(probabilities - torch_probabilities)))}


def run_workload(name: str, args, settings: dict, torch) -> dict:
    workload = WORKLOADS[name]
    batch = args.batch or workload.batch
    X, labels, Y = make_batch(workload, batch)
    model = build_ours(workload)
    flops = matmul_flops(workload)
    result = {"description": workload.description, "batch": batch,
              "matmul_flops_per_sample": flops}

    train_steps = {"ours": lambda: measure.ours_train_step(model, X, Y)}
    inference_steps = {"ours": lambda: measure.ours_inference(model, X)}
    if torch is not None:
        torch_model, torch_optimizer = build_torch(workload, model)
        result["agreement"] = check_agreement(torch, model, torch_model, X, labels)
        Xt, yt = torch_batch(X, labels)
        train_steps["torch"] = lambda: measure.torch_train_step(torch_model, torch_optimizer, Xt, yt)
        inference_steps["torch"] = lambda: measure.torch_inference(torch_model, Xt)

    common = dict(batch=batch, repeats=settings["repeats"], window=settings["window_s"],
                  warmup=settings["warmup"], pause=settings["pause_s"], wait_quiet=settings["wait_quiet"])
    for kind, steps, flop_key in (("train", train_steps, "train"),
                                  ("inference", inference_steps, "forward")):
        print(f"  {name}: {kind} throughput ...", file=sys.stderr, flush=True)
        measured = measure.interleaved_throughput(steps, **common)
        probes = measured.pop("matmul_probe_gflops")
        for library, entry in measured.items():
            entry["gflops"] = entry["samples_per_s"] * flops[flop_key] / 1e9
        measured["matmul_probe_gflops"] = probes
        if "torch" in measured:
            # Each repeat timed ours and torch one right after the other: the median of these
            # paired ratios is steadier than a ratio of medians when the machine drifts.
            pairs = [a / b for a, b in zip(measured["ours"]["runs"], measured["torch"]["runs"])]
            measured["ratio"] = statistics.median(pairs)
            measured["ratio_of_medians"] = measured["ours"]["samples_per_s"] / measured["torch"]["samples_per_s"]
            measured["ratio_range"] = [min(pairs), max(pairs)]
            measured["paired_ratios"] = pairs
        result[kind] = measured

    print(f"  {name}: per-layer profile and memory ...", file=sys.stderr, flush=True)
    result["profile"] = measure.profile_layers(model, X, Y, settings["profile_steps"])
    result["memory"] = measure.peak_step_memory(model, X, Y)
    return result


def run_all(args, thread_method: str, command: str) -> dict:
    settings = settings_for(args)
    torch, torch_version = import_torch(args, args.threads)
    results = {
        "command": command,
        "quick": bool(args.quick),
        "settings": settings,
        "machine": machine_info(args.threads, thread_method, torch_version) | {"allocator": args.allocator},
        "targets": TARGETS,
    }
    print("matmul rate ...", file=sys.stderr, flush=True)
    results["matmul"] = measure.matmul_gflops(settings["matmul_size"], settings["matmul_repeats"])
    results["workloads"] = {}
    for name in args.workloads:
        results["workloads"][name] = run_workload(name, args, settings, torch)
        rate = results["matmul"]["gflops"]
        for kind in ("train", "inference"):
            for library in ("ours", "torch"):
                entry = results["workloads"][name][kind].get(library)
                if entry is not None:
                    entry["share_of_matmul_rate"] = entry["gflops"] / rate
    add_full_speed_ratios(results)

    print(format_report(results))
    if args.output:
        directory = os.path.dirname(os.path.abspath(args.output))
        os.makedirs(directory, exist_ok=True)
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=2)
        print(f"\nresults written to {args.output}")
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
    out = [
        f"{title} — {machine['cpu']}, {machine['threads']} thread(s) "
        f"({machine['thread_limit_method']}), numpy {machine['numpy']}",
        f"float32 matmul {results['matmul']['size']}²: {results['matmul']['gflops']:.1f} GFLOP/s (numpy); "
        f"allocator: {machine['allocator']}",
        "",
    ]
    header = ["workload", "mode", "batch", "ours samples/s"]
    if with_torch:
        header += ["torch samples/s", "ours/torch", "(range)", "at full speed", "target", "met"]
    header += ["ours GFLOP/s", "% of matmul"]
    if with_torch:
        header += ["torch % of matmul"]
    rows = []
    for name, w in results["workloads"].items():
        for kind in ("train", "inference"):
            ours = w[kind]["ours"]
            row = [name, kind, str(w["batch"]), f"{ours['samples_per_s']:,.0f}"]
            if with_torch:
                if "torch" in w[kind]:
                    target = results["targets"][kind][name]
                    ratio = w[kind]["ratio"]
                    low, high = w[kind]["ratio_range"]
                    fast_ratio = w[kind]["ratio_at_full_speed"]
                    fast = ("-" if fast_ratio is None else f"{fast_ratio:.2f}") + \
                        f" ({w[kind]['repeats_at_full_speed']}/{len(w[kind]['ours']['runs'])})"
                    row += [f"{w[kind]['torch']['samples_per_s']:,.0f}", f"{ratio:.2f}",
                            f"{low:.2f}–{high:.2f}", fast, f"≥ {target:.1f}", "yes" if ratio >= target else "NO"]
                else:
                    row += ["-", "-", "-", "-", "-", "-"]
            row += [f"{ours['gflops']:.1f}", f"{100 * ours['share_of_matmul_rate']:.1f}%"]
            if with_torch:
                row += [f"{100 * w[kind]['torch']['share_of_matmul_rate']:.1f}%" if "torch" in w[kind] else "-"]
            rows.append(row)
    caption = "Throughput: medians of the timed repeats"
    if with_torch:
        caption += (" (interleaved); ours/torch is the median of the per-repeat ratios (range: min–max; "
                    "at full speed: over the repeats whose matmul probe was within 15% of the best)")
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
