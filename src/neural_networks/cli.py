"""The neural-networks command: train, evaluate and predict from the shell.

    neural-networks train                       # small CNN on the bundled digits
    neural-networks train --dataset iris --model mlp --epochs 50
    neural-networks train --dataset sinewave --model gru   # a regression: L2, MSE and MAE
    neural-networks evaluate runs/<run> --dataset digits
    neural-networks predict runs/<run>/model.npz inputs.npy
    neural-networks export runs/<run>             # writes runs/<run>/model.onnx

A user's mistake (a bad flag or config value, a missing or unwritable file, a file that
is not what it should be: every error the library raises on purpose) is one line on
standard error and exit code 2; anything else is a bug and shows its traceback. Ctrl-C
is one line saying what was kept, exit code 130.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import secrets
import sys
import time
import tomllib
from datetime import datetime
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from ._version import __version__
from .errors import NeuralNetworksError

TRAIN_DEFAULTS = {
    "dataset": "digits",
    "model": "cnn",
    "epochs": 20,
    "batch_size": 32,
    "optimizer": "adam",
    "lr": 2e-3,
    "seed": 0,
    "data_dir": None,
    "runs_dir": "runs",
    "verbose": 1,
}
#: the settings a resumed run may change (the total number of epochs and the display)
RESUMABLE = ("epochs", "verbose")

DESCRIPTION = "Train, evaluate and predict with neural_networks from the shell."
EPILOG = """examples:
  neural-networks train                          small CNN on the bundled 8x8 digits
  neural-networks train --dataset iris --model mlp --epochs 50
  neural-networks train --dataset sinewave --model gru   a regression: L2, MSE and MAE
  neural-networks train --config run.toml        same keys as the flags
  neural-networks train --resume runs/RUN        continue an interrupted run
  neural-networks evaluate runs/RUN --dataset digits
  neural-networks predict runs/RUN samples.npy   writes samples.predictions.csv

