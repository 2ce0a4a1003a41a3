"""Model files: exact round trips, a pickle-free .npz format, atomic saves, and loading
that refuses anything it cannot trust with FormatError (a ValueError)."""

from __future__ import annotations

import io
import json
from pathlib import Path
import tracemalloc
import os
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import neural_networks as nn
from neural_networks import serialization
from neural_networks.errors import FormatError
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.optimizers import Adam

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def cnn(dtype="float32", seed=0):
    model = nn.NeuralNetwork([Conv2D(3, 3, "relu"), Pool2D(2, stride=2), Flatten(),
                              FullyConnected(4, "tanh"), FullyConnected(3, "softmax")],
                             optimizer=Adam(lr=0.01, betas=(0.8, 0.9)), seed=seed, dtype=dtype)
    return model.build((6, 6, 2))


def trained_cnn(dtype="float32"):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 6, 6, 2)).astype(dtype)
    y = rng.integers(0, 3, 16)
    model = cnn(dtype)
    model.fit(X, y, epochs=2, batch_size=4, verbose=0)
    model.metadata = {"class_names": ["a", "b", "c"], "standardizer": {"mean": [0.5, 1.5], "std": [2.0, 3.0]}}
    return model, X


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A real model file's bytes and the predictions it must reproduce."""
    model, X = trained_cnn()
    path = model.save(tmp_path_factory.mktemp("model") / "model.npz")
    return path.read_bytes(), X, model.predict(X)


