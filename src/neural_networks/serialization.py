"""Model files and checkpoints: configs and state in one safe archive.

A file is one NumPy ``.npz`` archive (a zip of ``.npy`` arrays) read with
``allow_pickle=False``, so loading never executes code. It holds

* ``__header__``: UTF-8 JSON as a uint8 array::

      {"format": "neural_networks", "version": 2, "kind": "model" | "checkpoint",
       "config": {...the model's get_config()...}, "metadata": {...},
       "state": {...a state tree: JSON values, arrays replaced by {"__array__": name}...}}

* one array per ``{"__array__": name}`` reference, named ``state/<path in the tree>``.

The state tree of a model file is ``{"model": model.state_dict()}``; a checkpoint adds
``"optimizer"`` and ``"trainer"`` (epoch, total epochs, history, callbacks). This module
knows nothing of models: it turns configs and state trees into files and back. Files of
format version 1 (before buffers and per-layer generators) are read and converted.

Writes are atomic: a temporary file in the same folder is written, flushed and fsynced,
then renamed over the target, so a crash leaves the previous file intact.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
>>> _ = save_model(path, {"layers": []}, {"model": {"w": np.ones(2)}}, {"note": "x"})
>>> archive = read_model(path)
>>> archive.state["model"]["w"], archive.metadata
(array([1., 1.]), {'note': 'x'})
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError
from .utils.data_structures import jsonable
from .utils.files import atomic_file

FORMAT_NAME = "neural_networks"
FORMAT_VERSION = 2
HEADER_KEY = "__header__"
_ARRAY_REF = "__array__"
_NUMERIC_KINDS = "biuf"

__all__ = ["Archive", "save_model", "save_checkpoint", "read_model", "read_checkpoint",
           "read_archive", "FormatError", "FORMAT_VERSION"]


@dataclass
class Archive:
    """What a file holds: its kind, the model config, the state tree and the metadata."""

    kind: str
    config: dict
    state: dict
    metadata: dict


# -- state trees <-> JSON + arrays -------------------------------------------------------------
def flatten_state(tree, path: str = "state") -> tuple[object, dict[str, np.ndarray]]:
    """Split a state tree into JSON values (arrays replaced by references) and arrays."""
    arrays: dict[str, np.ndarray] = {}

    def walk(node, where: str):
        if isinstance(node, np.ndarray):
            arrays[where] = node
            return {_ARRAY_REF: where}
        if isinstance(node, dict):
            return {str(key): walk(value, f"{where}/{key}") for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(value, f"{where}/{index}") for index, value in enumerate(node)]
        if isinstance(node, np.generic):
            return node.item()
        return node

    return walk(tree, path), arrays


def unflatten_state(tree, arrays: dict[str, np.ndarray]):
    """Put the arrays back in place of their references; a missing array, or one the
    header does not refer to, is a FormatError."""
    used: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {_ARRAY_REF}:
                name = node[_ARRAY_REF]
                if not isinstance(name, str) or name not in arrays:
                    raise FormatError(f"the header refers to a missing array {name!r}")
                used.add(name)
                return arrays[name]
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    state = walk(tree)
    unexpected = sorted(set(arrays) - used)
    if unexpected:
        raise FormatError(f"unexpected arrays {unexpected} that the header does not describe")
    return state


# -- writing -------------------------------------------------------------------------------------
def write_archive(path, header: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Atomically write a header and named arrays to ``path`` (an .npz file)."""
    path = Path(path)
    payload = {HEADER_KEY: np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)}
    payload |= {name: np.asarray(array) for name, array in arrays.items()}
    with atomic_file(path) as handle:
        np.savez(handle, **payload)
    return path


def _save(path, kind: str, config: dict, state: dict, metadata: dict) -> Path:
    tree, arrays = flatten_state(state)
    header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "kind": kind,
              "config": jsonable(config), "metadata": jsonable(metadata or {}), "state": tree}
    return write_archive(path, header, arrays)


def save_model(path, config: dict, state: dict, metadata: dict | None = None) -> Path:
    """Write a model file: its config, ``{"model": state_dict}`` and metadata."""
    return _save(path, "model", config, state, metadata or {})


def save_checkpoint(path, config: dict, state: dict, metadata: dict | None = None) -> Path:
    """Write a checkpoint: the model's config and a state tree with "model", "optimizer"
    and "trainer" entries."""
    return _save(path, "checkpoint", config, state, metadata or {})