Bad arguments print one line and exit with code 2."""


class CommandError(Exception):
    """A user error: printed as one line, exit code 2."""


# -- settings: one check per key, for flags, config files and checkpoints alike ------------------
def _name_key(value):
    """Names compare case-insensitively, "-" read as "_" (as every factory of the library)."""
    return value.strip().lower().replace("-", "_") if isinstance(value, str) else value


def _choices() -> dict[str, tuple[str, ...]]:
    from .datasets import DATASET_NAMES
    from .optimizers import OPTIMIZERS
    from .presets import PRESETS

    return {"dataset": tuple(DATASET_NAMES), "model": tuple(PRESETS),
            "optimizer": tuple(sorted(OPTIMIZERS))}


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _check_setting(key: str, value, label: str):
    """``value`` of setting ``key`` in its canonical form, or a CommandError naming
    ``label`` (``--batch-size``, or ``config file 'x.toml': batch-size``)."""
    def refuse(expected: str):
        raise CommandError(f"{label} must be {expected}, got {value!r} ({type(value).__name__})")

    if key in ("dataset", "model", "optimizer"):
        choices = _choices()[key]
        if not isinstance(value, str) or _name_key(value) not in choices:
            refuse(f"one of {', '.join(choices)} (any case)")
        return _name_key(value)
    if key in ("epochs", "batch_size"):
        if not _is_int(value) or value < 1:
            refuse("an integer >= 1")
        return int(value)
    if key == "seed":
        if not _is_int(value) or value < 0:
            refuse("an integer >= 0")
        return int(value)
    if key == "verbose":
        if not _is_int(value) or value not in (0, 1, 2):
            refuse("0 (silent), 1 (progress bar) or 2 (one line per epoch)")
        return int(value)
    if key == "lr":
        if isinstance(value, bool) or not isinstance(value, Real) or not (math.isfinite(value) and value > 0):
            refuse("a finite number > 0")
        return float(value)
    if key in ("data_dir", "runs_dir"):
        if value is None and key == "data_dir":
            return None
        if not isinstance(value, str) or not value.strip():
            refuse("a folder path (a string)")
        return value
    raise CommandError(f"{label}: unknown setting")  # pragma: no cover - keys are checked first


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _flag_settings(args: argparse.Namespace) -> dict:
    """The settings given as flags, checked."""
    return {key: _check_setting(key, value, _flag(key))
            for key, value in vars(args).items() if key in TRAIN_DEFAULTS and value is not None}


def _train_settings(args: argparse.Namespace) -> dict:
    """The defaults, then the model preset's own defaults, then the config file, then the
    flags: a later source wins."""
    from .presets import training_defaults

    given = _read_config(args.config) if args.config is not None else {}
    given |= _flag_settings(args)
    preset = given.get("model", TRAIN_DEFAULTS["model"])
    return TRAIN_DEFAULTS | training_defaults(preset) | given


def _read_config(path: Path) -> dict:
    """The settings of a TOML file, each checked; messages name the key as written."""
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        raise CommandError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise CommandError(f"config file {str(path)!r} is a folder") from None
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    except UnicodeDecodeError:
        raise CommandError(f"config file {str(path)!r} is not UTF-8 text") from None
    written = {key.replace("-", "_"): key for key in config}
    unknown = sorted(key for key in written if key not in TRAIN_DEFAULTS)
    if unknown:
        raise CommandError(f"config file {str(path)!r}: unknown keys {[written[k] for k in unknown]}; "
                           f"known: {sorted(TRAIN_DEFAULTS)}")
    return {key: _check_setting(key, config[name], f"config file {str(path)!r}: {name}")
            for key, name in written.items()}


def _resumed_settings(args: argparse.Namespace) -> tuple[dict, int]:
    """The settings a run was started with (from its checkpoint), with the new total of
    ``--epochs`` and ``--verbose``; and the number of epochs it has completed."""
    from .serialization import read_checkpoint

    run_dir = args.resume
    if args.config is not None:
        raise CommandError("--resume continues a run with the settings it was started with; it "
                           "takes no --config (change the total number of epochs with --epochs)")
    checkpoint = run_dir / "last.npz"
    if not run_dir.is_dir():
        raise CommandError(f"--resume: no run folder at {str(run_dir)!r}")
    if not checkpoint.is_file():
        raise CommandError(f"--resume: no checkpoint {str(checkpoint)!r} (expected a run folder "
                           f"written by 'neural-networks train')")
    archive = read_checkpoint(checkpoint)
    saved = archive.metadata.get("train_settings")
    progress = archive.state.get("trainer")
    if not isinstance(saved, dict) or not isinstance(progress, dict) or not _is_int(progress.get("epoch")):
        raise CommandError(f"--resume: {checkpoint} was not written by 'neural-networks train'")
    settings = dict(TRAIN_DEFAULTS)
    for key in TRAIN_DEFAULTS:
        if key in saved:
            settings[key] = _check_setting(key, saved[key], f"{checkpoint}: setting {key}")
    flags = _flag_settings(args)
    changed = sorted(_flag(k) for k, v in flags.items() if k not in RESUMABLE and v != settings[k])
    if changed:
        raise CommandError(f"--resume continues a run with its own settings; cannot change "
                           f"{', '.join(changed)} (only --epochs and --verbose)")
    settings |= {k: v for k, v in flags.items() if k in RESUMABLE}
    completed = int(progress["epoch"])
    if settings["epochs"] < completed:
        raise CommandError(f"--epochs {settings['epochs']}: the run in {run_dir} has already "
                           f"completed {completed} epochs; --epochs is the total, give more than "
                           f"{completed} to train it further")
    if settings["epochs"] == completed and (run_dir / "metrics.json").is_file():
        raise CommandError(f"the run in {run_dir} has finished all its {completed} epochs; pass "
                           f"--epochs N with N > {completed} to train it further")
    return settings, completed


def _record_settings(checkpoint: Path, settings: dict) -> None:
    """Write the resumed run's settings (its new total of epochs) into its checkpoint now,
    so that an interruption and a second ``--resume`` continue to the new total."""
    from .serialization import read_archive, write_archive

    header, arrays = read_archive(checkpoint)
    metadata = header.setdefault("metadata", {})
    if metadata.get("train_settings") != settings:
        metadata["train_settings"] = settings
        write_archive(checkpoint, header, arrays)


# -- files and folders: checked before any work ------------------------------------------------------
def _check_writable_folder(folder: Path, label: str) -> None:
    """``folder`` is, or can be created as, a folder this process may write in."""
    existing = Path(folder)
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == Path(folder):
            raise CommandError(f"{label}: {str(folder)!r} is a file, not a folder")
        raise CommandError(f"{label}: cannot create the folder {str(folder)!r}: "
                           f"{str(existing)!r} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"{label}: cannot write in {str(existing)!r} (permission denied or a "
                           f"read-only file system)")


def _new_run_dir(runs_dir) -> Path:
    """runs/<timestamp>-<short id>/, created here so it is never reused."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(runs_dir) / f"{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def _model_path(path: Path) -> Path:
    if path.is_dir():
        path = path / "model.npz"
    if not path.is_file():
        raise CommandError(f"no model file at {str(path)!r}")
    return path


def _load_model(path: Path):
    from .models import NeuralNetwork

    path = _model_path(path)
    model = NeuralNetwork.load(path)
    if not isinstance(model.metadata, dict):  # pragma: no cover - the loader guarantees a dict
        model.metadata = {}
    return path, model


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


# -- training ----------------------------------------------------------------------------------------
def _is_regression(splits) -> bool:
    """A dataset without class names (sinewave) has real-valued targets (N, d)."""
    return splits.n_classes == 0


def _build_model(settings: dict, splits):
    """The preset for the dataset: softmax over its classes with cross-entropy, or, for a
    regression set, one linear output per target value with L2."""
    from .models import NeuralNetwork
    from .optimizers import initialize_optimizer
    from .presets import preset_layers

    if _is_regression(splits):
        n_outputs, output, loss = splits.y_train.shape[1], "linear", "l2"
    else:
        n_outputs, output, loss = splits.n_classes, "softmax", "cross_entropy"
    layers = preset_layers(settings["model"], splits.input_shape, n_outputs, output)
    optimizer = initialize_optimizer(settings["optimizer"], lr=float(settings["lr"]))
    model = NeuralNetwork(layers, loss=loss, optimizer=optimizer, seed=settings["seed"])
    model.build(splits.input_shape)
    # what evaluate and predict need to prepare raw inputs as training did
    model.metadata = {"train_settings": settings, **splits.metadata(), "preset": settings["model"]}
    return model


def _regression_scores(model, X: np.ndarray, y: np.ndarray) -> dict:
    """The model's loss, mean squared error and mean absolute error on (X, y), each a
    mean over every sample and target value (the loss sums over target values)."""
    predicted = model.predict(X)
    residual = predicted.astype(np.float64) - np.asarray(y, dtype=np.float64).reshape(predicted.shape)
    return {"loss": model.loss(y.reshape(predicted.shape), predicted),
            "mse": float(np.mean(residual**2)), "mae": float(np.mean(np.abs(residual)))}


def _test_metrics(model, history, splits) -> dict:
    """What metrics.json reports of the test split: accuracy for a classifier, the errors
    of a regression (which has no accuracy)."""
    if _is_regression(splits):
        test = _regression_scores(model, splits.X_test, splits.y_test)
        return {"task": "regression", "test_loss": test["loss"], "test_mse": test["mse"],
                "test_mae": test["mae"], "val_loss": history["val_loss"][-1]}
    test = model.evaluate(splits.X_test, splits.y_test)
    return {"test_loss": test["loss"], "test_accuracy": test["accuracy"],
            "val_loss": history["val_loss"][-1], "val_accuracy": history["val_accuracy"][-1]}


def _result_line(metrics: dict) -> str:
    if metrics.get("task") == "regression":
        return (f"Test MSE {metrics['test_mse']:.4g}, MAE {metrics['test_mae']:.4g}, "
                f"test loss {metrics['test_loss']:.4g}")
    return f"Test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f}"


def command_train(args: argparse.Namespace) -> int:
    from .callbacks import JSONLogger, ModelCheckpoint
    from .datasets import load_dataset
    from .distributed import get_strategy
    from .utils.files import write_json_atomic

    distributed = get_strategy(args.distributed)  # one process unless --distributed

    if args.resume is not None:
        run_dir = args.resume
        settings, completed = _resumed_settings(args)
        _check_writable_folder(run_dir, "--resume")
    else:
        run_dir, completed = None, 0
        settings = _train_settings(args)
        _check_writable_folder(Path(settings["runs_dir"]), "--runs-dir")
    stage = ("before training started; nothing was written" if run_dir is None else
             f"before training resumed; {run_dir} holds what it held")
    try:
        splits = load_dataset(settings["dataset"], seed=settings["seed"], data_dir=settings["data_dir"])
        model = _build_model(settings, splits)
        if run_dir is None:  # rank 0 creates the run folder and tells the other ranks its name
            with distributed.together():
                created = str(_new_run_dir(settings["runs_dir"])) if distributed.is_root else None
            run_dir = Path(distributed.broadcast(created))
            stage = "training"  # from here on, an interruption leaves the run folder to resume
        elif distributed.is_root:
            _record_settings(run_dir / "last.npz", settings)
        if distributed.is_root:
            print(f"Training {settings['model']} on {splits.name} ({len(splits.X_train)} train, "
                  f"{len(splits.X_val)} validation, {len(splits.X_test)} test) → {run_dir}", flush=True)
        if settings["verbose"] and completed == 0 and distributed.is_root:
            model.summary()
        stage = "training"
        started = time.perf_counter()
        history = model.fit(
            splits.X_train, splits.y_train, epochs=settings["epochs"],
            batch_size=settings["batch_size"], validation_data=(splits.X_val, splits.y_val),
            verbose=settings["verbose"], checkpoint=run_dir / "last.npz",
            resume=run_dir / "last.npz" if args.resume is not None else None,
            callbacks=[ModelCheckpoint(run_dir / "best.npz"), JSONLogger(run_dir / "history.json")],
            distributed=distributed,
        )
        train_time = time.perf_counter() - started
        if not distributed.is_root:  # rank 0 writes the run folder
            return 0
        stage = "results"
        model.save(run_dir / "model.npz")
        metrics = {**_test_metrics(model, history, splits), "epochs": len(history.epochs),
                   "train_seconds": train_time, "settings": settings}
        write_json_atomic(run_dir / "metrics.json", metrics)
        stage = (f"while drawing the plots; {run_dir / 'model.npz'} and metrics.json are written, "
                 f"some plots may be missing")
        _write_plots(run_dir, model, history, splits)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        if stage in ("training", "results"):
            _interrupted_run(run_dir, stage)
        else:
            print(f"neural-networks train: interrupted {stage}", file=sys.stderr)
        return 130
    print(f"{_result_line(metrics)} ({train_time:.1f} s of training). Wrote {run_dir}/")
    return 0


def _interrupted_run(run_dir: Path, stage: str) -> None:
    checkpoint = run_dir / "last.npz"
    if not checkpoint.is_file():
        if run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # created for this run, nothing in it yet
        print("neural-networks train: interrupted before the first checkpoint; nothing was kept",
              file=sys.stderr)
        return
    kept = ("the last completed epoch" if stage == "training"
            else "every epoch, but not the run's results")
    print(f"Interrupted. {checkpoint} holds {kept}; continue with:\n"
          f"  neural-networks train --resume {run_dir}", file=sys.stderr)


def _write_plots(run_dir: Path, model, history, splits) -> None:
    from . import plotting
    from .layers import Conv2D

    try:
        plotting.plot_history(history, run_dir / "curves.png")  # a regression: the loss only
        if not _is_regression(splits):
            predicted = np.argmax(model.predict(splits.X_test), axis=1)
            plotting.plot_confusion_matrix(splits.y_test, predicted, splits.class_names,
                                           run_dir / "confusion_matrix.png")
        first_conv = next((layer for layer in model.layers if isinstance(layer, Conv2D)), None)
        if first_conv is not None:
            plotting.plot_filters(first_conv.parameters["W"], run_dir / "filters.png")
    except plotting.PlottingUnavailable as error:
        print(f"(no plots: {error})")


# -- inputs of a saved model ---------------------------------------------------------------------------
NO_RECORD_HINT = ("if it was trained on load_dataset(...) data, save it after "
                  "model.metadata.update(data.metadata()); if it takes the values as stored, "
                  "pass --no-preprocessing")


def _preprocessing(model, path: Path, skip: bool):
    """The model's record of how raw inputs become its inputs (None with ``skip``), or a
    CommandError saying how to record it."""
    from .datasets import Standardizer

    if skip:
        return None
    # "standardizer": the key of files written by earlier versions of this command
    state = model.metadata.get("preprocessing") or model.metadata.get("standardizer")
    if state is None:
        raise CommandError(f"{path} records no preprocessing, so raw inputs cannot be prepared as "
                           f"in training: {NO_RECORD_HINT}")
    try:
        record = Standardizer.from_state(state)
        shape = tuple(model.input_shape)
        usable = (np.all(np.isfinite(record.mean)) and np.all(record.std > 0)
                  and np.broadcast_shapes(shape, record.mean.shape, record.std.shape) == shape)
    except (KeyError, TypeError, ValueError):
        usable = False
    if not usable:
        raise CommandError(f"{path}: its preprocessing record is invalid or does not fit the model's "
                           f"samples of shape {tuple(model.input_shape)}")
    return record


def _model_inputs(model, X: np.ndarray, record, source: str) -> np.ndarray:
    """Raw samples ``X`` as the model takes them: shaped (N, *input_shape), preprocessed by
    ``record``, in the model's dtype. Only flat vectors are reshaped (and a missing trailing
    channel axis of size 1 added): any other shape would scramble the samples."""
    if X.dtype.kind not in "biuf":
        raise CommandError(f"{source}: expected numbers, got an array of dtype {X.dtype}")
    shape = tuple(model.input_shape)
    size = math.prod(shape)
    if X.shape[1:] == shape:
        pass
    elif X.shape == shape or X.shape + (1,) == shape:  # one sample
        X = X.reshape((1,) + shape)
    elif X.ndim == 2 and len(shape) > 1 and X.shape[1] == size:  # flat vectors, in C order
        X = X.reshape((len(X),) + shape)
    elif X.ndim >= 2 and X.shape[1:] + (1,) == shape:  # e.g. (N, 8, 8) for (8, 8, 1)
        X = X.reshape(X.shape + (1,))
    else:
        flat = f" (or flat vectors of {size} values)" if len(shape) > 1 else ""
        raise CommandError(f"{source}: the model takes samples of shape {shape}{flat}; got an array "
                           f"of shape {X.shape}")
    if len(X) == 0:
        raise CommandError(f"{source}: holds no samples")
    if not np.all(np.isfinite(X)):
        raise CommandError(f"{source}: contains nan or inf values")
    X = X.astype(model.dtype, copy=False) if record is None else record.transform(X, dtype=model.dtype)
    if not np.all(np.isfinite(X)):
        raise CommandError(f"{source}: values too large for the model's {model.dtype} after preprocessing")
    return X


def _n_outputs(model) -> int:
    return int(model.output_shape(tuple(model.input_shape))[-1])


def _model_is_regression(model) -> bool:
    """Whether the model's loss is a regression loss: one that defines no accuracy."""
    n_outputs = _n_outputs(model)
    probe = np.zeros((1, n_outputs), dtype=model.dtype)
    return model.loss.accuracy(probe, probe) is None


def _check_task(model, splits, dataset: str, path: Path) -> None:
    """The model and the dataset are both classifications, or both regressions of the
    same number of target values."""
    n_outputs = _n_outputs(model)
    if _is_regression(splits) != _model_is_regression(model):
        kinds = {True: "a regression", False: "a classification"}
        raise CommandError(f"{dataset} is {kinds[_is_regression(splits)]} dataset; {path} is "
                           f"{kinds[_model_is_regression(model)]} model (loss {model.loss.name!r})")
    if _is_regression(splits):
        if splits.y_test.shape[1] != n_outputs:
            raise CommandError(f"{dataset} has {splits.y_test.shape[1]} target values per sample; "
                               f"the model has {n_outputs} outputs")
    elif splits.n_classes > n_outputs:
        raise CommandError(f"{dataset} has {splits.n_classes} classes; the model has "
                           f"{n_outputs} outputs")


def command_evaluate(args: argparse.Namespace) -> int:
    from .datasets import load_dataset

    path, model = _load_model(args.model)
    dataset = args.dataset or model.metadata.get("dataset")
    if dataset is None:
        raise CommandError(f"{path} does not record its dataset: pass --dataset")
    dataset = _check_setting("dataset", dataset, "--dataset" if args.dataset else f"{path}: dataset")
    seed = model.metadata.get("dataset_seed", 0)
    if not _is_int(seed) or seed < 0:
        raise CommandError(f"{path}: invalid dataset_seed {seed!r} in the model's metadata")
    record = _preprocessing(model, path, args.no_preprocessing)
    splits = load_dataset(dataset, seed=seed, standardize=False, scale_pixels=False,
                          data_dir=args.data_dir)  # the values as stored: the record applies to them
    _check_task(model, splits, dataset, path)
    X_test = _model_inputs(model, splits.X_test, record, f"the {dataset} test split")
    if _is_regression(splits):
        scores = _regression_scores(model, X_test, splits.y_test)
        report = {"test_loss": scores["loss"], "test_mse": scores["mse"], "test_mae": scores["mae"]}
    else:
        scores = model.evaluate(X_test, splits.y_test)
        report = {"test_loss": scores["loss"], "test_accuracy": scores["accuracy"]}
    print(json.dumps({"dataset": dataset, **report, "n_samples": len(X_test)}))
    return 0


def _check_inputs_file(path: Path) -> None:
    if path.is_dir():
        raise CommandError(f"{str(path)!r} is a folder; expected a .npy file")
    if not path.is_file():
        raise CommandError(f"no input file at {str(path)!r}")


def _read_inputs(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:
        raise CommandError(f"{path}: not a readable .npy array ({error})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        loaded.close()
        raise CommandError(f"{path}: a .npz archive; predict reads one .npy array "
                           f"(np.save(path, X))")
    if not isinstance(loaded, np.ndarray):  # pragma: no cover - np.load returns one or the other
        raise CommandError(f"{path}: not a .npy array")
    return loaded


def _predictions_path(args: argparse.Namespace, model_path: Path) -> Path:
    """Where the CSV goes: never over an input, never into a folder that cannot take it."""
    output = args.output or args.inputs.with_suffix(".predictions.csv")
    if output.is_dir():
        raise CommandError(f"--output {str(output)!r} is a folder; give a file name")
    for what, path in (("the inputs", args.inputs), ("the model file", model_path)):
        if _same_file(output, path) or output.resolve() == path.resolve():
            raise CommandError(f"the output {str(output)!r} is {what}; refusing to write over it "
                               f"(choose another --output)")
    hint = "" if args.output else " (choose another place with --output)"
    try:
        _check_writable_folder(output.parent, f"output {str(output)!r}")
    except CommandError as error:
        raise CommandError(f"{error}{hint}") from None
    return output


def command_predict(args: argparse.Namespace) -> int:
    from .utils.files import atomic_file

    model_path = _model_path(args.model)
    _check_inputs_file(args.inputs)
    output = _predictions_path(args, model_path)
    path, model = _load_model(model_path)
    record = _preprocessing(model, path, args.no_preprocessing)
    X = _read_inputs(args.inputs)
    outputs = model.predict(_model_inputs(model, X, record, str(args.inputs)))
    if outputs.ndim != 2:
        raise CommandError(f"{path}: predict writes one row of values per sample; this model's "
                           f"outputs have shape {outputs.shape[1:]}")
    lines = _value_rows(outputs) if _model_is_regression(model) else _class_rows(model, outputs)
    with atomic_file(output, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"Wrote {len(outputs)} predictions to {output}")
    return 0


def _value_rows(values: np.ndarray) -> list[str]:
    """CSV lines of a regression's predicted values: column ``prediction`` (or
    ``prediction_0``, ``prediction_1``, ... for several targets), each value written
    with the digits that read back to the same number in the model's dtype."""
    columns = (["prediction"] if values.shape[1] == 1
               else [f"prediction_{j}" for j in range(values.shape[1])])
    return [",".join(["index", *columns])] + [
        ",".join([str(i), *(str(value) for value in row)]) for i, row in enumerate(values)]


def _class_rows(model, probabilities: np.ndarray) -> list[str]:
    """CSV lines of a classifier's most probable class and its probability."""
    names = model.metadata.get("class_names")
    if not isinstance(names, list) or len(names) != probabilities.shape[1]:
        names = [str(i) for i in range(probabilities.shape[1])]
    classes = np.argmax(probabilities, axis=1)
    lines = ["index,class_id,class_name,probability"]
    return lines + [f"{i},{c},{_csv_field(names[c])},{probabilities[i, c]:.6f}"
                    for i, c in enumerate(classes)]


def _csv_field(text) -> str:
    text = str(text)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n\r') else text


# -- the command line ----------------------------------------------------------------------------------
def _default_help(key: str) -> str:
    """``20`` or ``20; gru: 5``: the default of a setting and the presets' own."""
    from .presets import TRAINING_DEFAULTS

    own = [f"{preset}: {settings[key]:g}" for preset, settings in TRAINING_DEFAULTS.items()
           if key in settings]
    return "; ".join([f"{TRAIN_DEFAULTS[key]:g}", *own])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neural-networks", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"neural-networks {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a preset model and write a run folder",
                                description="Train a preset model and write a run folder. Names "
                                            "(dataset, model, optimizer) may be in any case.")
    train.add_argument("--dataset", help="digits (default), iris, wine, breast_cancer, mnist, "
                                         "fashion_mnist, cifar10, sinewave (a regression)")
    train.add_argument("--model", help="preset: cnn (default), mlp, lenet, vgg, gru (sequences)")
    train.add_argument("--epochs", type=int, help=f"number of epochs in total (default "
                                                  f"{_default_help('epochs')})")
    train.add_argument("--batch-size", type=int, dest="batch_size", help="default 32")
    train.add_argument("--optimizer", help="adam (default), adamw, sgd, rmsprop")
    train.add_argument("--lr", type=float, help=f"learning rate (default {_default_help('lr')})")
    train.add_argument("--seed", type=int, help="seed of the split, the weights and the batches "
                                                "(default 0)")
    train.add_argument("--data-dir", dest="data_dir", help="folder with MNIST/CIFAR-10 files")
    train.add_argument("--runs-dir", dest="runs_dir", help="where run folders go (default: runs)")
    train.add_argument("--config", type=Path, help="TOML file with the same keys (flags win)")
    train.add_argument("--verbose", type=int, metavar="{0,1,2}",
                       help="0 silent, 1 progress bar (default), 2 one line per epoch")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run from RUN_DIR/last.npz (only --epochs, "
                            "the new total, and --verbose may be given with it)")
    train.add_argument("--distributed", choices=("mpi",),
                       help="mpi: data-parallel over the processes of 'mpiexec -n K' (rank 0 writes the run)")

    no_preprocessing = ("feed the values as they are: the model records no preprocessing and "
                        "was trained on unprocessed data")
    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on a dataset's test split")
    evaluate.add_argument("model", type=Path, help="a run folder or a model .npz file")
    evaluate.add_argument("--dataset", help="default: the dataset the model was trained on")
    evaluate.add_argument("--data-dir", dest="data_dir")
    evaluate.add_argument("--no-preprocessing", action="store_true", help=no_preprocessing)

    predict = commands.add_parser("predict", help="predict classes (or a regression's values) for "
                                                  "samples in a .npy file")
    predict.add_argument("model", type=Path, help="a run folder or a model .npz file")
    predict.add_argument("inputs", type=Path, help=".npy array of raw samples (N, ...), or of "
                                                   "flat vectors (N, features)")
    predict.add_argument("--output", type=Path, help="CSV to write (default: "
                                                     "<inputs>.predictions.csv)")
    predict.add_argument("--no-preprocessing", action="store_true", help=no_preprocessing)

    export = commands.add_parser("export", help="export a saved model to ONNX")
    export.add_argument("model", type=Path, help="a run folder or a model .npz file")
    export.add_argument("-o", "--output", type=Path, help="ONNX file to write (default: <model>.onnx)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    return parser


def command_export(args: argparse.Namespace) -> int:
    from .export import to_onnx

    source, model = _load_model(args.model)
    output = args.output or source.with_suffix(".onnx")
    to_onnx(model, output, opset=args.opset)
    print(f"Wrote {output} (ONNX opset {args.opset}): input 'input' {model.dtype} of shape "
          f"(batch, {', '.join(map(str, model.input_shape))}), output 'output' = predict")
    return 0


COMMANDS = {"train": command_train, "evaluate": command_evaluate, "predict": command_predict,
            "export": command_export}

#: errors of the system about a path, shown as one line (the others are bugs: a traceback)
_USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP}


def _is_user_os_error(error: OSError) -> bool:
    return error.errno in _USER_ERRNOS and (
        error.filename is not None or error.errno in (errno.ENOSPC, errno.EDQUOT))


def _user_error(error: BaseException) -> str | None:
    """The one-line message of a user's mistake, None for a bug."""
    from .datasets import DatasetError

    if isinstance(error, (CommandError, NeuralNetworksError, DatasetError)):
        return str(error)
    if isinstance(error, FileNotFoundError) and error.errno is None:
        return str(error)  # raised on purpose with a message, e.g. "no model file at ..."
    if isinstance(error, OSError) and _is_user_os_error(error):
        where = f": {str(error.filename)!r}" if error.filename is not None else ""
        return f"{error.strerror or error}{where}"
    return None


def main(argv=None) -> int:
    """Entry point of the ``neural-networks`` console script."""
    try:
        args = _parser().parse_args(argv)
    except KeyboardInterrupt:
        print("neural-networks: interrupted", file=sys.stderr)
        return 130
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"\nneural-networks {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as error:
        message = _user_error(error)
        if message is None:
            raise
        print(f"neural-networks {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
