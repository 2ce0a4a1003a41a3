"""What ``fit`` shows while it trains: a progress bar per epoch that fits the terminal,
then one summary line per epoch with every metric, validation included.

>>> format_number(0.43881), format_number(1.69), format_number(0.0003), format_number(0)
('0.439', '1.690', '3.00e-04', '0.000')
>>> summary_line("Epoch 3/20", {"loss": 0.4388, "accuracy": 0.875, "val_loss": 0.512,
...                              "val_accuracy": 0.861, "lr": 0.002, "time": 2.1}, 1527)
'Epoch 3/20 - loss 0.439 - acc 0.875 - val_loss 0.512 - val_acc 0.861 - 2.1s - 727 samples/s - lr 2.00e-03'
>>> summary_line("Epoch 3/20", {"loss": 0.4388, "accuracy": 0.875, "val_loss": 0.512,
...                              "val_accuracy": 0.861, "lr": 0.002, "time": 2.1}, 1527, columns=80)
'Epoch 3/20  loss 0.439  acc 0.875  val_loss 0.512  val_acc 0.861  2.1s'
"""

from __future__ import annotations

import math
import os
import shutil
import sys

from tqdm.auto import tqdm
from tqdm.utils import disp_len

__all__ = ["EpochProgress", "format_number", "summary_line"]

#: shorter names for the metrics fit logs, so that a line fits 80 columns
SHORT_NAMES = {"accuracy": "acc", "val_accuracy": "val_acc"}
#: the metrics in the order they are shown; others follow in the order they come
METRIC_ORDER = ("loss", "accuracy", "val_loss", "val_accuracy")
#: narrowest bar worth drawing; below it the bar is left out
MIN_BAR = 10

# Bar layouts from the richest to the poorest; the first whose text leaves MIN_BAR
# columns for the bar is drawn. "{metrics}" is filled in by us, the rest by tqdm.
_BAR_LAYOUTS = (
    "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {metrics}",
    "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {metrics}",
    "{desc} {percentage:3.0f}%|{bar}| {metrics}",
    "{desc} {percentage:3.0f}% {metrics}",
)


def format_number(value: float) -> str:
    """The one format of every number on the progress display: three decimals, or three
    significant digits in scientific notation when three decimals would show fewer than
    two of them (below 0.01) or the number is 1000 or more."""
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    if value == 0 or 0.01 <= abs(value) < 1000:
        return f"{value:.3f}"
    return f"{value:.2e}"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate(n_samples: int, seconds: float) -> str:
    if seconds <= 0:
        return "- samples/s"
    rate = n_samples / seconds
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= limit:
            return f"{rate / limit:.1f}{suffix} samples/s"
    return f"{rate:.0f} samples/s"


def _metrics(logs: dict) -> list[str]:
    """"name value" for every metric in ``logs`` that has a value (lr and time excluded)."""
    keys = [k for k in METRIC_ORDER if k in logs] + [
        k for k in logs if k not in METRIC_ORDER and k not in ("lr", "time")]
    return [f"{SHORT_NAMES.get(k, k)} {format_number(logs[k])}" for k in keys if logs[k] is not None]


def summary_line(prefix: str, logs: dict, n_samples: int, columns: int | None = None) -> str:
    """The line printed when an epoch ends: ``prefix``, every metric (validation included),
    then the time, the throughput and the learning rate. When ``columns`` is given the line
    is kept narrower than that: two spaces replace the " - " separators, then the learning
    rate, the throughput and the time are left out, in that order, until it fits; the
    metrics themselves are always shown."""
    metrics = _metrics(logs)
    extras = []
    if logs.get("time") is not None:
        extras += [_duration(logs["time"]), _rate(n_samples, logs["time"])]
    if logs.get("lr") is not None:
        extras.append(f"lr {format_number(logs['lr'])}")
    candidates = [(" - ", extras)] + [("  ", extras[:keep]) for keep in range(len(extras), -1, -1)]
    line = ""
    for separator, kept in candidates:
        line = separator.join([prefix, *metrics, *kept])
        if columns is None or disp_len(line) < columns:
            break
    return line


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _terminal_columns(stream) -> int:
    """Width of the terminal ``stream`` writes to ($COLUMNS first, as the shell sets it)."""
    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return shutil.get_terminal_size().columns


