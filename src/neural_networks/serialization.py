"""Saving and loading models and checkpoints, safely.

File format: one NumPy ``.npz`` archive (a zip of ``.npy`` arrays), read with
``allow_pickle=False`` so loading never executes code. It holds

* ``__header__``: UTF-8 JSON as a uint8 array: ``{"format": "neural_networks",
  "version": 1, "kind": "model" | "checkpoint", "architecture": {...layers, loss,
  dtype, input_shape, optimizer}, "metadata": {...class names, standardisation},
  "parameters": [names], "checkpoint": {...} or null}``;
* ``param:<layer>.<key>``: every parameter array, in the model's dtype;
* for checkpoints, ``optimizer:<param>:<key>`` and ``callback:<i>:<key>`` state arrays.

Writes are atomic: a temporary file in the same folder is written, flushed and
fsynced, then renamed over the target, so a crash leaves the previous file intact.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import FormatError
from .utils.files import atomic_file

if TYPE_CHECKING:
    from .training import History

FORMAT_NAME = "neural_networks"
FORMAT_VERSION = 1
HEADER_KEY = "__header__"
_NUMERIC_KINDS = "biuf"


# -- archives --------------------------------------------------------------------------------
def write_archive(path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write a header and named arrays to ``path`` (an .npz file)."""
    path = Path(path)
    payload = {HEADER_KEY: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    payload |= {name: np.asarray(array) for name, array in arrays.items()}
    with atomic_file(path) as handle:
        np.savez(handle, **payload)
    return path


def read_archive(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and check a file written by ``write_archive``; any problem is a FormatError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array is no context manager
            raise FormatError(f"{path}: not a neural_networks model file (a bare .npy array)")
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FormatError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
            NotImplementedError, RuntimeError, UnicodeDecodeError, MemoryError, OverflowError) as error:
        raise FormatError(f"{path}: not a readable neural_networks model file ({error})") from None
    header = _parse_header(path, arrays.pop(HEADER_KEY, None))
    for name, array in arrays.items():
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise FormatError(f"{path}: array {name!r} has non-numeric dtype {array.dtype}")
    return header, arrays


def _parse_header(path: Path, raw) -> dict:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise FormatError(f"{path}: not a neural_networks model file (no header)")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(f"{path}: corrupted header ({error})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise FormatError(f"{path}: not a neural_networks model file")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise FormatError(f"{path}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: written by a newer neural_networks (format version {version}; this "
            f"version reads up to {FORMAT_VERSION}); upgrade the library to load it"
        )
    if not isinstance(header.get("architecture"), dict):
        raise FormatError(f"{path}: header has no architecture")
    return header


# -- models ------------------------------------------------------------------------------------
def model_header(model, kind: str = "model", checkpoint: dict | None = None) -> dict:
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": kind,
        "architecture": model.get_config(),
        "metadata": _jsonable(model.metadata),
        "parameters": list(model.named_parameters()),
        "checkpoint": checkpoint,
    }


def save_model(model, path) -> Path:
    """Write the model's architecture, metadata and parameters to ``path`` atomically."""
    if not model.built:
        raise ValueError("save: the model has no parameters yet; fit it or call build(input_shape) first")
    arrays = {f"param:{name}": array for name, array in model.named_parameters().items()}
    return write_archive(path, model_header(model), arrays)


def load_model(path):
    """Load a model saved by ``save_model`` (or a checkpoint's model part)."""
    header, arrays = read_archive(path)
    return model_from_archive(Path(path), header, arrays)


def model_from_archive(path: Path, header: dict, arrays: dict):
    """Rebuild a model from a checked archive and copy its parameters in."""
    from .layers import layer_from_config
    from .models import NeuralNetwork
    from .optimizers import optimizer_from_config

    architecture = header["architecture"]
    _check_sizes(path, architecture, arrays)
    try:
        layers = [layer_from_config(config) for config in architecture["layers"]]
        optimizer = optimizer_from_config(architecture["optimizer"])
        model = NeuralNetwork(layers, loss=architecture["loss"], optimizer=optimizer,
                              dtype=architecture["dtype"], seed=0)
        model.seed = architecture.get("seed")
        model.build(tuple(architecture["input_shape"]))
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError, NotImplementedError, MemoryError, OverflowError) as error:
        raise FormatError(f"{path}: the architecture cannot be rebuilt ({error})") from None
    _copy_parameters(path, model, arrays)
    model.metadata = _metadata(path, header)
    return model


_MAX_INPUT_ELEMENTS = 10**8


def _check_sizes(path: Path, architecture: dict, arrays: dict) -> None:
    """Refuse sizes the stored arrays cannot back before building anything, so a
    forged header cannot make the loader allocate gigabytes."""
    largest = max((a.size for name, a in arrays.items() if name.startswith("param:")), default=0)
    layers = architecture.get("layers")
    if not isinstance(layers, list):
        raise FormatError(f"{path}: the architecture has no list of layers")
    for index, config in enumerate(layers):
        n_out = config.get("n_out") if isinstance(config, dict) else None
        if isinstance(n_out, int) and n_out > largest:
            raise FormatError(f"{path}: layer {index} declares {n_out} outputs but no stored "
                              f"parameter has that many values")
    shape = architecture.get("input_shape")
    if (not isinstance(shape, list) or not all(isinstance(n, int) and n > 0 for n in shape)
            or np.prod(shape, dtype=np.float64) > _MAX_INPUT_ELEMENTS):
        raise FormatError(f"{path}: invalid input shape {shape!r}")


