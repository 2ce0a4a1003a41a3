"""Measurements: interleaved throughput, per-layer times, peak memory per step, matmul rate."""

from __future__ import annotations

import functools
import gc
import os
import statistics
import time
import tracemalloc
from typing import Callable

import numpy as np

clock = time.perf_counter

#: fewest calls in one timing window
MIN_CALLS = 3


# -- one step of each library ----------------------------------------------------------------
def ours_train_step(model, X: np.ndarray, Y: np.ndarray) -> None:
    """forward + loss + backward + SGD update, through the public model API."""
    Y_hat = model.forward(X)
    model.backward(Y, Y_hat)
    model.update()


def ours_inference(model, X: np.ndarray) -> np.ndarray:
    return model.predict(X, batch_size=X.shape[0])


def torch_train_step(model, optimizer, X, labels) -> None:
    import torch.nn.functional as F

    optimizer.zero_grad()
    loss = F.cross_entropy(model(X), labels)
    loss.backward()
    optimizer.step()


def torch_inference(model, X):
    import torch

    with torch.no_grad():
        return model(X)


# -- other processes ------------------------------------------------------------------------
class CpuMonitor:
    """CPU time used by *other* processes (Linux /proc), as a fraction of all cores.

    The benchmark shares the machine: another busy process slows a 2-thread BLAS call
    far more than its own share. Every timed window records this fraction, and
    ``wait_until_quiet`` can hold the next window until the machine is idle.
    """

    def __init__(self) -> None:
        self.available = os.path.exists("/proc/stat") and os.path.exists("/proc/self/stat")
        self.ticks = os.sysconf("SC_CLK_TCK") if self.available else 100
        self.cores = os.cpu_count() or 1

    def sample(self):
        """(wall time, busy ticks of the machine, ticks of this process), or None."""
        if not self.available:
            return None
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:9]]
        with open("/proc/self/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        busy = sum(values) - values[3] - values[4]  # all but idle and iowait
        return clock(), busy, int(fields[11]) + int(fields[12])  # utime + stime

    def others(self, start, end) -> float | None:
        """Share of all cores used by other processes between two samples."""
        if start is None or end is None or end[0] <= start[0]:
            return None
        other_ticks = (end[1] - start[1]) - (end[2] - start[2])
        return max(0.0, other_ticks / (self.ticks * self.cores * (end[0] - start[0])))

    def wait_until_quiet(self, threshold: float = 0.05, settle: float = 0.25, timeout: float = 10.0) -> bool:
        """Wait (at most ``timeout`` s) for a ``settle``-second stretch in which other
        processes use less than ``threshold`` of the CPU. True when that happened."""
        if not self.available:
            return True
        deadline = clock() + timeout
        while clock() < deadline:
            start = self.sample()
            time.sleep(settle)
            busy = self.others(start, self.sample())
            if busy is not None and busy < threshold:
                return True
        return False


MONITOR = CpuMonitor()


def minor_page_faults() -> int:
    """Minor page faults of this process so far (memory the OS had to map in)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except ImportError:  # not POSIX
        return 0


# -- throughput ------------------------------------------------------------------------------
def interleaved_throughput(
    steps: dict[str, Callable[[], object]], batch: int, repeats: int, window: float, warmup: int,
    pause: float = 0.2, wait_quiet: bool = False,
) -> dict[str, dict]:
    """Samples/s of each callable (one call = one batch), timed in turns: a, b, a, b, ...

    Each library first runs ``warmup`` calls; one more timed call sizes its timing
    window to about ``window`` seconds (at least ``MIN_CALLS`` calls), each preceded by
    one untimed call. Every repeat then times one window of every
    library in turn, so slow drifts of the machine hit all of them alike. Reports the
    median over repeats (and every run), with the CPU share other processes used
    during each window and the minor page faults per call.

    Before every window the process sleeps ``pause`` seconds: the idle worker threads
    of the library timed just before (OpenBLAS, OpenMP) spin for a while before they
    sleep, and would compete with this one for the cores. With ``wait_quiet``, each
    window then waits (up to 10 s) for other processes to leave the CPU idle.
    """
    calls = {}
    for name, step in steps.items():
        for _ in range(warmup):
            step()
        started = clock()
        step()
        calls[name] = max(MIN_CALLS, round(window / max(clock() - started, 1e-9)))
    runs: dict[str, list[float]] = {name: [] for name in steps}
    others: dict[str, list] = {name: [] for name in steps}
    faults: dict[str, list[float]] = {name: [] for name in steps}
    probes = []
    for _ in range(repeats):
        probes.append(matmul_probe())
        for name, step in steps.items():
            time.sleep(pause)
            if wait_quiet:
                MONITOR.wait_until_quiet()
            step()  # untimed: caches and clocks warm again after the pause
            n = calls[name]
            before, faults_before = MONITOR.sample(), minor_page_faults()
            started = clock()
            for _ in range(n):
                step()
            elapsed = clock() - started
            faults[name].append((minor_page_faults() - faults_before) / n)
            others[name].append(MONITOR.others(before, MONITOR.sample()))
            runs[name].append(n * batch / elapsed)
    results = {
        name: {
            "samples_per_s": statistics.median(values),
            "runs": values,
            "calls_per_run": calls[name],
            "others_cpu_share": others[name],
            "page_faults_per_call": statistics.median(faults[name]),
        }
        for name, values in runs.items()
    }
    results["matmul_probe_gflops"] = probes
    return results


def matmul_probe(size: int = 512, seconds: float = 0.1) -> float:
    """GFLOP/s of back-to-back float32 (size × size) matmuls for about ``seconds``: a
    gauge of how fast the machine runs right now (a virtual machine's host can slow it)."""
    A = np.full((size, size), 0.5, dtype=np.float32)
    out = np.empty_like(A)
    np.matmul(A, A, out=out)
    count, started = 0, clock()
    while clock() - started < seconds:
        np.matmul(A, A, out=out)
        count += 1
    return 2 * size**3 * count / (clock() - started) / 1e9


# -- per-layer profile of this library ---------------------------------------------------------
class LayerTimer:
    """Wraps every layer's forward/backward (on the instance) to time it; ``restore()`` undoes it.

    A layer's ``backward`` that calls its own ``backward_pre_activation`` is counted once.
    Every array a layer returns or stores as a gradient is checked for its dtype.
    """

    METHODS = ("forward", "backward", "backward_pre_activation")

    def __init__(self, model, dtype=np.float32) -> None:
        self.model, self.dtype = model, np.dtype(dtype)
        self.times = [{"forward": 0.0, "backward": 0.0} for _ in model.layers]
        self.depth = [0] * len(model.layers)
        self.wrong_dtypes: set[str] = set()
        for index, layer in enumerate(model.layers):
            for method in self.METHODS:
                if hasattr(layer, method):
                    setattr(layer, method, self._wrap(index, layer, method, getattr(layer, method)))

    def _wrap(self, index: int, layer, method: str, function: Callable) -> Callable:
        phase = "forward" if method == "forward" else "backward"

        @functools.wraps(function)  # keeps the signature: the model inspects it
        def timed(*args, **kwargs):
            self.depth[index] += 1
            started = clock()
            try:
                result = function(*args, **kwargs)
            finally:
                self.depth[index] -= 1
            if self.depth[index] == 0:
                self.times[index][phase] += clock() - started
            self._check(f"{layer.name}.{method} output", result)
            return result

        return timed

    def _check(self, what: str, array) -> None:
        if isinstance(array, np.ndarray) and array.dtype != self.dtype:
            self.wrong_dtypes.add(f"{what}: {array.dtype}")

    def check_state(self) -> None:
        """Parameters, gradients and cached arrays must all be in the model dtype."""
        for layer in self.model.layers:
            for kind in ("parameters", "gradients", "cache"):
                for key, value in getattr(layer, kind).items():
                    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                        self._check(f"{layer.name}.{kind}[{key!r}]", value)

    def reset(self) -> None:
        self.times = [{"forward": 0.0, "backward": 0.0} for _ in self.model.layers]

    def restore(self) -> None:
        for layer in self.model.layers:
            for method in self.METHODS:
                layer.__dict__.pop(method, None)


def profile_layers(model, X: np.ndarray, Y: np.ndarray, steps: int) -> dict:
    """Median time of each layer's forward and backward, of the loss and of the update."""
    timer = LayerTimer(model)
    samples: dict[str, list[float]] = {}

    def record(key: str, value: float) -> None:
        samples.setdefault(key, []).append(value)

    try:
        for step in range(steps + 1):  # the first step is a warm-up
            timer.reset()
            started = clock()
            Y_hat = model.forward(X)
            forward_done = clock()
            if step == 0:
                timer.check_state()
            model.backward(Y, Y_hat)
            backward_done = clock()
            if step == 0:
                timer.check_state()
            model.update()
            update_done = clock()
            if step == 0:
                continue
            for index, phases in enumerate(timer.times):
                record(f"{index}.forward", phases["forward"])
                record(f"{index}.backward", phases["backward"])
            layers_backward = sum(phases["backward"] for phases in timer.times)
            record("loss", (backward_done - forward_done) - layers_backward)
            record("update", update_done - backward_done)
            record("step", update_done - started)
    finally:
        timer.restore()
    median = {key: statistics.median(values) for key, values in samples.items()}
    rows = []
    for index, layer in enumerate(model.layers):
        rows.append({
            "layer": describe_layer(index, layer),
            "forward_ms": 1e3 * median[f"{index}.forward"],
            "backward_ms": 1e3 * median[f"{index}.backward"],
        })
    rows.append({"layer": "loss (+ fused softmax/CE gradient)", "forward_ms": 0.0,
                 "backward_ms": 1e3 * median["loss"]})
    rows.append({"layer": "update (SGD, clear gradients)", "forward_ms": 0.0,
                 "backward_ms": 1e3 * median["update"]})
    return {"rows": rows, "step_ms": 1e3 * median["step"], "wrong_dtypes": sorted(timer.wrong_dtypes)}


def describe_layer(index: int, layer) -> str:
    kind = type(layer).__name__
    if kind == "Conv2D":
        kh, kw = layer.kernel_shape
        detail = f"{kh}x{kw}, {layer.n_in}→{layer.n_out}, {layer.activation.name}"
    elif kind == "FullyConnected":
        detail = f"{layer.n_in}→{layer.n_out}, {layer.activation.name}"
    elif kind == "Pool2D":
        detail = f"{layer.mode} {layer.kernel_shape[0]}x{layer.kernel_shape[1]}/{layer.stride[0]}"
    else:
        detail = ""
    return f"{index} {kind}" + (f" ({detail})" if detail else "")


# -- memory -----------------------------------------------------------------------------------
PATCH_KEYS = ("patch", "window", "column")


def cache_bytes(model) -> dict[str, int]:
    """Bytes of the arrays in every layer's cache; views of one buffer count once.

    ``activations`` leaves out window/patch matrices (keys containing "patch" or
    "window"), which are reported as ``patches``.
    """
    seen: dict[tuple[int, bool], int] = {}
    for layer in model.layers:
        for key, value in layer.cache.items():
            if not isinstance(value, np.ndarray):
                continue
            root = value
            while isinstance(root.base, np.ndarray):
                root = root.base
            is_patch = any(word in key.lower() for word in PATCH_KEYS)
            slot = (id(root), is_patch)
            seen[slot] = max(seen.get(slot, 0), value.nbytes)
    activations = sum(size for (_, is_patch), size in seen.items() if not is_patch)
    patches = sum(size for (_, is_patch), size in seen.items() if is_patch)
    return {"activations": activations, "patches": patches}


def peak_step_memory(model, X: np.ndarray, Y: np.ndarray) -> dict:
    """Peak bytes allocated during one training step (tracemalloc, after a warm-up step),
    next to the arrays the forward pass keeps for backward."""
    ours_train_step(model, X, Y)  # warm-up: every parameter, gradient and buffer exists
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        Y_hat = model.forward(X)
        kept = cache_bytes(model)
        model.backward(Y, Y_hat)
        model.update()
        del Y_hat
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    extra = peak - baseline
    return {
        "peak_extra_bytes": extra,
        "activations_bytes": kept["activations"],
        "cached_patch_bytes": kept["patches"],
        "ratio": extra / kept["activations"] if kept["activations"] else float("nan"),
    }


# -- the machine ------------------------------------------------------------------------------
def matmul_gflops(size: int, repeats: int) -> dict:
    """float32 (size × size) @ (size × size) with NumPy: median GFLOP/s over ``repeats`` runs."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((size, size), dtype=np.float32)
    B = rng.standard_normal((size, size), dtype=np.float32)
    C = np.empty((size, size), dtype=np.float32)
    np.matmul(A, B, out=C)
    rates = []
    for _ in range(repeats):
        started = clock()
        np.matmul(A, B, out=C)
        rates.append(2 * size**3 / (clock() - started) / 1e9)
    return {"size": size, "gflops": statistics.median(rates), "runs": rates}
