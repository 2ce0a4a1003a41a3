"""``python -m benchmarks`` runs end to end on a tiny configuration.

The timings of a shared CI machine mean nothing, so no timing is looked at: these
tests fail on a crash, on the two libraries' probabilities disagreeing by more than
1e-4 (same weights copied into both), or on a worker not pinned to the thread count.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AGREEMENT = 1e-4


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
    for name, workload in results["workloads"].items():
        difference = workload["agreement"]["max_abs_diff_probabilities"]
        assert difference <= AGREEMENT, f"{name}: ours and torch probabilities differ by {difference:.3e}"
        for kind in ("train", "inference"):
            assert len(workload[kind]["paired_ratios"]) == 1
    workers = results["machine"]["workers"]
    assert workers["ours"]["pid"] != workers["torch"]["pid"]  # each library in its own process
    assert workers["torch"]["torch_threads"] == 1
    for library, info in workers.items():
        for pool in info["thread_pools"]:  # empty without threadpoolctl
            assert pool["num_threads"] == 1, f"{library}: {pool}"


def test_quick_run_without_torch(tmp_path):
    stdout, results = run_benchmark(tmp_path, "--workloads", "cnn", "--no-torch", "--keep-freed-memory")
    assert list(results["workloads"]) == ["cnn"]
    assert "torch samples/s" not in stdout
    assert "torch" not in results["machine"]["workers"]
