"""Benchmarks of neural_networks against PyTorch CPU eager: ``python -m benchmarks``.

Nothing here imports NumPy at import time: ``python -m benchmarks`` must limit the
BLAS thread count before NumPy (and OpenBLAS) are loaded.
"""
