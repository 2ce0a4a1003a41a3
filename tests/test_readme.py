"""The README's tables say what the library has: every registered layer, activation, loss
and preset is listed under its factory name, and nothing listed is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from neural_networks.activations import ACTIVATIONS
from neural_networks.layers import LAYERS
from neural_networks.losses import LOSSES
from neural_networks.presets import PRESETS

README = Path(__file__).resolve().parents[1] / "README.md"


def table_row(first_cell: str) -> str:
    """The README table row whose first cell starts with ``first_cell``."""
    rows = [line for line in README.read_text(encoding="utf-8").splitlines()
            if line.startswith(f"| {first_cell}")]
    assert len(rows) == 1, f"one README table row for {first_cell!r}, found {len(rows)}"
    return rows[0]


@pytest.mark.parametrize("module, factory, registry", [
    ("layers", "initialize_layer", LAYERS),
    ("activations", "initialize_activation", ACTIVATIONS),
    ("losses", "initialize_loss", LOSSES),
])
def test_the_modules_table_lists_every_registered_name(module, factory, registry):
    row = table_row(f"`{module}` (`{factory}`)")
    entries = row.split("|")[2]
    listed = set(re.findall(r"`([a-z0-9_]+)`", entries))
    assert listed == set(registry)
    for name, cls in registry.items():  # each name next to its class
        assert re.search(rf"{cls.__name__}: (`\w+` or )?`{name}`", entries), (name, cls.__name__)


def test_the_presets_table_lists_every_preset():
    for name in PRESETS:
        table_row(f"`{name}`")
