"""Random generators as state: seeding child generators and saving/restoring them.

Every random draw in the library comes from a ``numpy.random.Generator`` that the model
hands out from its seed (one per layer, one for the data order), so a seeded run is
reproducible and a resumed run continues each stream exactly.

>>> rng = np.random.default_rng(0)
>>> state = generator_state(rng)
>>> first = rng.random()
>>> generator_from_state(state).random() == first
True
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidParameterError

_BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                   "MT19937": np.random.MT19937, "Philox": np.random.Philox,
                   "SFC64": np.random.SFC64}


def generator_state(rng: np.random.Generator | None) -> dict | None:
    """A generator's state as JSON-able values (None for no generator)."""
    return None if rng is None else rng.bit_generator.state


def generator_from_state(state: dict) -> np.random.Generator:
    """A new generator continuing exactly from ``generator_state``'s result."""
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    if kind not in _BIT_GENERATORS:
        raise InvalidParameterError(f"rng: unknown bit generator state {kind!r}")
    bit_generator = _BIT_GENERATORS[kind]()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as error:
        raise InvalidParameterError(f"rng: invalid {kind} state ({error})") from None
    return np.random.Generator(bit_generator)


class SeedSource:
    """Hands out independent child generators from one seed (None: fresh entropy)."""

    def __init__(self, seed: int | None) -> None:
        self._sequence = np.random.SeedSequence(seed) if seed is not None else None

    def generator(self) -> np.random.Generator:
        if self._sequence is None:
            return np.random.default_rng()
        return np.random.default_rng(self._sequence.spawn(1)[0])