# -- reading -------------------------------------------------------------------------------------
def read_archive(path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and check a file's header and arrays; any problem is a FormatError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise FormatError(f"{path}: not a neural_networks model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
            NotImplementedError, RuntimeError, UnicodeDecodeError, MemoryError, OverflowError) as error:
        raise FormatError(f"{path}: not a readable neural_networks model file ({error})") from None
    header = _parse_header(path, arrays.pop(HEADER_KEY, None))
    for name, array in arrays.items():
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise FormatError(f"{path}: array {name!r} has non-numeric dtype {array.dtype}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise FormatError(f"{path}: array {name!r} contains nan or inf")
    return header, arrays


def _parse_header(path: Path, raw) -> dict:
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise FormatError(f"{path}: not a neural_networks model file (no header)")
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else error
        raise FormatError(f"{path}: corrupted header ({reason})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise FormatError(f"{path}: not a neural_networks model file")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{path}: invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"{path}: written by a newer neural_networks (format version {version}; this "
            f"version reads up to {FORMAT_VERSION}); upgrade the library to load it"
        )
    return header


def _archive(path) -> Archive:
    path = Path(path)
    header, arrays = read_archive(path)
    if header["version"] == 1:
        return _from_version_1(path, header, arrays)
    config, metadata, kind = header.get("config"), header.get("metadata", {}), header.get("kind")
    if not isinstance(config, dict) or not isinstance(header.get("state"), dict):
        raise FormatError(f"{path}: the header has no model config or state")
    if not isinstance(metadata, dict):
        raise FormatError(f"{path}: the header's metadata is not a JSON object")
    try:
        state = unflatten_state(header["state"], arrays)
    except FormatError as error:
        raise FormatError(f"{path}: {error}") from None
    if not isinstance(state.get("model"), dict):
        raise FormatError(f"{path}: the file holds no model state")
    return Archive(kind, config, state, metadata)


def read_model(path) -> Archive:
    """The config, state and metadata of a model file or of a checkpoint's model."""
    return _archive(path)


def read_checkpoint(path) -> Archive:
    """A checkpoint's config and state tree (with "model", "optimizer" and "trainer")."""
    archive = _archive(path)
    state = archive.state
    if archive.kind != "checkpoint" or not isinstance(state.get("optimizer"), dict) \
            or not isinstance(state.get("trainer"), dict):
        raise FormatError(f"{path}: a model file, not a training checkpoint (no optimizer state)")
    return archive


# -- format version 1 ----------------------------------------------------------------------------
def _from_version_1(path: Path, header: dict, arrays: dict) -> Archive:
    """Version 1 kept parameters as ``param:<layer>.<key>``, optimizer state as
    ``optimizer:<param>:<key>``, callback arrays as ``callback:<i>:<key>``, and no buffers."""
    config = header.get("architecture")
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise FormatError(f"{path}: header has no architecture")
    layers: list[dict] = [{"parameters": {}, "buffers": {}, "rng": None} for _ in config["layers"]]
    for name, array in arrays.items():
        if name.startswith("param:"):
            index, _, key = name[len("param:"):].partition(".")
            if not index.isdigit() or int(index) >= len(layers):
                raise FormatError(f"{path}: parameter {name!r} belongs to no layer")
            layers[int(index)]["parameters"][key] = array
    checkpoint = header.get("checkpoint")
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise FormatError(f"{path}: the header's metadata is not a JSON object")
    state: dict = {"model": {"layers": layers, "rng": None}}
    kind = header.get("kind", "model")
    if kind == "checkpoint" and isinstance(checkpoint, dict):
        state["model"]["rng"] = checkpoint.get("rng")
        optimizer_state: dict = {}
        for name, array in arrays.items():
            if name.startswith("optimizer:"):
                _, param, key = name.split(":", 2)
                optimizer_state.setdefault(param, {})[key] = array
        callbacks = []
        for index, entry in enumerate(checkpoint.get("callbacks") or []):
            prefix = f"callback:{index}:"
            legacy = dict(entry.get("state") or {})
            callback_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            if callback_arrays:
                legacy["arrays"] = callback_arrays
            callbacks.append({"type": entry.get("type"), "state": legacy, "format": 1})
        state["optimizer"] = {**(checkpoint.get("optimizer") or {}), "state": optimizer_state}
        state["trainer"] = {"epoch": checkpoint.get("epoch"), "epochs": None,
                            "history": checkpoint.get("history") or {}, "callbacks": callbacks}
    return Archive(kind, config, state, metadata)
