"""The ``neural-networks`` command: train, evaluate and predict from the shell.

    neural-networks train                       # small CNN on the bundled digits
    neural-networks train --dataset iris --model mlp --epochs 50
    neural-networks evaluate runs/<run> --dataset digits
    neural-networks predict runs/<run>/model.npz inputs.npy
    neural-networks export runs/<run>             # writes runs/<run>/model.onnx
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import tomllib
from datetime import datetime
from pathlib import Path

import numpy as np

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


class CommandError(Exception):
    """A user error: printed as one line, exit code 2."""


# -- argument parsing ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neural-networks", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a preset model and write a run folder")
    train.add_argument("--dataset", help="digits (default), iris, wine, breast_cancer, mnist, fashion_mnist, cifar10")
    train.add_argument("--model", help="preset: cnn (default), mlp, lenet, vgg")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int, dest="batch_size")
    train.add_argument("--optimizer", help="adam (default), adamw, sgd, rmsprop")
    train.add_argument("--lr", type=float)
    train.add_argument("--seed", type=int)
    train.add_argument("--data-dir", dest="data_dir", help="folder with MNIST/CIFAR-10 files")
    train.add_argument("--runs-dir", dest="runs_dir", help="where run folders go (default: runs)")
    train.add_argument("--config", type=Path, help="TOML file with the same keys (flags win)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2))
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run from RUN_DIR/last.npz")
    train.add_argument("--distributed", choices=("mpi",),
                       help="mpi: data-parallel over the processes of 'mpiexec -n K' (rank 0 writes the run)")

    evaluate = commands.add_parser("evaluate", help="evaluate a saved model on a dataset's test split")
    evaluate.add_argument("model", type=Path, help="a run folder or a model .npz file")
    evaluate.add_argument("--dataset", help="default: the dataset the model was trained on")
    evaluate.add_argument("--data-dir", dest="data_dir")

    predict = commands.add_parser("predict", help="predict classes for samples in a .npy file")
    predict.add_argument("model", type=Path, help="a run folder or a model .npz file")
    predict.add_argument("inputs", type=Path, help=".npy array of raw samples (N, ...)")
    predict.add_argument("--output", type=Path, help="CSV to write (default: <inputs>.predictions.csv)")

    export = commands.add_parser("export", help="export a saved model to ONNX")
    export.add_argument("model", type=Path, help="a run folder or a model .npz file")
    export.add_argument("-o", "--output", type=Path, help="ONNX file to write (default: <model>.onnx)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    return parser


def _train_settings(args: argparse.Namespace) -> dict:
    settings = dict(TRAIN_DEFAULTS)
    if args.config is not None:
        settings |= _read_config(args.config)
    settings |= {k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None}
    for key in ("epochs", "batch_size"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise CommandError(f"--{key.replace('_', '-')} must be an integer >= 1, got {settings[key]!r}")
    if not isinstance(settings["lr"], (int, float)) or not settings["lr"] > 0:
        raise CommandError(f"--lr must be a number > 0, got {settings['lr']!r}")
    return settings


def _resumed_settings(args: argparse.Namespace, checkpoint: Path) -> dict:
    """The settings a run was started with (from its checkpoint); only --epochs (the new
    total) and --verbose may change."""
    from .serialization import read_archive

    if not checkpoint.is_file():
        raise CommandError(f"--resume: no checkpoint at {str(checkpoint)!r} (expected a run folder)")
    header, _ = read_archive(checkpoint)
    settings = (header.get("metadata") or {}).get("train_settings")
    if not isinstance(settings, dict):
        raise CommandError(f"--resume: {checkpoint} was not written by 'neural-networks train'")
    changed = [k for k, v in vars(args).items()
               if k in TRAIN_DEFAULTS and k not in ("epochs", "verbose") and v is not None and v != settings.get(k)]
    if changed:
        raise CommandError(f"--resume continues a run with its own settings; cannot change {changed}")
    settings = dict(TRAIN_DEFAULTS) | settings
    settings |= {k: getattr(args, k) for k in ("epochs", "verbose") if getattr(args, k) is not None}
    return settings


def _read_config(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        raise CommandError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise CommandError(f"config file {str(path)!r} is not valid TOML: {error}") from None
    config = {key.replace("-", "_"): value for key, value in config.items()}
    unknown = sorted(set(config) - set(TRAIN_DEFAULTS))
    if unknown:
        raise CommandError(f"config file {str(path)!r}: unknown keys {unknown}; known: {sorted(TRAIN_DEFAULTS)}")
    return config


# -- commands --------------------------------------------------------------------------------------
def _new_run_dir(runs_dir) -> Path:
    """runs/<timestamp>-<short id>/, created here so it is never reused."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(runs_dir) / f"{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def _build_model(settings: dict, splits):
    from .models import NeuralNetwork
    from .optimizers import initialize_optimizer
    from .presets import preset_layers

    layers = preset_layers(settings["model"], splits.input_shape, splits.n_classes)
    optimizer = initialize_optimizer(settings["optimizer"], lr=float(settings["lr"]))
    model = NeuralNetwork(layers, loss="cross_entropy", optimizer=optimizer, seed=settings["seed"])
    model.build(splits.input_shape)
    model.metadata = {
        "train_settings": settings,
        "dataset": splits.name,
        "dataset_seed": settings["seed"],
        "class_names": list(splits.class_names),
        "standardizer": splits.standardizer.get_state() if splits.standardizer else None,
        "preset": settings["model"],
    }
    return model


def command_train(args: argparse.Namespace) -> int:
    from .callbacks import JSONLogger, ModelCheckpoint
    from .utils.files import write_json_atomic
    from .datasets import load_dataset
    from .distributed import get_strategy

    distributed = get_strategy(args.distributed)  # one process unless --distributed

    if args.resume is not None:
        run_dir, resume_from = args.resume, args.resume / "last.npz"
        settings = _resumed_settings(args, resume_from)
    else:
        settings = _train_settings(args)
    splits = load_dataset(settings["dataset"], seed=settings["seed"], data_dir=settings["data_dir"])
    model = _build_model(settings, splits)
    if args.resume is None:  # rank 0 creates the run folder and tells the other ranks its name
        with distributed.together():
            created = str(_new_run_dir(settings["runs_dir"])) if distributed.is_root else None
        run_dir, resume_from = Path(distributed.broadcast(created)), None
    if distributed.is_root:
        print(f"Training {settings['model']} on {splits.name} ({len(splits.X_train)} train, "
              f"{len(splits.X_val)} validation, {len(splits.X_test)} test) → {run_dir}")
    if settings["verbose"] and resume_from is None and distributed.is_root:
        model.summary()
    started = time.perf_counter()
    try:
        history = model.fit(
            splits.X_train, splits.y_train, epochs=settings["epochs"],
            batch_size=settings["batch_size"], validation_data=(splits.X_val, splits.y_val),
            verbose=settings["verbose"], checkpoint=run_dir / "last.npz", resume=resume_from,
            callbacks=[ModelCheckpoint(run_dir / "best.npz"), JSONLogger(run_dir / "history.json")],
            distributed=distributed,
        )
    except KeyboardInterrupt:
        print(f"\nInterrupted. {run_dir / 'last.npz'} holds the last completed epoch; continue "
              f"with:\n  neural-networks train --resume {run_dir}", file=sys.stderr)
        return 130
    if not distributed.is_root:  # rank 0 writes the run folder
        return 0
    train_time = time.perf_counter() - started
    model.save(run_dir / "model.npz")
    test = model.evaluate(splits.X_test, splits.y_test)
    metrics = {"test_loss": test["loss"], "test_accuracy": test["accuracy"],
               "val_loss": history["val_loss"][-1], "val_accuracy": history["val_accuracy"][-1],
               "epochs": len(history.epochs), "train_seconds": train_time, "settings": settings}
    write_json_atomic(run_dir / "metrics.json", metrics)
    _write_plots(run_dir, model, history, splits)
    print(f"Test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f} "
          f"({train_time:.1f} s of training). Wrote {run_dir}/")
    return 0


def _write_plots(run_dir: Path, model, history, splits) -> None:
    from . import plotting
    from .layers import Conv2D

    try:
        plotting.plot_history(history, run_dir / "curves.png")
        predicted = np.argmax(model.predict(splits.X_test), axis=1)
        plotting.plot_confusion_matrix(splits.y_test, predicted, splits.class_names,
                                       run_dir / "confusion_matrix.png")
        first_conv = next((layer for layer in model.layers if isinstance(layer, Conv2D)), None)
        if first_conv is not None:
            plotting.plot_filters(first_conv.parameters["W"], run_dir / "filters.png")
    except plotting.PlottingUnavailable as error:
        print(f"(no plots: {error})")


def _model_path(path: Path) -> Path:
    if path.is_dir():
        path = path / "model.npz"
    if not path.is_file():
        raise CommandError(f"no model file at {str(path)!r}")
    return path


def _standardize(model, X: np.ndarray, already_unit_range: bool = False) -> np.ndarray:
    from .datasets import Standardizer

    state = model.metadata.get("standardizer")
    if not state:
        return X
    standardizer = Standardizer.from_state(state)
    if already_unit_range:
        standardizer.scale = 1.0  # the loader already divided the pixels by 255
    return standardizer.transform(X, dtype=model.dtype)


def command_evaluate(args: argparse.Namespace) -> int:
    from .datasets import FILE_DATASETS, load_dataset
    from .models import NeuralNetwork

    model = NeuralNetwork.load(_model_path(args.model))
    dataset = args.dataset or model.metadata.get("dataset")
    if dataset is None:
        raise CommandError("the model does not record its dataset: pass --dataset")
    splits = load_dataset(dataset, seed=model.metadata.get("dataset_seed", 0), standardize=False,
                          data_dir=args.data_dir)
    X_test = _standardize(model, splits.X_test, already_unit_range=dataset in FILE_DATASETS)
    scores = model.evaluate(X_test, splits.y_test)
    print(json.dumps({"dataset": dataset, "test_loss": scores["loss"],
                      "test_accuracy": scores["accuracy"], "n_samples": len(X_test)}))
    return 0


def command_predict(args: argparse.Namespace) -> int:
    from .models import NeuralNetwork

    model = NeuralNetwork.load(_model_path(args.model))
    try:
        X = np.load(args.inputs, allow_pickle=False)
    except FileNotFoundError:
        raise CommandError(f"no input file at {str(args.inputs)!r}") from None
    except (ValueError, OSError) as error:
        raise CommandError(f"{args.inputs}: not a readable .npy array ({error})") from None
    input_shape = tuple(model.input_shape)
    if X.ndim >= 2 and X.shape[1:] != input_shape and np.prod(X.shape[1:]) == np.prod(input_shape):
        X = X.reshape((len(X),) + input_shape)  # e.g. (N, 8, 8) images for an (8, 8, 1) model
    probabilities = model.predict(_standardize(model, X))
    names = model.metadata.get("class_names") or [str(i) for i in range(probabilities.shape[1])]
    output = args.output or args.inputs.with_suffix(".predictions.csv")
    classes = np.argmax(probabilities, axis=1)
    lines = ["index,class_id,class_name,probability"]
    lines += [f"{i},{c},{names[c]},{probabilities[i, c]:.6f}" for i, c in enumerate(classes)]
    output.write_text("\n".join(lines) + "\n")
    print(f"Wrote {len(classes)} predictions to {output}")
    return 0


def command_export(args: argparse.Namespace) -> int:
    from .export import to_onnx
    from .models import NeuralNetwork

    source = _model_path(args.model)
    model = NeuralNetwork.load(source)
    output = args.output or source.with_suffix(".onnx")
    to_onnx(model, output, opset=args.opset)
    print(f"Wrote {output} (ONNX opset {args.opset}): input 'input' {model.dtype} of shape "
          f"(batch, {', '.join(map(str, model.input_shape))}), output 'output' = predict")
    return 0


COMMANDS = {"train": command_train, "evaluate": command_evaluate, "predict": command_predict,
            "export": command_export}


def main(argv=None) -> int:
    """Entry point of the ``neural-networks`` console script."""
    from .datasets import DatasetError, MissingDependencyError
    from .errors import DistributedError, FormatError

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (CommandError, ValueError, TypeError, FileNotFoundError, FormatError,
            DatasetError, MissingDependencyError, DistributedError) as error:
        print(f"neural-networks {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