def _metadata(path: Path, header: dict) -> dict:
    metadata = header.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise FormatError(f"{path}: the header's metadata is not a JSON object")
    return dict(metadata)


def _copy_parameters(path: Path, model, arrays: dict) -> None:
    expected = model.named_parameters()
    stored = {name[len("param:"):] for name in arrays if name.startswith("param:")}
    if stored != set(expected):
        missing, extra = sorted(set(expected) - stored), sorted(stored - set(expected))
        raise FormatError(f"{path}: parameters do not match the architecture "
                          f"(missing {missing}, unexpected {extra})")
    for name, target in expected.items():
        array = arrays[f"param:{name}"]
        if array.shape != target.shape or array.dtype.kind != "f":
            raise FormatError(f"{path}: parameter {name} has shape {array.shape} and dtype "
                              f"{array.dtype}; the architecture needs {target.shape} floats")
        if not np.all(np.isfinite(array)):
            raise FormatError(f"{path}: parameter {name} contains nan or inf")
        target[...] = array


def _jsonable(value):
    """Metadata as plain JSON values (arrays become lists)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- checkpoints -------------------------------------------------------------------------------
def checkpoint_file(path) -> Path:
    """A checkpoint path: a .npz file as given, or ``<folder>/last.npz`` for a folder."""
    path = Path(path)
    return path if path.suffix == ".npz" else path / "last.npz"


def save_checkpoint(model, path, *, epoch: int, history, callbacks=()) -> Path:
    """Everything needed to continue training exactly after ``epoch`` completed epochs:
    parameters, optimizer state (with its scheduler), the data-order random state, the
    history and every callback's state."""
    optimizer_state = model.optimizer.state_dict()
    arrays = {f"param:{name}": array for name, array in model.named_parameters().items()}
    for name, buffers in optimizer_state["state"].items():
        arrays |= {f"optimizer:{name}:{key}": value for key, value in buffers.items()}
    callback_states = []
    for index, callback in enumerate(callbacks):
        state = dict(callback.get_state())
        arrays |= {f"callback:{index}:{key}": value for key, value in state.pop("arrays", {}).items()}
        callback_states.append({"type": type(callback).__name__, "state": _jsonable(state)})
    checkpoint = {
        "epoch": int(epoch),
        "optimizer": {k: optimizer_state[k] for k in ("config", "iterations", "epoch")},
        "rng": model.rng.bit_generator.state,
        "history": history.to_dict(),
        "callbacks": callback_states,
    }
    return write_archive(path, model_header(model, "checkpoint", _jsonable(checkpoint)), arrays)


def restore_checkpoint(model, path, callbacks=()) -> tuple[int, History]:
    """Load a checkpoint into ``model`` (same architecture) and its ``callbacks``.

    Returns (completed epochs, history so far)."""
    from .training import History

    path = Path(path)
    header, arrays = read_archive(path)
    checkpoint = header.get("checkpoint")
    if header.get("kind") != "checkpoint" or not isinstance(checkpoint, dict):
        raise FormatError(f"{path}: a model file, not a training checkpoint (no optimizer state)")
    saved = header["architecture"]
    current = json.loads(json.dumps(_jsonable(model.get_config())))
    differs = [key for key in ("layers", "loss", "dtype") if saved.get(key) != current[key]]
    shapes = (saved.get("input_shape"), current["input_shape"])
    if None not in shapes and shapes[0] != shapes[1]:
        differs.append("input_shape")
    if differs:
        raise ValueError(f"{path}: this model does not match the checkpoint ({', '.join(differs)} "
                         f"differ); resume with the model the checkpoint was written for")
    saved_callbacks = checkpoint.get("callbacks")
    if isinstance(saved_callbacks, list) and all(isinstance(e, dict) for e in saved_callbacks):
        _check_callback_types([entry.get("type") for entry in saved_callbacks], callbacks)
    if not model.built:
        try:
            model.build(tuple(header["architecture"]["input_shape"]))
        except (KeyError, TypeError, ValueError, MemoryError, OverflowError) as error:
            raise FormatError(f"{path}: the checkpoint has no usable input shape ({error})") from None
    _copy_parameters(path, model, arrays)
    try:
        optimizer = checkpoint["optimizer"]
        state = {}
        for name, value in arrays.items():
            if name.startswith("optimizer:"):
                _, param, key = name.split(":", 2)
                state.setdefault(param, {})[key] = value
        model.optimizer.load_state_dict({**optimizer, "state": state})
        model.rng.bit_generator.state = checkpoint["rng"]
        history = History.from_dict(checkpoint["history"])
        _restore_callbacks(checkpoint["callbacks"], arrays, callbacks)
        epoch = int(checkpoint["epoch"])
    except FormatError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise FormatError(f"{path}: the checkpoint cannot be restored ({error})") from None
    model.metadata = _metadata(path, header) or model.metadata
    return epoch, history


def _restore_callbacks(saved: list, arrays: dict, callbacks) -> None:
    callbacks = list(callbacks)
    _check_callback_types([entry["type"] for entry in saved], callbacks)
    for index, (entry, callback) in enumerate(zip(saved, callbacks)):
        prefix = f"callback:{index}:"
        state = dict(entry["state"])
        callback_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        if callback_arrays:
            state["arrays"] = callback_arrays
        callback.set_state(state)


def _check_callback_types(saved_types: list, callbacks) -> None:
    given = [type(callback).__name__ for callback in callbacks]
    if saved_types != given:
        raise ValueError(f"the checkpoint was written with callbacks {saved_types}; "
                         f"resume with the same callbacks, got {given}")
