"""The course's experiment logger, kept for its scripts: JSON instead of pickle, and
only the loss and error curves are redrawn (not one figure per parameter per epoch)."""

from __future__ import annotations

from pathlib import Path

from .utils.files import write_json_atomic


class Logger:
    """Collects one log per epoch: ``{"loss": {"train", "validate"}, "error": {...}}``.

    With ``save``, the logs (and the model/data arguments) are written as JSON under
    ``save_dir/model_name/``; with ``plot``, ``loss.png`` and ``error.png`` are redrawn
    after every push (needs the ``plot`` extra).
    """

    def __init__(self, model_name: str, model_args=None, data_args=None, save: bool = False,
                 plot: bool = False, save_dir="experiments/") -> None:
        self.model_name = model_name
        self.save = save
        self.plot = plot
        self.save_dir = Path(save_dir) / model_name
        self.log: list[dict] = []
        if save or plot:
            self.save_dir.mkdir(parents=True, exist_ok=True)
        if save:
            write_json_atomic(self.save_dir / "model_args.json", _plain(model_args))
            write_json_atomic(self.save_dir / "data_args.json", _plain(data_args))

    def push(self, log: dict) -> None:
        self.log.append(log)
        if self.save:
            write_json_atomic(self.save_dir / "log.json", _plain(self.log))
        if self.plot:
            self._plot()

    def reset(self) -> None:
        self.log = []

    def _plot(self) -> None:
        from .plotting import _pyplot, _save

        plt = _pyplot()
        for metric in ("loss", "error"):
            figure, axis = plt.subplots(figsize=(8, 5))
            for split in ("train", "validate"):
                points = [(i + 1, entry[metric][split]) for i, entry in enumerate(self.log)
                          if entry.get(metric, {}).get(split) is not None]
                if points:
                    axis.plot(*zip(*points), label=split)
            axis.set_title(self.model_name)
            axis.set_xlabel("epoch")
            axis.set_ylabel(metric)
            axis.legend()
            _save(figure, plt, self.save_dir / f"{metric}.png")


def _plain(value):
    """Arguments as JSON values (AttrDicts become dicts; anything else its repr)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
