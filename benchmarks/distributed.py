"""Data-parallel training on this machine, measured, and on K machines, modelled.

    python benchmarks/distributed.py                 # needs the mpi extra (mpi4py, mpiexec)
    python benchmarks/distributed.py --rounds 5 --epochs 6 --steps 30

For each workload, in float32 with Adam (same global batch everywhere):

* mlp: 784 → 256 relu → 128 relu → 10 softmax, batch 128;
* cnn: 28×28×1 → conv3×3 16 → maxpool 2 → conv3×3 32 → maxpool 2 → fc 128 → fc 10, batch 64;

it measures training throughput (samples/s) of ``fit`` in three configurations, run in
turn in every round so that the machine's load hits them alike:

* ``1 process × 1 thread`` (OMP/OPENBLAS/MKL threads = 1);
* ``2 ranks × 1 thread``: ``mpiexec -n 2``, ``fit(..., distributed=MPI())``;
* ``1 process × 2 threads``;

and, in the 2-rank runs, the time per step spent in the gradient ``Allreduce`` (which
includes waiting for the slower rank) and the time of the same ``Allreduce`` alone.
The first epoch of every run is a warm-up and is not counted; figures are medians over
rounds. It then prints the model of K machines that README.md ("Distributed training")
explains, from these measured inputs.

Standalone: it imports only ``neural_networks`` (and mpi4py in its MPI workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKLOADS = {
    "mlp": {"batch": 128, "input_shape": (784,), "description": "784-256-128-10, batch 128"},
    "cnn": {"batch": 64, "input_shape": (28, 28, 1), "description": "28×28×1 conv16-pool-conv32-pool-fc128-fc10, batch 64"},
}
CONFIGURATIONS = {  # name: (processes, threads per process)
    "1 process × 1 thread": (1, 1),
    "2 ranks × 1 thread": (2, 1),
    "1 process × 2 threads": (1, 2),
}
LINKS_GBIT = (10, 100)
MACHINES = (2, 4, 8, 16, 32, 64)


# -- one measurement (in a child process, or in every rank of an MPI job) ----------------------
def build_model(workload: str):
    from neural_networks import NeuralNetwork
    from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
    from neural_networks.optimizers import Adam

    if workload == "mlp":
        layers = [FullyConnected(256, "relu"), FullyConnected(128, "relu"), FullyConnected(10, "softmax")]
    else:
        layers = [Conv2D(16, 3, "relu", pad="same"), Pool2D(2, stride=2), Conv2D(32, 3, "relu", pad="same"),
                  Pool2D(2, stride=2), Flatten(), FullyConnected(128, "relu"), FullyConnected(10, "softmax")]
    return NeuralNetwork(layers, optimizer=Adam(lr=1e-3), seed=0, dtype="float32")


def measure(workload: str, epochs: int, steps: int, distributed: bool) -> dict | None:
    """Train ``epochs`` epochs of ``steps`` steps on random data; the figures of epochs 2..
    (rank 0's, under MPI; None on the other ranks)."""
    import numpy as np

    from neural_networks.callbacks import Callback

    spec = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    n_samples = spec["batch"] * steps
    X = rng.standard_normal((n_samples, *spec["input_shape"]), dtype=np.float32)
    y = rng.integers(0, 10, size=n_samples)
    model = build_model(workload)
    strategy = None
    if distributed:
        from neural_networks.distributed import MPI

        strategy = MPI()

    class ResetCounters(Callback):
        def on_epoch_begin(self, epoch):
            if strategy is not None and epoch == 1:  # the first epoch is a warm-up
                strategy.allreduce_seconds, strategy.steps = 0.0, 0

    extra = {"distributed": strategy} if strategy is not None else {}
    history = model.fit(X, y, epochs=epochs, batch_size=spec["batch"], verbose=0,
                        callbacks=[ResetCounters()], **extra)
    epoch_seconds = statistics.median(history["time"][1:])
    result = {"samples_per_second": n_samples / epoch_seconds, "step_seconds": epoch_seconds / steps,
              "parameters": model.count_parameters()}
    if strategy is not None:
        result["allreduce_in_training_seconds"] = strategy.allreduce_seconds / strategy.steps
        result["allreduce_alone_seconds"] = allreduce_alone(strategy, model)
        if not strategy.is_root:
            return None
    return result


def allreduce_alone(strategy, model, repeats: int = 100) -> float:
    """Median time of one in-place Allreduce of a buffer the size of the step's."""
    import numpy as np
    from mpi4py import MPI

    buffer = np.zeros(model.count_parameters() + 5, dtype=np.float32)
    times = []
    for _ in range(repeats):
        strategy.comm.Barrier()
        started = time.perf_counter()
        strategy.comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# -- the driver ---------------------------------------------------------------------------------
def run_configuration(workload: str, configuration: str, args) -> dict:
    processes, threads = CONFIGURATIONS[configuration]
    environment = dict(os.environ)
    environment |= {name: str(threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    source = Path(__file__).resolve().parents[1] / "src"
    environment["PYTHONPATH"] = os.pathsep.join([str(source), environment.get("PYTHONPATH", "")])
    worker = [sys.executable, str(Path(__file__).resolve()), "--worker", workload,
              "--epochs", str(args.epochs), "--steps", str(args.steps)]
    if processes > 1:
        worker = [args.mpiexec, "-n", str(processes), *worker, "--distributed"]
    done = subprocess.run(worker, env=environment, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"{configuration} on {workload} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ring_allreduce_seconds(n_bytes: float, machines: int, gbit_per_second: float) -> float:
    """A ring allreduce sends and receives 2(K−1)/K of the buffer on every link."""
    return 2 * (machines - 1) / machines * n_bytes / (gbit_per_second * 1e9 / 8)


def model_table(name: str, measured: dict) -> str:
    """Scaling efficiency on K machines: compute from the 1-thread step time, communication
    from the ring formula; no overlap of the two (the gradient Allreduce follows backward)."""
    step = measured["1 process × 1 thread"]["step_seconds"]
    n_bytes = 4 * measured["1 process × 1 thread"]["parameters"]
    lines = [f"{name}: {n_bytes / 1e6:.2f} MB reduced per step; compute {step * 1e3:.2f} ms per step of the "
             f"global batch on one machine (1 thread)",
             "| K | ring time 10 Gbit/s | ring time 100 Gbit/s | weak eff. 10 | weak eff. 100 | "
             "strong eff. 10 | strong eff. 100 |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for machines in MACHINES:
        rings = [ring_allreduce_seconds(n_bytes, machines, link) for link in LINKS_GBIT]
        weak = [step / (step + ring) for ring in rings]                               # batch per machine fixed
        strong = [(step / machines) / (step / machines + ring) for ring in rings]     # global batch fixed
        lines.append(f"| {machines} | {rings[0] * 1e3:.2f} ms | {rings[1] * 1e3:.3f} ms | {weak[0]:.0%} | "
                     f"{weak[1]:.0%} | {strong[0]:.0%} | {strong[1]:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="per run; the first is a warm-up")
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--mpiexec", default=None, help="default: mpiexec beside this Python, else on PATH")
    parser.add_argument("--worker", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    parser.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = measure(args.worker, args.epochs, args.steps, args.distributed)
        if result is not None:
            print(json.dumps(result), flush=True)
        return
    beside = Path(sys.executable).with_name("mpiexec")
    args.mpiexec = args.mpiexec or (str(beside) if beside.exists() else shutil.which("mpiexec"))
    if args.mpiexec is None:
        raise SystemExit('no mpiexec: pip install "neural-networks[mpi]"')
    results = {workload: {configuration: [] for configuration in CONFIGURATIONS} for workload in args.workloads}
    for round_index in range(args.rounds):
        for workload in args.workloads:
            for configuration in CONFIGURATIONS:
                results[workload][configuration].append(run_configuration(workload, configuration, args))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print(f"{args.rounds} rounds × {args.epochs - 1} measured epochs × {args.steps} steps, float32, Adam\n")
    print("| workload | configuration | samples/s | ms per step | Allreduce in training, ms/step | "
          "Allreduce alone, ms |")
    print("|---|---|---:|---:|---:|---:|")
    medians = {}
    for workload in args.workloads:
        medians[workload] = {}
        for configuration, runs in results[workload].items():
            median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            medians[workload][configuration] = median
            reduce_in = median.get("allreduce_in_training_seconds")
            reduce_alone = median.get("allreduce_alone_seconds")
            print(f"| {workload} ({WORKLOADS[workload]['description']}) | {configuration} | "
                  f"{median['samples_per_second']:,.0f} | {median['step_seconds'] * 1e3:.2f} | "
                  f"{'' if reduce_in is None else f'{reduce_in * 1e3:.3f}'} | "
                  f"{'' if reduce_alone is None else f'{reduce_alone * 1e3:.3f}'} |")
    for workload in args.workloads:
        print()
        print(model_table(workload, medians[workload]))
    print("\n" + json.dumps(medians))


if __name__ == "__main__":
    main()