class EpochProgress:
    """Progress of one epoch: a bar while it runs (``verbose=1`` on a terminal), then one
    summary line with every metric (``verbose`` 1 or 2); nothing for ``verbose=0``.

    The bar goes to ``bar_file`` (standard error) and is cleared when the epoch ends; the
    summary line goes to ``line_file`` (standard output). On a terminal both fit its width
    (``columns`` overrides it): the bar drops its timings and counts before it would be cut,
    the summary line its timings (see ``summary_line``). Every number has one format
    (``format_number``).

    >>> import io
    >>> out = io.StringIO()
    >>> progress = EpochProgress(2, 0, 5, 100, line_file=out)
    >>> progress.update(100, {"loss": 0.5, "accuracy": 0.75})
    >>> progress.close({"loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.7,
    ...                 "lr": 0.01, "time": 0.5}, 100)
    >>> out.getvalue()
    'Epoch 1/5 - loss 0.500 - acc 0.750 - val_loss 0.600 - val_acc 0.700 - 0.5s - 200 samples/s - lr 0.010\\n'
    """

    def __init__(self, verbose: int, epoch: int, epochs: int, n_samples: int, *,
                 bar_file=None, line_file=None, columns: int | None = None) -> None:
        self.verbose = verbose
        self.prefix = f"Epoch {epoch + 1}/{epochs}"
        self.bar_file = sys.stderr if bar_file is None else bar_file
        self.line_file = sys.stdout if line_file is None else line_file
        self.columns = columns
        self.bar = None
        self._layout_key = None
        if verbose == 1 and _isatty(self.bar_file):
            self.bar = tqdm(total=n_samples, desc=self.prefix, unit="", unit_scale=True,
                            leave=False, file=self.bar_file, dynamic_ncols=False,
                            bar_format=self._bar_format(""), ncols=self._bar_columns())

    # -- the bar -----------------------------------------------------------------------------
    def _bar_columns(self) -> int:
        # one column short of the width, as tqdm does, so the cursor never wraps
        return (self.columns or _terminal_columns(self.bar_file)) - 1

    @staticmethod
    def _bar_format(metrics: str, layout: str = _BAR_LAYOUTS[0]) -> str:
        return layout.replace("{metrics}", metrics.replace("{", "{{").replace("}", "}}")).rstrip()

    def _fit_layout(self, metrics: str) -> None:
        """Pick the richest layout that leaves the bar at least MIN_BAR columns."""
        ncols = self._bar_columns()
        key = (ncols, len(metrics))
        if key == self._layout_key:
            self.bar.bar_format = self._bar_format(metrics, self._layout)
            return
        state = dict(self.bar.format_dict, ncols=None)  # ncols None: a 10-column bar
        for layout in _BAR_LAYOUTS:
            text = self.bar.format_meter(**dict(state, bar_format=self._bar_format(metrics, layout)))
            width = disp_len(text) - (10 if "{bar}" in layout else 0)
            if width + ("{bar}" in layout) * MIN_BAR <= ncols:
                break
        self._layout, self._layout_key = layout, key
        self.bar.ncols = ncols
        self.bar.bar_format = self._bar_format(metrics, layout)

    def update(self, n_samples: int, running: dict) -> None:
        """``n_samples`` more samples were trained on; ``running`` holds the metrics so far."""
        if self.bar is not None:
            self._fit_layout("  ".join(_metrics(running)))
            self.bar.update(n_samples)

    def close(self, logs: dict, n_samples: int) -> None:
        """The epoch ended with ``logs`` (its metrics, lr and time) over ``n_samples``."""
        if self.bar is not None:
            self.bar.close()  # leave=False: the bar is cleared, the summary takes its place
        if self.verbose in (1, 2):
            columns = self.columns or (_terminal_columns(self.line_file)
                                       if _isatty(self.line_file) else None)
            print(summary_line(self.prefix, logs, n_samples, columns), file=self.line_file,
                  flush=True)
