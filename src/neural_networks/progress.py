"""Progress display of a training run: a bar per epoch on a terminal, else one line per epoch."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class EpochProgress:
    """A tqdm bar per epoch (verbose=1 on a terminal), else one line per epoch (verbose=2,
    or verbose=1 when output is not a terminal); nothing for verbose=0."""

    def __init__(self, verbose: int, epoch: int, epochs: int, n_samples: int) -> None:
        self.verbose = verbose
        self.prefix = f"Epoch {epoch + 1}/{epochs}"
        self.bar = None
        if verbose == 1 and sys.stderr.isatty():
            self.bar = tqdm(total=n_samples, desc=self.prefix, unit="sample", unit_scale=True,
                            leave=True, dynamic_ncols=True)

    def update(self, n_samples: int, running: dict) -> None:
        if self.bar is not None:
            self.bar.update(n_samples)
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in running.items() if v is not None},
                                 refresh=False)

    def close(self, logs: dict, n_samples: int) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k != "time" and v is not None})
            self.bar.close()
        elif self.verbose in (1, 2):
            rate = n_samples / logs["time"] if logs["time"] > 0 else float("inf")
            metrics = " - ".join(
                f"{k} {v:.4f}" for k, v in logs.items() if k not in ("time", "lr") and v is not None
            )
            print(f"{self.prefix} - {logs['time']:.1f}s - {rate:,.0f} samples/s - {metrics} "
                  f"- lr {logs['lr']:.3g}", flush=True)


