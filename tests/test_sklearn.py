"""The scikit-learn estimators: scikit-learn's own estimator checks, Pipeline / GridSearchCV /
cross-validation against MLPClassifier, round trips, labels, warm starts and partial_fit."""

import io
import math
import pickle
import warnings
from contextlib import redirect_stdout

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_digits, load_iris
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks
from threadpoolctl import threadpool_limits

from neural_networks.errors import InvalidParameterError
from neural_networks.layers import Conv2D, Flatten, FullyConnected, Pool2D
from neural_networks.sklearn import NeuralNetworkClassifier, NeuralNetworkRegressor

# small settings: scikit-learn's checks fit these a few hundred times
CHECKED = [
    NeuralNetworkClassifier((16,), learning_rate_init=0.01, max_iter=100),
    NeuralNetworkRegressor((16,), learning_rate_init=0.01, max_iter=100),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(CHECKED, expected_failed_checks=lambda estimator: {})
def test_scikit_learn_estimator_checks(estimator, check, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")  # otherwise the array-API check skips itself
    check(estimator)


@pytest.mark.parametrize("estimator", CHECKED, ids=lambda e: type(e).__name__)
def test_no_tag_excuses_a_check(estimator):
    tags = get_tags(estimator)
    assert not tags.non_deterministic
    assert not (tags.classifier_tags or tags.regressor_tags).poor_score
    assert tags.requires_fit and not tags.no_validation


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", CHECKED, ids=lambda e: type(e).__name__)
def test_parameter_constraints_as_scikit_learn_checks_its_own(estimator):
    # every parameter declared, and a wrong type or value refused by fit and partial_fit
    check_param_validation(type(estimator).__name__, estimator)


# -- Pipeline, GridSearchCV and cross-validation against scikit-learn's MLP ------------------
def test_pipeline_grid_search_and_cross_validation_match_mlp():
    X, y = load_breast_cancer(return_X_y=True)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    settings = dict(learning_rate_init=3e-3, max_iter=50, random_state=0)
    ours = make_pipeline(StandardScaler(), NeuralNetworkClassifier((64,), **settings))
    # the same hidden sizes, optimizer (adam), learning rate and epochs; no L2 penalty in either
    theirs = make_pipeline(StandardScaler(), MLPClassifier((64,), solver="adam", alpha=0.0, **settings))
    with warnings.catch_warnings(), threadpool_limits(1):  # tiny matrices: one BLAS thread is faster
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid = GridSearchCV(ours, {"neuralnetworkclassifier__hidden_layer_sizes": [(16,), (64,)]},
                            cv=folds, n_jobs=2).fit(X, y)
        our_scores = cross_val_score(ours, X, y, cv=folds)
        their_scores = cross_val_score(theirs, X, y, cv=folds)

    # the worker processes trained exactly what this process trains
    index = grid.cv_results_["params"].index({"neuralnetworkclassifier__hidden_layer_sizes": (64,)})
    assert grid.cv_results_["mean_test_score"][index] == pytest.approx(our_scores.mean(), abs=1e-12)
    assert grid.best_estimator_.score(X, y) > 0.95
    assert abs(our_scores.mean() - their_scores.mean()) <= 0.01, (our_scores, their_scores)


def test_cnn_in_a_pipeline_with_input_shape():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    cnn = NeuralNetworkClassifier(
        layers=[{"type": "conv2d", "n_out": 8, "kernel_shape": 3, "activation": "relu"},
                {"type": "pool2d", "kernel_shape": 2, "stride": 2}],
        input_shape=(8, 8, 1), learning_rate_init=3e-3, batch_size=32, max_iter=8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline = make_pipeline(StandardScaler(), cnn).fit(X_train, y_train)
    model = pipeline[-1].model_
    assert [type(layer) for layer in model.layers] == [Conv2D, Pool2D, Flatten, FullyConnected]
    assert model.input_shape == (8, 8, 1) and model.layers[-1].n_out == 10
    assert pipeline.predict_proba(X_test).shape == (len(X_test), 10)
    assert pipeline.score(X_test, y_test) > 0.9


# -- round trips ---------------------------------------------------------------------------------
def iris_fit(**settings):
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    defaults = dict(hidden_layer_sizes=(8,), learning_rate_init=0.01, max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return NeuralNetworkClassifier(**(defaults | settings)).fit(X, y), X, y


def joblib_round_trip(estimator, tmp_path):
    joblib.dump(estimator, tmp_path / "estimator.joblib")
    return joblib.load(tmp_path / "estimator.joblib")


@pytest.mark.parametrize("round_trip", [lambda e, _: pickle.loads(pickle.dumps(e)), joblib_round_trip],
                         ids=["pickle", "joblib"])
def test_fitted_estimator_round_trips(round_trip, tmp_path):
    clf, X, y = iris_fit()
    same = round_trip(clf, tmp_path)
    assert np.array_equal(same.predict_proba(X), clf.predict_proba(X))  # bit for bit
    assert same.loss_curve_ == clf.loss_curve_ and same.n_iter_ == clf.n_iter_
    # the unpickled one trains on exactly as the original does
    clf.partial_fit(X, y)
    same.partial_fit(X, y)
    assert np.array_equal(same.predict_proba(X), clf.predict_proba(X))


def test_fitted_network_saves_and_loads(tmp_path):
    import neural_networks as nn

    clf, X, _ = iris_fit()
    loaded = nn.load(clf.model_.save(tmp_path / "iris.npz"))
    assert np.array_equal(loaded.predict(X), clf.predict_proba(X))


def test_clone_gives_an_unfitted_twin_that_refits_identically():
    clf, X, y = iris_fit()
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "model_")
    with pytest.raises(NotFittedError):
        twin.predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        twin.fit(X, y)
    assert np.array_equal(twin.predict_proba(X), clf.predict_proba(X))


def test_random_state_makes_fit_repeatable_and_seeds_matter():
    first, X, _ = iris_fit(random_state=3)
    again, _, _ = iris_fit(random_state=np.random.RandomState(3))  # same stream, same seed drawn
    other, _, _ = iris_fit(random_state=4)
    assert np.array_equal(first.predict_proba(X), again.predict_proba(X))
    assert not np.array_equal(first.predict_proba(X), other.predict_proba(X))


# -- labels ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_object", [False, True])
def test_string_labels(as_object):
    X, y = load_iris(return_X_y=True)
    names = np.array(["virginica", "setosa", "versicolor"])[y]  # not in sorted order
    names = names.astype(object) if as_object else names
    clf = NeuralNetworkClassifier((8,), learning_rate_init=0.01, batch_size=16, max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(StandardScaler().fit_transform(X), names)
    X = StandardScaler().fit_transform(X)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    predicted = clf.predict(X)
    assert predicted.dtype == names.dtype and set(predicted) <= set(clf.classes_)
    assert np.array_equal(predicted, clf.classes_[np.argmax(clf.predict_proba(X), axis=1)])
    assert clf.score(X, names) > 0.9


def test_dataframe_feature_names():
    pytest.importorskip("pandas")
    data = load_iris(as_frame=True)
    clf = NeuralNetworkClassifier((8,), max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(data.data, data.target)
    assert list(clf.feature_names_in_) == list(data.data.columns) and clf.n_features_in_ == 4
    assert clf.predict(data.data).shape == (150,)
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(data.data[data.data.columns[::-1]])


# -- partial_fit and warm starts ----------------------------------------------------------------
def test_partial_fit_continues_a_fit_exactly():
    """fit for 3 epochs, then 2 partial_fit calls = fit for 5 epochs, bit for bit: same data
    order, and the optimizer's moments carried on."""
    settings = dict(n_iter_no_change=1000)  # no stopping: every fit runs max_iter epochs
    three, X, y = iris_fit(max_iter=3, **settings)
    five, _, _ = iris_fit(max_iter=5, **settings)
    model = three.model_
    three.partial_fit(X, y).partial_fit(X, y)
    assert three.model_ is model and three.n_iter_ == 1 and len(three.loss_curve_) == 5
    assert three.loss_curve_ == five.loss_curve_
    assert np.array_equal(three.predict_proba(X), five.predict_proba(X))


def test_partial_fit_from_scratch_needs_classes_and_keeps_them():
    X, y = load_iris(return_X_y=True)
    clf = NeuralNetworkClassifier((8,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])  # class 2 not seen yet
    assert list(clf.classes_) == [0, 1, 2] and clf.predict_proba(X).shape == (150, 3)
    clf.partial_fit(X[y == 2], y[y == 2])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1])


def test_warm_start_goes_on_from_the_fitted_weights():
    cold, X, y = iris_fit(max_iter=4)
    warm, _, _ = iris_fit(max_iter=4, warm_start=True)
    model = warm.model_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
        warm.fit(X, y)
    assert len(cold.loss_curve_) == 4 and len(warm.loss_curve_) == 8
    assert warm.model_ is model
    # starting afresh repeats the first fit; going on starts from a lower loss
    first, _, _ = iris_fit(max_iter=4)
    assert np.array_equal(cold.predict_proba(X), first.predict_proba(X))
    assert warm.loss_curve_[4] < warm.loss_curve_[0]
    with pytest.raises(ValueError, match="same classes"):
        warm.fit(X[y < 2], y[y < 2])


# -- stopping ------------------------------------------------------------------------------------------
def mlp_stopping_epoch(losses, tol, n_iter_no_change):
    """The 1-based epoch after which MLP's rule on the training loss stops, or None."""
    best, count = math.inf, 0
    for epoch, loss in enumerate(losses, start=1):
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > n_iter_no_change:
            return epoch
    return None


def test_training_loss_stopping_rule_is_mlps():
    clf, _, _ = iris_fit(max_iter=300, tol=1e-2, n_iter_no_change=2)
    assert clf.n_iter_ < 300
    assert mlp_stopping_epoch(clf.loss_curve_, 1e-2, 2) == clf.n_iter_
    assert clf.best_loss_ == min(clf.loss_curve_)


def test_early_stopping_keeps_the_best_validation_weights():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = NeuralNetworkClassifier((32,), learning_rate_init=0.01, batch_size=16, max_iter=200, tol=0.0,
                                  early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                                  random_state=0).fit(X, y)
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) > clf.validation_scores_[-1]
    # the same held-out split as fit drew: one seed for the network first, then the split
    random_state = np.random.RandomState(0)
    random_state.randint(np.iinfo(np.int32).max)
    _, X_val, _, y_val = train_test_split(X, y, random_state=random_state, test_size=0.2, stratify=y)
    assert clf.score(X_val, y_val) == clf.best_validation_score_


def test_reaching_max_iter_warns_like_mlp():
    X, y = load_iris(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\)"):
        NeuralNetworkClassifier((4,), max_iter=2, random_state=0).fit(X, y)


def test_verbose_prints_every_epoch():
    X, y = load_iris(return_X_y=True)
    out = io.StringIO()
    with redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        NeuralNetworkClassifier((4,), max_iter=3, verbose=True, random_state=0).fit(X, y)
    assert [line.split(" - ")[0] for line in out.getvalue().splitlines()] == [
        "Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


# -- regression --------------------------------------------------------------------------------------
def test_regressor_without_hidden_layers_finds_the_least_squares_line():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    W = np.array([[1.5, -2.0], [0.5, 0.0], [-1.0, 3.0]])
    Y = X @ W + np.array([0.25, -0.5])
    reg = NeuralNetworkRegressor((), learning_rate_init=0.05, batch_size=20, max_iter=300, tol=0.0,
                                 n_iter_no_change=300, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, Y)
    (layer,) = reg.model_.layers
    np.testing.assert_allclose(layer.parameters["W"], W, atol=1e-4)
    np.testing.assert_allclose(layer.parameters["b"], [[0.25, -0.5]], atol=1e-4)
    assert reg.n_outputs_ == 2 and reg.predict(X).shape == (200, 2) and reg.predict(X).dtype == np.float64
    reg_1d = clone(reg).set_params(max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert reg_1d.fit(X, Y[:, 0]).predict(X).shape == (200,)
    with pytest.raises(ValueError, match="y has 2 targets, but NeuralNetworkRegressor was fitted with 1"):
        reg_1d.partial_fit(X, Y)


def test_float32_data_trains_in_float32_unless_told():
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf32 = NeuralNetworkClassifier((4,), max_iter=2, random_state=0).fit(X.astype(np.float32), y)
        clf64 = NeuralNetworkClassifier((4,), max_iter=2, random_state=0, dtype="float64").fit(
            X.astype(np.float32), y)
    assert clf32.model_.dtype == np.float32 and clf32.predict_proba(X).dtype == np.float32
    assert clf64.model_.dtype == np.float64 and clf64.predict_proba(X).dtype == np.float64


# -- errors ---------------------------------------------------------------------------------------------
def test_clear_errors():
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="1 class"):
        NeuralNetworkClassifier().fit(X[:10], y[:10])
    with pytest.raises(ValueError, match=r"input_shape \(2, 3\) holds 6 features per sample, but X has 4"):
        NeuralNetworkClassifier(input_shape=(2, 3)).fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"layers\[1\]: expected a 'type'"):
        NeuralNetworkClassifier(layers=[{"type": "fully_connected", "n_out": 4}, {"type": "dense"}]).fit(X, y)
    with pytest.raises(InvalidParameterError, match="optimizer: a dict needs a 'name'"):
        NeuralNetworkClassifier(optimizer={"lr": 0.1}).fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        NeuralNetworkClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="Unknown label type"):
        NeuralNetworkClassifier().fit(X, X[:, 0])


def test_parameters_given_as_objects_are_not_modified_by_fit():
    from neural_networks.optimizers import SGD

    X, y = load_iris(return_X_y=True)
    optimizer, hidden = SGD(lr=0.05, momentum=0.9), FullyConnected(6, "tanh")
    clf = NeuralNetworkClassifier(layers=[hidden], optimizer=optimizer, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert not hidden.built and optimizer.iterations == 0 and not optimizer.state
    assert clf.model_.optimizer is not optimizer and clf.model_.optimizer.iterations > 0
    assert clf.model_.layers[0].n_out == 6 and clf.model_.layers[0] is not hidden
