"""Hyper-parameter sweeps outside the calling process: GridSearchCV over a Pipeline with
NeuralNetworkClassifier on a local two-worker ``dask.distributed`` cluster and on joblib's
loky worker processes gives exactly what the same search gives in this process, and
fitted estimators travel to and from the workers intact."""

import contextlib
import os
import signal
import warnings

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import neural_networks
from neural_networks.sklearn import NeuralNetworkClassifier

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

CLUSTER_START_SECONDS = 120  # a loaded 2-core machine takes ~5 s to start the cluster
SEARCH_SECONDS = 180
PARAM_GRID = {"neuralnetworkclassifier__hidden_layer_sizes": [(4,), (16,)],
              "neuralnetworkclassifier__learning_rate_init": [0.01, 0.03]}
# fit and score times differ from run to run; the pid column tells where each fit ran
UNEQUAL_COLUMNS = {"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"}


@contextlib.contextmanager
def time_limit(seconds: int):
    """Raise TimeoutError in this (main) thread after ``seconds``, so that a stuck cluster
    fails the test, and the ``with`` blocks around it still shut the cluster down."""
    if not hasattr(signal, "SIGALRM"):  # pragma: no cover - not on Windows
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"gave up after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A client of a local cluster of two single-threaded worker processes, on loopback."""
    with contextlib.ExitStack() as stack:
        with time_limit(CLUSTER_START_SECONDS):
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=None, local_directory=str(tmp_path_factory.mktemp("dask"))))
            client = stack.enter_context(distributed.Client(cluster))
            client.wait_for_workers(2, timeout=CLUSTER_START_SECONDS)
        yield client


def worker_pids(client) -> set[int]:
    pids = client.run(os.getpid)  # {worker address: pid}
    assert len(pids) == 2
    return set(pids.values())


def make_scorer_with_pid():
    """Scores of a fitted pipeline, plus the id of the process that fitted it.

    Built in a function so that cloudpickle sends it by value: the workers need not
    import this test module."""

    def scores(pipeline, X, y):
        network = pipeline[-1]
        return {"neg_log_loss": -log_loss(y, pipeline.predict_proba(X), labels=network.classes_),
                "accuracy": pipeline.score(X, y),
                "training_loss": network.loss_,  # continuous: any drift in training shows here
                "pid": os.getpid()}

    return scores


def grid_search(X, y, n_jobs: int) -> GridSearchCV:
    pipeline = make_pipeline(StandardScaler(), NeuralNetworkClassifier(
        batch_size=32, max_iter=30, random_state=0))
    search = GridSearchCV(pipeline, PARAM_GRID, scoring=make_scorer_with_pid(), refit="neg_log_loss",
                          cv=StratifiedKFold(3, shuffle=True, random_state=0), n_jobs=n_jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 30 epochs: on purpose
        return search.fit(X, y)


def fit_pids(search: GridSearchCV) -> set[int]:
    return {int(pid) for split in range(search.n_splits_)
            for pid in search.cv_results_[f"split{split}_test_pid"]}


def assert_same_search(search: GridSearchCV, reference: GridSearchCV) -> None:
    assert search.best_params_ == reference.best_params_
    assert search.best_index_ == reference.best_index_
    assert search.best_score_ == pytest.approx(reference.best_score_, rel=0, abs=1e-12)
    assert search.cv_results_.keys() == reference.cv_results_.keys()
    for column, expected in reference.cv_results_.items():
        got = search.cv_results_[column]
        if column in UNEQUAL_COLUMNS or column.endswith("_pid"):
            continue
        if column == "params" or column.startswith("param_"):
            assert list(got) == list(expected), column
        else:
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12, err_msg=column)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def in_process_search(iris):
    with threadpool_limits(1):  # as the workers: one BLAS thread each
        search = grid_search(*iris, n_jobs=1)
    assert fit_pids(search) == {os.getpid()}
    # the candidates differ, so equal results below are not an accident of the grid
    assert len(set(search.cv_results_["mean_test_training_loss"])) == 4
    return search


def test_grid_search_on_a_dask_cluster_equals_the_in_process_search(client, iris, in_process_search):
    workers = worker_pids(client)
    # the workers run this very package, not some other installed copy
    assert set(client.run(lambda: neural_networks.__file__).values()) == {neural_networks.__file__}
    with time_limit(SEARCH_SECONDS), joblib.parallel_backend("dask"):
        search = grid_search(*iris, n_jobs=-1)
    assert fit_pids(search) == workers  # every fit ran on a worker, and both workers fitted
    assert_same_search(search, in_process_search)


def test_grid_search_on_loky_processes_equals_the_in_process_search(iris, in_process_search):
    with time_limit(SEARCH_SECONDS):
        search = grid_search(*iris, n_jobs=2)
    assert os.getpid() not in fit_pids(search)
    assert_same_search(search, in_process_search)


def test_fitted_estimators_come_back_from_the_workers_intact(client, iris):
    """cross_validate returns the pipelines fitted on the workers: they predict what the same
    fits in this process predict, bit for bit, and train on identically."""
    X, y = iris
    pipeline = make_pipeline(StandardScaler(), NeuralNetworkClassifier(
        (8,), batch_size=32, max_iter=10, n_iter_no_change=100, random_state=0))
    folds = StratifiedKFold(3, shuffle=True, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with time_limit(SEARCH_SECONDS), joblib.parallel_backend("dask"):
            remote = cross_validate(pipeline, X, y, cv=folds, return_estimator=True, n_jobs=-1)
        with threadpool_limits(1):
            local = cross_validate(pipeline, X, y, cv=folds, return_estimator=True, n_jobs=1)
    for theirs, ours in zip(remote["estimator"], local["estimator"]):
        assert np.array_equal(theirs.predict_proba(X), ours.predict_proba(X))
        assert theirs[-1].loss_curve_ == ours[-1].loss_curve_
        with threadpool_limits(1):
            theirs[-1].partial_fit(theirs[0].transform(X), y)
            ours[-1].partial_fit(ours[0].transform(X), y)
        assert np.array_equal(theirs.predict_proba(X), ours.predict_proba(X))
