"""Entry point: ``python -m benchmarks [--quick] [--workloads mlp,cnn] [--threads N] [--output PATH]``."""

from .cli import main

raise SystemExit(main())
