"""Benchmarks of neural_networks against PyTorch CPU eager: ``python -m benchmarks``.

Each library runs in a worker process of its own (``benchmarks.worker``); nothing here
imports NumPy at import time, so that a worker pins its thread count before NumPy (and
OpenBLAS) or torch are loaded.
"""