def read_members(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def write_members(path, members: dict) -> None:
    np.savez(path, **members)


def param(layer, key):
    """The archive member holding parameter ``key`` of layer ``layer``."""
    return f"state/model/layers/{layer}/parameters/{key}"


def header_of(members):
    return json.loads(members["__header__"].tobytes().decode())


def with_header(members, header):
    members = dict(members)
    members["__header__"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    return members


# -- round trips --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_save_load_round_trip_predicts_bit_for_bit(tmp_path, dtype):
    model, X = trained_cnn(dtype)
    path = model.save(tmp_path / "model.npz")
    assert path == tmp_path / "model.npz"
    loaded = nn.load(path)
    assert loaded.dtype == np.dtype(dtype)
    assert loaded.get_config() == model.get_config()
    assert loaded.metadata == model.metadata
    for (name, a), (name_b, b) in zip(model.named_parameters().items(), loaded.named_parameters().items()):
        assert name == name_b and a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b, err_msg=name)
    for batch_size in (1, 5, 256):
        np.testing.assert_array_equal(loaded.predict(X, batch_size=batch_size),
                                      model.predict(X, batch_size=batch_size))
    # NeuralNetwork.load is the same loader
    np.testing.assert_array_equal(nn.NeuralNetwork.load(path).predict(X), model.predict(X))


def test_loaded_model_keeps_training_like_the_original(tmp_path):
    model, X = trained_cnn()
    loaded = nn.load(model.save(tmp_path / "m.npz"))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert isinstance(loaded.optimizer, Adam)


def test_file_is_an_npz_whose_arrays_all_load_without_pickle(tmp_path):
    model, _ = trained_cnn()
    path = model.save(tmp_path / "model.npz")
    assert zipfile.is_zipfile(path)
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    members = read_members(path.read_bytes())
    assert all(array.dtype.kind in "biuf" for array in members.values())
    header = header_of(members)
    assert header["format"] == "neural_networks" and header["version"] == serialization.FORMAT_VERSION
    assert header["kind"] == "model"
    expected = {param(*name.split(".")) for name in model.named_parameters()}
    assert set(members) == expected | {"__header__"}
    for name, array in model.named_parameters().items():
        assert members[param(*name.split("."))].dtype == array.dtype


def test_an_unbuilt_model_cannot_be_saved(tmp_path):
    with pytest.raises(nn.NeuralNetworksError, match="build"):
        nn.NeuralNetwork([FullyConnected(2)]).save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        nn.load(tmp_path / "nothing.npz")


def test_format_error_is_a_value_error():
    assert issubclass(nn.FormatError, ValueError)


# -- atomic saves -----------------------------------------------------------------------------------------
def _crash_in_savez(monkeypatch, exception):
    real_savez = np.savez

    def partial_then_crash(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)  # bytes reach the temporary file ...
        file.write(b"garbage")
        raise exception  # ... and then the process "dies"

    monkeypatch.setattr(np, "savez", partial_then_crash)


@pytest.mark.parametrize("where", ["savez", "replace", "interrupt"])
def test_a_crash_mid_save_leaves_the_previous_file_intact(tmp_path, monkeypatch, where):
    first, X = trained_cnn()
    path = first.save(tmp_path / "model.npz")
    before = path.read_bytes()
    second = cnn(seed=1)
    if where == "savez":
        _crash_in_savez(monkeypatch, OSError("disk full"))
        expected = OSError
    elif where == "interrupt":
        _crash_in_savez(monkeypatch, KeyboardInterrupt())
        expected = KeyboardInterrupt
    else:
        def failing_replace(src, dst):
            raise OSError("rename failed")

        monkeypatch.setattr(os, "replace", failing_replace)
        expected = OSError
    with pytest.raises(expected):
        second.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary file left behind
    np.testing.assert_array_equal(nn.load(path).predict(X), first.predict(X))


def test_save_overwrites_through_a_rename(tmp_path, monkeypatch):
    model, _ = trained_cnn()
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((os.path.dirname(src), os.path.basename(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    model.save(tmp_path / "model.npz")
    assert renames == [(str(tmp_path), "model.npz")]  # temporary file in the same folder


# -- refusing bad files ----------------------------------------------------------------------------------
def expect_format_error(path, match=None):
    with pytest.raises(FormatError, match=match):
        nn.load(path)


def test_truncated_files_are_refused(tmp_path, model_file):
    raw, _, _ = model_file
    path = tmp_path / "cut.npz"
    for cut in sorted(set(np.linspace(0, len(raw) - 1, 60).astype(int)) | {1, 4, 30, len(raw) - 22}):
        path.write_bytes(raw[:cut])
        expect_format_error(path)


def test_random_bytes_and_empty_files_are_refused(tmp_path):
    path = tmp_path / "random.npz"
    rng = np.random.default_rng(0)
    for size in (0, 1, 10, 100, 5000):
        path.write_bytes(rng.bytes(size))
        expect_format_error(path)
    path.write_bytes(b"PK\x03\x04" + rng.bytes(200))  # a zip signature, then garbage
    expect_format_error(path)
    path.write_bytes(b"\x93NUMPY" + rng.bytes(200))  # an .npy signature, then garbage
    expect_format_error(path)


def test_a_plain_npy_file_is_refused(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as handle:
        np.save(handle, np.arange(6.0).reshape(2, 3))
    expect_format_error(path, "not a neural_networks model file")


def test_foreign_zip_and_npz_files_are_refused(tmp_path):
    path = tmp_path / "foreign.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    expect_format_error(path)
    np.savez(path, weights=np.ones((2, 2)))
    expect_format_error(path, "no header")
    np.savez(path, __header__=np.frombuffer(b'{"format": "something_else", "version": 1}', dtype=np.uint8))
    expect_format_error(path, "not a neural_networks model file")


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda h: h.update(version=serialization.FORMAT_VERSION + 1), "newer"),
        (lambda h: h.update(version=0), "version"),
        (lambda h: h.update(version="1"), "version"),
        (lambda h: h.pop("version"), "version"),
        (lambda h: h.update(format="keras"), "not a neural_networks"),
        (lambda h: h.pop("config"), "config"),
        (lambda h: h["config"]["layers"][0].update(type="transformer"), "transformer"),
        (lambda h: h["config"]["layers"][0].update(activation="mish"), "mish"),
        (lambda h: h["config"]["layers"][3].update(n_out=5), "layer 3.*parameter W"),
        (lambda h: h["config"]["layers"].pop(), None),
        (lambda h: h["config"].update(input_shape=[6, 6, 3]), "layer 0.*parameter W"),
        (lambda h: h["config"].update(input_shape=None), None),
        (lambda h: h["config"].update(dtype="float16"), "dtype"),
        (lambda h: h["config"].update(loss="hinge"), "hinge"),
        (lambda h: h["config"].update(optimizer={"type": "lbfgs"}), "lbfgs"),
        (lambda h: h["config"]["layers"][0].update(n_out=10**12), None),
        (lambda h: h.update(metadata=[1, 2]), "metadata"),
    ],
    ids=["newer version", "version 0", "version string", "no version", "other format",
         "no architecture", "unknown layer type", "unknown activation", "wrong n_out",
         "missing layer", "wrong input shape", "no input shape", "float16", "unknown loss",
         "unknown optimizer", "absurd n_out", "metadata not a dict"],
)
def test_headers_that_do_not_describe_the_arrays_are_refused(tmp_path, model_file, change, match):
    raw, _, _ = model_file
    members = read_members(raw)
    header = header_of(members)
    change(header)
    path = tmp_path / "changed.npz"
    write_members(path, with_header(members, header))
    expect_format_error(path, match)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m: m.update({param(0, "W"): m[param(0, "W")][..., :2]}), "layer 0.*parameter W"),
        (lambda m: m.update({param(3, "b"): m[param(3, "b")].ravel()}), "layer 3.*parameter b"),
        (lambda m: m.pop(param(4, "W")), "missing"),
        (lambda m: m.update({param(9, "W"): np.zeros(3, np.float32)}), "unexpected"),
        (lambda m: m.update({param(0, "b"): np.full_like(m[param(0, "b")], np.nan)}), "nan"),
        (lambda m: m.update({param(0, "b"): m[param(0, "b")].astype(np.int32)}), "layer 0.*parameter b"),
        (lambda m: m.update({"notes": np.array(["hello"])}), "notes"),
        (lambda m: m.update({"__header__": m["__header__"].astype(np.int64)}), "header"),
        (lambda m: m.update({"__header__": np.frombuffer(b"\xff\xfe{", dtype=np.uint8)}), "header"),
        (lambda m: m.update({"__header__": np.frombuffer(b"[1, 2]", dtype=np.uint8)}), None),
    ],
    ids=["wrong W shape", "wrong b rank", "missing parameter", "extra parameter", "nan parameter",
         "integer parameter", "string array", "header not uint8", "header not utf-8", "header not a dict"],
)
def test_arrays_that_do_not_match_the_header_are_refused(tmp_path, model_file, change, match):
    raw, _, _ = model_file
    members = read_members(raw)
    change(members)
    path = tmp_path / "changed.npz"
    write_members(path, members)
    expect_format_error(path, match)


