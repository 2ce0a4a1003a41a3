"""``python -m benchmarks`` runs end to end on a tiny configuration.

Only crashes fail these tests: the timings of a shared CI machine mean nothing, so
nothing here looks at a number.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_benchmark(tmp_path, *arguments):
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--batch", "2", "--repeats", "1",
         "--threads", "1", "--output", str(output), *arguments],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
    return completed.stdout, json.loads(output.read_text())


def test_quick_run_of_every_workload_against_torch(tmp_path):
    pytest.importorskip("torch")
    stdout, results = run_benchmark(tmp_path, "--workloads", "mlp,cnn,cifar")
    assert set(results["workloads"]) == {"mlp", "cnn", "cifar"}
    assert "torch samples/s" in stdout


def test_quick_run_without_torch(tmp_path):
    stdout, results = run_benchmark(tmp_path, "--workloads", "cnn", "--no-torch", "--keep-freed-memory")
    assert list(results["workloads"]) == ["cnn"]
    assert "torch samples/s" not in stdout
