"""Measurements made inside one worker process: timing windows, per-layer times, peak
memory per step, and the float32 matmul rate of the process' own BLAS."""

from __future__ import annotations

import functools
import gc
import statistics
import tracemalloc
from typing import Callable

import numpy as np

from .cpu import MONITOR, clock, minor_page_faults


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

    model.train()  # batch statistics, as our fit
    optimizer.zero_grad()
    loss = F.cross_entropy(model(X), labels)
    loss.backward()
    optimizer.step()


def torch_inference(model, X):
    import torch

    model.eval()  # running statistics, as our predict
    with torch.no_grad():
        return model(X)


# -- throughput ------------------------------------------------------------------------------
def timed_window(step: Callable[[], object], calls: int) -> dict:
    """One timing window: an untimed call (caches and clocks warm again after the pause
    the parent left before it), then ``calls`` timed calls.

    Returns the elapsed seconds, the minor page faults per call and the share of the
    CPU other processes (the other library's idle worker included) used meanwhile.
    """
    step()
    before, faults_before = MONITOR.sample(), minor_page_faults()
    started = clock()
    for _ in range(calls):
        step()
    elapsed = clock() - started
    return {
        "seconds": elapsed,
        "calls": calls,
        "page_faults_per_call": (minor_page_faults() - faults_before) / calls,
        "others_cpu_share": MONITOR.others(before, MONITOR.sample()),
    }


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
    return _matmul_rate(lambda: np.matmul(A, B, out=C), size, repeats)


def torch_matmul_gflops(size: int, repeats: int) -> dict:
    """The same float32 matmul rate, measured with torch (its MKL/oneDNN, its threads)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    A = torch.randn(size, size, generator=generator, dtype=torch.float32)
    B = torch.randn(size, size, generator=generator, dtype=torch.float32)
    C = torch.empty(size, size, dtype=torch.float32)
    return _matmul_rate(lambda: torch.mm(A, B, out=C), size, repeats)


def _matmul_rate(multiply, size: int, repeats: int) -> dict:
    """GFLOP/s of ``multiply()`` (one size × size product): one warm-up, then the median
    over ``repeats`` timed calls."""
    multiply()
    rates = []
    for _ in range(repeats):
        started = clock()
        multiply()
        rates.append(2 * size**3 / (clock() - started) / 1e9)
    return {"size": size, "gflops": statistics.median(rates), "runs": rates}