class CreatesMarker:
    """Unpickling this object creates a file: proof that a loader ran pickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_object_array_is_refused_and_never_unpickled(tmp_path, model_file):
    raw, _, _ = model_file
    marker = tmp_path / "pwned"
    members = read_members(raw)
    members[param(0, "evil")] = np.array([CreatesMarker(marker)], dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, **members)  # allow_pickle is the default when saving: the object is pickled
    expect_format_error(path)
    assert not marker.exists()
    # the payload is live: an unsafe loader would have run it
    with np.load(path, allow_pickle=True) as archive:
        archive[param(0, "evil")]
    assert marker.exists()


def test_a_pickled_header_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    np.savez(path, __header__=np.array([CreatesMarker(marker)], dtype=object))
    expect_format_error(path)
    assert not marker.exists()


# -- fuzzing ---------------------------------------------------------------------------------------------------
def load_outcome(path):
    """'ok' or 'format error'; any other exception fails the test."""
    try:
        model = nn.load(path)
    except FormatError:
        return "format error"
    assert all(np.all(np.isfinite(p)) for p in model.named_parameters().values())
    return "ok"


@FUZZ
@given(data=st.binary(max_size=3000))
def test_fuzz_random_bytes_give_format_error(tmp_path, data):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data)
    assert load_outcome(path) == "format error"


@FUZZ
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_fuzz_truncations_give_format_error(tmp_path, model_file, fraction):
    raw, _, _ = model_file
    path = tmp_path / "fuzz.npz"
    path.write_bytes(raw[: int(fraction * len(raw))])
    assert load_outcome(path) == "format error"


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)),
                      min_size=1, max_size=4))
def test_fuzz_mutated_file_bytes_give_format_error_or_load(tmp_path, model_file, edits):
    raw, X, expected = model_file
    data = bytearray(raw)
    for where, value in edits:
        data[int(where * len(data))] = value
    path = tmp_path / "fuzz.npz"
    path.write_bytes(bytes(data))
    if load_outcome(path) == "ok" and bytes(data) != raw:
        nn.load(path).predict(X)  # a harmless mutation (e.g. in zip metadata) still predicts


@FUZZ
@given(edits=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True),
                                st.sampled_from(b'0123456789-.e,:[]{}"nultrefas \x00\xff')),
                      min_size=1, max_size=3))
def test_fuzz_mutated_header_bytes_give_format_error_or_load(tmp_path, model_file, edits):
    raw, X, expected = model_file
    members = read_members(raw)
    header = bytearray(members["__header__"].tobytes())
    for where, value in edits:
        header[int(where * len(header))] = value
    assume(bytes(header) != members["__header__"].tobytes())
    members["__header__"] = np.frombuffer(bytes(header), dtype=np.uint8)
    path = tmp_path / "fuzz.npz"
    write_members(path, members)
    if load_outcome(path) == "ok":
        assert nn.load(path).predict(X).shape[0] == len(X)


@pytest.mark.parametrize("forged", [{"layer": 3, "n_out": 10**9}, {"input_shape": [10**5, 10**5, 1]},
                                    {"input_shape": [3000, 3000, 1]}, {"input_shape": [10000, 10000, 1]}])
def test_forged_sizes_are_refused_before_anything_is_allocated(tmp_path, model_file, forged):
    members = read_members(model_file[0])
    header = header_of(members)
    if "layer" in forged:
        header["config"]["layers"][forged["layer"]]["n_out"] = forged["n_out"]
    else:
        header["config"]["input_shape"] = forged["input_shape"]
    path = tmp_path / "forged.npz"
    write_members(path, with_header(members, header))
    tracemalloc.start()  # NumPy reports its allocations to tracemalloc
    try:
        with pytest.raises(FormatError):
            nn.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"loading a forged header allocated {peak / 2**20:.0f} MiB"


def test_a_deeply_nested_header_is_a_format_error(tmp_path):
    path = tmp_path / "nested.npz"
    np.savez(path, __header__=np.frombuffer(b"[" * 100_000, dtype=np.uint8))
    expect_format_error(path, "header")


def test_a_text_file_is_not_a_model_file_and_no_unsafe_loading_is_suggested(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('epochs = 3\nmodel = "mlp"\n')
    with pytest.raises(FormatError) as error:
        nn.load(path)
    assert "not a neural_networks model file" in str(error.value)
    assert "pickle" not in str(error.value).lower() and "unsafe" not in str(error.value).lower()


# -- files written by earlier versions ----------------------------------------------------------------------
FIXTURES = Path(__file__).parent / "fixtures"


def test_a_version_1_model_file_loads_and_predicts_what_it_did():
    model = nn.load(FIXTURES / "v1_cnn.npz")
    with np.load(FIXTURES / "v1_cnn_io.npz") as reference:
        np.testing.assert_array_equal(model.predict(reference["X"]), reference["probabilities"])
    assert model.metadata["class_names"] == ["a", "b", "c"]
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2D", "Pool2D", "Flatten", "FullyConnected"]
    assert isinstance(model.optimizer, Adam)


def test_a_version_1_checkpoint_resumes(tmp_path):
    from neural_networks.callbacks import EarlyStopping

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 3, 40)

    def fit(**resume):  # the run that wrote the fixture, continued to a third epoch
        model = nn.NeuralNetwork([Conv2D(4, 3, "relu"), Pool2D(2, stride=2), Flatten(),
                                  FullyConnected(3, "softmax")],
                                 loss="cross_entropy", optimizer=Adam(lr=1e-2), seed=0)
        history = model.fit(X, y, epochs=3, batch_size=8, verbose=0,
                            callbacks=[EarlyStopping(monitor="loss", patience=3)], **resume)
        return model, history

    resumed, history = fit(resume=FIXTURES / "v1_checkpoint.npz")
    assert history.epochs == [1, 2, 3]  # epochs 1-2 from the file, epoch 3 trained now
    assert resumed.optimizer.iterations == 15  # 5 steps per epoch, 10 of them restored
    straight, _ = fit()  # today's code, uninterrupted: same seeds, same weights, bit for bit
    for name, value in straight.named_parameters().items():
        np.testing.assert_array_equal(resumed.named_parameters()[name], value, err_msg=name)
