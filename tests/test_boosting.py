"""fastloss.boosting: XGBoost / LightGBM custom objectives and metrics.

The adapters must give the built-in objectives' formulas (binary:logistic:
grad = p - y, hess = p (1 - p); softmax: grad = p - onehot, hess diagonal
p (1 - p)), in the shapes and dtypes the libraries pass, and train the same
model as the built-in objective where the formulas agree.
"""

import numpy as np
import pytest

from fastloss.boosting import lightgbm_metric, lightgbm_objective, xgboost_metric, xgboost_objective
from fastloss.losses import BinaryCrossentropy, CategoricalCrossentropy, Poisson, SparseCategoricalCrossentropy


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _binary_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.3 * rng.normal(size=n) > 0.5).astype(float)
    return X, y


# ---------------------------------------------------------------- without the libraries


@pytest.mark.parametrize("adapter", [xgboost_objective, lightgbm_objective])
def test_binary_formulas_sklearn_signature(adapter):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50).astype(float)
    m = rng.normal(0, 3, 50).astype(np.float32)
    obj = adapter(BinaryCrossentropy(from_logits=True))
    g, h = obj(y, m)
    p = _sigmoid(m)
    assert g.shape == h.shape == (50,) and g.dtype == np.float32
    np.testing.assert_allclose(g, p - y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, p * (1 - p), rtol=1e-5, atol=1e-7)
    w = rng.uniform(0.5, 2, 50)
    gw, hw = obj(y, m, w)
    np.testing.assert_allclose(gw, w * (p - y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hw, w * p * (1 - p), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("adapter", [xgboost_objective, lightgbm_objective])
def test_multiclass_formulas(adapter):
    rng = np.random.default_rng(2)
    n, C = 40, 5
    y = rng.integers(0, C, n).astype(np.float32)  # both libraries pass float labels
    m = rng.normal(0, 2, (n, C))
    p = _softmax(m)
    onehot = np.eye(C)[y.astype(int)]
    for loss in (SparseCategoricalCrossentropy(from_logits=True), CategoricalCrossentropy(from_logits=True)):
        g, h = adapter(loss)(y, m)
        assert g.shape == h.shape == (n, C)
        np.testing.assert_allclose(g, p - onehot, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(h, p * (1 - p), rtol=1e-10, atol=1e-12)
    # LightGBM hands the (n, C) scores over as a Fortran-ordered view
    g, h = adapter(SparseCategoricalCrossentropy(from_logits=True))(y, np.asfortranarray(m))
    np.testing.assert_allclose(g, p - onehot, rtol=1e-10, atol=1e-12)


def test_poisson_raw_prediction():
    y = np.array([0.0, 1.0, 3.0])
    pred = np.array([0.5, 1.0, 2.0])
    g, h = xgboost_objective(Poisson())(y, pred)
    np.testing.assert_allclose(g, 1 - y / (pred + 1e-7), rtol=1e-6)
    np.testing.assert_allclose(h, y / (pred + 1e-7) ** 2, rtol=1e-6)


def test_shape_errors():
    obj = xgboost_objective(SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ValueError, match="BinaryCrossentropy"):
        obj(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="do not fit"):
        xgboost_objective(CategoricalCrossentropy(from_logits=True))(np.zeros(7), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        xgboost_objective(CategoricalCrossentropy(from_logits=True))(np.array([0, 1, 3, 0]), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="grad_hess is available"):
        xgboost_objective(CategoricalCrossentropy())(np.zeros(4), np.zeros((4, 3)))
    with pytest.raises(TypeError):
        xgboost_objective(lambda y, p: 0)


def test_metrics_sklearn_signature():
    y = np.array([1.0, 0.0, 1.0])
    m = np.array([2.0, -1.0, -0.5])
    p = _sigmoid(m)
    ll = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    name, val, higher = lightgbm_metric(BinaryCrossentropy(from_logits=True))(y, m, None)
    assert (name, higher) == ("binary_crossentropy", False)
    assert val == pytest.approx(ll, rel=1e-6)
    w = np.array([1.0, 2.0, 3.0])
    _, vw, _ = lightgbm_metric(BinaryCrossentropy(from_logits=True), name="ll")(y, m, w)
    lw = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert vw == pytest.approx(np.sum(w * lw) / w.sum(), rel=1e-6)


# ---------------------------------------------------------------- XGBoost


def test_xgboost_native_dmatrix_and_weights():
    xgb = pytest.importorskip("xgboost")
    X, y = _binary_data(60)
    w = np.linspace(0.5, 2.0, 60)
    d = xgb.DMatrix(X, y, weight=w)
    m = np.random.default_rng(3).normal(size=60).astype(np.float32)
    g, h = xgboost_objective(BinaryCrossentropy(from_logits=True))(m, d)
    p = _sigmoid(m)
    np.testing.assert_allclose(g, w * (p - y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, w * p * (1 - p), rtol=1e-5, atol=1e-7)
    g, h = xgboost_objective(BinaryCrossentropy(from_logits=True))(m, xgb.DMatrix(X, y))  # no weights
    np.testing.assert_allclose(g, p - y, rtol=1e-5, atol=1e-6)


def test_xgboost_training_matches_binary_logistic():
    xgb = pytest.importorskip("xgboost")
    X, y = _binary_data()
    d = xgb.DMatrix(X, y)
    params = {"max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0}
    b0 = xgb.train({**params, "objective": "binary:logistic", "base_score": 0.5}, d, 15)
    b1 = xgb.train({**params, "base_score": 0.0}, d, 15, obj=xgboost_objective(BinaryCrossentropy(from_logits=True)))
    np.testing.assert_allclose(b1.predict(d, output_margin=True), b0.predict(d, output_margin=True), atol=1e-4)


def test_xgboost_multiclass_training_and_metric():
    xgb = pytest.importorskip("xgboost")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4))
    y = np.argmax(X[:, :3] + 0.3 * rng.normal(size=(300, 3)), axis=1).astype(float)
    d = xgb.DMatrix(X, y)
    loss = SparseCategoricalCrossentropy(from_logits=True)
    res = {}
    b = xgb.train(
        {"num_class": 3, "base_score": 0.0, "max_depth": 3, "nthread": 1, "seed": 0, "disable_default_eval_metric": 1},
        d,
        20,
        obj=xgboost_objective(loss),
        custom_metric=xgboost_metric(loss, name="ce"),
        evals=[(d, "train")],
        evals_result=res,
        verbose_eval=False,
    )
    m = b.predict(d, output_margin=True)
    assert m.shape == (300, 3)
    assert np.mean(m.argmax(1) == y) > 0.9
    p = _softmax(m.astype(np.float64))
    ce = -np.mean(np.log(p[np.arange(300), y.astype(int)]))
    assert res["train"]["ce"][-1] == pytest.approx(ce, rel=1e-4)
    assert res["train"]["ce"][-1] < res["train"]["ce"][0]


def test_xgboost_sklearn_api():
    xgb = pytest.importorskip("xgboost")
    X, y = _binary_data()
    clf = xgb.XGBClassifier(
        objective=xgboost_objective(BinaryCrossentropy(from_logits=True)), n_estimators=15, max_depth=3, n_jobs=1
    )
    clf.fit(X, y, sample_weight=np.ones(len(y)))
    assert clf.score(X, y) > 0.9


# ---------------------------------------------------------------- LightGBM


def test_lightgbm_native_dataset_and_weights():
    lgb = pytest.importorskip("lightgbm")
    X, y = _binary_data(60)
    w = np.linspace(0.5, 2.0, 60)
    ds = lgb.Dataset(X, y, weight=w, params={"verbose": -1}).construct()
    m = np.random.default_rng(5).normal(size=60)
    g, h = lightgbm_objective(BinaryCrossentropy(from_logits=True))(m, ds)
    p = _sigmoid(m)
    np.testing.assert_allclose(g, w * (p - y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, w * p * (1 - p), rtol=1e-5, atol=1e-7)


def test_lightgbm_training_matches_binary():
    lgb = pytest.importorskip("lightgbm")
    X, y = _binary_data()
    params = {"num_leaves": 7, "learning_rate": 0.3, "num_threads": 1, "seed": 0, "verbose": -1, "deterministic": True}
    b0 = lgb.train({**params, "objective": "binary", "boost_from_average": False}, lgb.Dataset(X, y), 15)
    obj = lightgbm_objective(BinaryCrossentropy(from_logits=True))
    b1 = lgb.train({**params, "objective": obj}, lgb.Dataset(X, y), 15)
    np.testing.assert_allclose(b1.predict(X, raw_score=True), b0.predict(X, raw_score=True), atol=1e-4)
    # the sklearn API with the same callable (y_true, y_pred, weight)
    clf = lgb.LGBMClassifier(objective=obj, n_estimators=15, num_leaves=7, learning_rate=0.3, n_jobs=1, verbose=-1)
    clf.fit(X, y)
    np.testing.assert_allclose(clf.predict(X, raw_score=True), b1.predict(X, raw_score=True), atol=1e-4)


def test_lightgbm_multiclass_training_and_metric():
    lgb = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 4))
    y = np.argmax(X[:, :3] + 0.3 * rng.normal(size=(300, 3)), axis=1)
    loss = SparseCategoricalCrossentropy(from_logits=True)
    res = {}
    ds = lgb.Dataset(X, y)
    b = lgb.train(
        {"objective": lightgbm_objective(loss), "num_class": 3, "num_leaves": 7, "num_threads": 1, "verbose": -1, "metric": "None"},
        ds,
        20,
        valid_sets=[ds],
        valid_names=["train"],
        feval=lightgbm_metric(loss, name="ce"),
        callbacks=[lgb.record_evaluation(res)],
    )
    m = b.predict(X, raw_score=True)
    assert m.shape == (300, 3)
    assert np.mean(m.argmax(1) == y) > 0.9
    p = _softmax(m)
    ce = -np.mean(np.log(p[np.arange(300), y]))
    assert res["train"]["ce"][-1] == pytest.approx(ce, rel=1e-6)
