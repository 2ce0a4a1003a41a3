"""The progress display of fit: a bar and a summary line that fit 80 and 120 columns, with
validation metrics on the summary line and one number format."""

from __future__ import annotations

import io
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tqdm.utils import disp_len

from neural_networks.progress import MIN_BAR, EpochProgress, format_number, summary_line

NUMBER = r"-?\d+\.\d{3}|-?\d\.\d{2}e[+-]\d{2,3}"
LOGS = {"loss": 0.43881, "accuracy": 0.87549, "val_loss": 1.6901, "val_accuracy": 0.8612,
        "lr": 2e-3, "time": 12.34}


class Terminal(io.StringIO):
    """What a terminal receives."""

    def isatty(self):
        return True


class Pipe(io.StringIO):
    def isatty(self):
        return False


def frames(stream: io.StringIO) -> list[str]:
    """Each state of the bar line (tqdm redraws it after a carriage return)."""
    return [frame.rstrip() for frame in stream.getvalue().split("\r") if frame.strip()]


def run_epoch(columns, epoch=9, epochs=100, n_samples=50_000, verbose=1, logs=LOGS,
              bar_file=None, line_file=None):
    bar_file = Terminal() if bar_file is None else bar_file
    line_file = Terminal() if line_file is None else line_file
    progress = EpochProgress(verbose, epoch, epochs, n_samples, bar_file=bar_file,
                             line_file=line_file, columns=columns)
    step = n_samples // 10
    for i in range(10):
        progress.update(step, {"loss": logs["loss"] * (10 - i) / 10, "accuracy": logs["accuracy"]})
        if progress.bar is not None:
            progress.bar.refresh()
    progress.close(logs, n_samples)
    return bar_file, line_file


@pytest.mark.parametrize("columns", [80, 120])
def test_bar_and_summary_fit_the_terminal(columns):
    bar_file, line_file = run_epoch(columns)
    drawn = frames(bar_file)
    assert len(drawn) >= 10
    for frame in drawn:
        assert disp_len(frame) < columns, frame
        assert frame.startswith("Epoch 10/100")
    last = drawn[-1]
    assert "100%|" in last and "loss 0.044  acc 0.875" in last  # running metrics, not cut off
    bar = re.search(r"\|(.*)\|", last)[1]
    assert len(bar) >= MIN_BAR if columns == 80 else len(bar) >= 40
    assert "50.0k/50.0k" in last  # the counts still fit at 80 columns
    assert bar_file.getvalue().endswith("\r")  # the bar is cleared when the epoch ends

    (line,) = line_file.getvalue().splitlines()
    assert disp_len(line) < columns
    for shown in ("loss 0.439", "acc 0.875", "val_loss 1.690", "val_acc 0.861"):
        assert shown in line, line
    assert line.startswith("Epoch 10/100")
    if columns == 120:  # room for everything
        assert line.endswith(" - 12.3s - 4.1k samples/s - lr 2.00e-03"), line


@pytest.mark.parametrize("columns", [80, 120])
def test_every_number_has_one_format(columns):
    bar_file, line_file = run_epoch(columns, logs=LOGS | {"loss": 0.0003, "val_loss": 1.69})
    line = line_file.getvalue()
    assert "loss 3.00e-04" in line and "val_loss 1.690" in line
    for text in (line, frames(bar_file)[-1]):
        for name, value in re.findall(r"\b(loss|acc|val_loss|val_acc|lr) (\S+)", text):
            assert re.fullmatch(NUMBER, value), (name, value, text)


@pytest.mark.parametrize("columns", [30, 50, 60])
def test_a_narrow_terminal_drops_timings_before_metrics(columns):
    bar_file, line_file = run_epoch(columns, epoch=0, epochs=5)
    for frame in frames(bar_file)[1:]:  # the first is drawn before any batch
        assert disp_len(frame) < columns, frame
        assert "loss" in frame
    line = line_file.getvalue().strip()
    assert all(name in line for name in ("loss", "acc", "val_loss", "val_acc"))  # never dropped
    assert "lr" not in line.split("val_acc")[1]


def test_width_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    bar_file, line_file = Terminal(), Terminal()
    progress = EpochProgress(1, 0, 20, 1000, bar_file=bar_file, line_file=line_file)
    progress.update(1000, {"loss": 0.5, "accuracy": 0.5})
    progress.bar.refresh()
    progress.close(LOGS, 1000)
    assert max(disp_len(f) for f in frames(bar_file)) == 79
    assert disp_len(line_file.getvalue().strip()) < 80


def test_verbose_levels_and_streams():
    # verbose 0: nothing at all
    bar_file, line_file = run_epoch(80, verbose=0)
    assert bar_file.getvalue() == "" and line_file.getvalue() == ""
    # verbose 2: one summary line, no bar even on a terminal
    bar_file, line_file = run_epoch(80, verbose=2)
    assert bar_file.getvalue() == "" and len(line_file.getvalue().splitlines()) == 1
    # verbose 1 with no terminal: one full summary line (a log file is not cut to a width)
    bar_file, line_file = run_epoch(None, verbose=1, bar_file=Pipe(), line_file=Pipe())
    assert bar_file.getvalue() == ""
    assert line_file.getvalue() == ("Epoch 10/100 - loss 0.439 - acc 0.875 - val_loss 1.690 - "
                                    "val_acc 0.861 - 12.3s - 4.1k samples/s - lr 2.00e-03\n")


def test_regression_metrics_without_accuracy():
    logs = {"loss": 2.5, "accuracy": None, "val_loss": 3.25, "val_accuracy": None, "lr": 0.1, "time": 1.0}
    _, line_file = run_epoch(80, logs=logs)
    assert line_file.getvalue().strip() == ("Epoch 10/100 - loss 2.500 - val_loss 3.250 - 1.0s - "
                                            "50.0k samples/s - lr 0.100")


def test_summary_line_keeps_every_metric_even_when_too_wide():
    line = summary_line("Epoch 1000/1000", LOGS, 100, columns=40)
    assert line == "Epoch 1000/1000  loss 0.439  acc 0.875  val_loss 1.690  val_acc 0.861"


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1e300, max_value=1e300)
       | st.sampled_from([0.0, -0.0, 0.01, 0.00999, 999.9994, 999.9996, 1000.0, 1e-300, -5e-5]))
def test_format_number_is_short_and_reads_back(value):
    text = format_number(value)
    assert re.fullmatch(NUMBER, text), text
    assert len(text) <= 10
    back = float(text)
    if "e" in text:
        assert math.isclose(back, value, rel_tol=5e-3) or back == value
    else:
        assert abs(back - value) <= 5e-4 + 1e-12 * abs(value)
    assert 0.01 <= abs(value) < 1000 or value == 0 or "e" in text


def test_format_number_non_finite():
    assert [format_number(v) for v in (math.inf, -math.inf, math.nan)] == ["inf", "-inf", "nan"]
