"""One library's benchmark worker: ``python -m benchmarks.worker LIBRARY THREADS [--keep-freed-memory]``.

The parent (``benchmarks.run``) starts one worker per library, so that this library's
OpenBLAS threads and PyTorch's OpenMP threads never share a process. A worker is
started once, builds each workload when told, warms up, and is then driven over a
pipe: one JSON request per line on stdin, one JSON reply per line on the original
stdout (anything the libraries print goes to stderr instead).

The thread count is pinned before NumPy or torch is imported: OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS, MKL_NUM_THREADS, NUMEXPR_NUM_THREADS (the parent sets them in the
worker's environment too), and ``torch.set_num_threads``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS", "VECLIB_MAXIMUM_THREADS")
LIBRARIES = ("ours", "torch")


def pin_threads(threads: int) -> None:
    """Must run before NumPy (OpenBLAS) or torch (OpenMP, MKL) is imported."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


class Worker:
    """The state of one worker process: the library, its model and batch for the
    current workload, and the callables one timing window repeats."""

    def __init__(self, library: str, threads: int, keep_freed_memory: bool) -> None:
        self.library, self.threads = library, threads
        self.allocator = "glibc malloc as configured by the environment (default)"
        if keep_freed_memory:
            from .allocator import keep_freed_memory as tune

            self.allocator = tune()
        import numpy  # noqa: F401  (after pin_threads)

        if library == "torch":
            import torch

            torch.set_num_threads(threads)
        self.model = None
        self.steps = {}

    # -- requests --------------------------------------------------------------------------
    def hello(self) -> dict:
        import numpy as np

        info = {"library": self.library, "pid": os.getpid(), "numpy": np.__version__,
                "allocator": self.allocator, "thread_pools": []}
        if self.library == "torch":
            import torch

            info |= {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
        try:
            from threadpoolctl import threadpool_info

            info["thread_pools"] = [
                {key: pool.get(key) for key in ("internal_api", "version", "num_threads", "prefix")}
                for pool in threadpool_info()
            ]
        except ImportError:
            pass
        return info

    def gemm_rate(self, size: int, repeats: int) -> dict:
        """float32 (size × size) matmul rate of this process' own BLAS (NumPy's or torch's)."""
        from . import measure

        if self.library == "torch":
            return measure.torch_matmul_gflops(size, repeats)
        return measure.matmul_gflops(size, repeats)

    def setup(self, workload: str, batch: int, weights_path: str) -> dict:
        """Build the workload's network and batch. ``ours`` draws the weights (seeded) and
        writes them to ``weights_path``; ``torch`` reads them from there."""
        from . import measure
        from .workloads import WORKLOADS, build_ours, build_torch, load_weights, make_batch, save_weights, torch_batch

        spec = WORKLOADS[workload]
        X, labels, Y = make_batch(spec, batch)
        if self.library == "ours":
            model = build_ours(spec)
            save_weights(model, weights_path)
            self.model, self.X, self.Y = model, X, Y
            self.steps = {"train": lambda: measure.ours_train_step(model, X, Y),
                          "inference": lambda: measure.ours_inference(model, X)}
        else:
            model, optimizer = build_torch(spec, load_weights(weights_path))
            Xt, yt = torch_batch(X, labels)
            self.model, self.Xt = model, Xt
            self.steps = {"train": lambda: measure.torch_train_step(model, optimizer, Xt, yt),
                          "inference": lambda: measure.torch_inference(model, Xt)}
        return {}

    def probabilities(self) -> dict:
        """Class probabilities of the batch before any training step (for the agreement check)."""
        if self.library == "ours":
            P = self.model.predict(self.X, batch_size=self.X.shape[0])
        else:
            import torch

            from .measure import torch_inference

            P = torch.softmax(torch_inference(self.model, self.Xt), dim=1).numpy()
        return {"probabilities": P.astype(float).tolist()}

    def calibrate(self, kind: str, warmup: int, window: float, min_calls: int) -> dict:
        """Warm up, then the number of calls that fills about ``window`` seconds."""
        from .measure import clock

        step = self.steps[kind]
        for _ in range(warmup):
            step()
        started = clock()
        step()
        return {"calls": max(min_calls, round(window / max(clock() - started, 1e-9)))}

    def window(self, kind: str, calls: int) -> dict:
        from . import measure

        return measure.timed_window(self.steps[kind], calls)

    def probe(self) -> dict:
        from .measure import matmul_probe

        return {"gflops": matmul_probe()}

    def profile(self, steps: int) -> dict:
        from . import measure

        return measure.profile_layers(self.model, self.X, self.Y, steps)

    def memory(self) -> dict:
        from . import measure

        return measure.peak_step_memory(self.model, self.X, self.Y)


def serve(worker: Worker, requests, replies) -> None:
    for line in requests:
        request = json.loads(line)
        command = request.pop("command")
        if command == "quit":
            break
        try:
            if command.startswith("_") or command not in REQUESTS:
                raise ValueError(f"unknown request {command!r}")
            reply = {"ok": getattr(worker, command)(**request)}
        except Exception:  # reported to the parent, which stops the run
            reply = {"error": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


REQUESTS = ("hello", "gemm_rate", "setup", "probabilities", "calibrate", "window", "probe", "profile", "memory")


def main(argv: list[str]) -> int:
    library, threads = argv[0], int(argv[1])
    if library not in LIBRARIES:
        raise SystemExit(f"library must be one of {LIBRARIES}, got {library!r}")
    pin_threads(threads)
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints must not corrupt the replies
    sys.stdout = sys.stderr
    worker = Worker(library, threads, keep_freed_memory="--keep-freed-memory" in argv[2:])
    serve(worker, sys.stdin, replies)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
