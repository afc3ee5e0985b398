"""Gradient boosting with a fastloss objective: XGBoost and LightGBM.

Trains each booster twice on data sets that ship with scikit-learn, once with
its built-in objective and once with a fastloss loss turned into a custom
objective (``fastloss.boosting``), and compares the held-out quality:

* breast cancer (binary): ``BinaryCrossentropy(from_logits=True)`` vs
  ``binary:logistic`` / ``binary``. The gradients and Hessians are the same
  formulas (p - y, p (1 - p)), so the models agree to rounding.
* digits (10 classes): ``SparseCategoricalCrossentropy(from_logits=True)`` vs
  ``multi:softprob`` / ``multiclass``. fastloss' Hessian is the exact diagonal
  p (1 - p); XGBoost uses 2 p (1 - p), LightGBM C/(C-1) p (1 - p), so the trees
  differ a little; the quality does not.

Exits with status 1 if a fastloss model's quality differs from the built-in
one's by more than the tolerance. Run: python examples/boosting.py
"""

import sys

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

from fastloss.boosting import lightgbm_objective, xgboost_objective
from fastloss.losses import BinaryCrossentropy, SparseCategoricalCrossentropy

try:
    import xgboost as xgb
except ImportError:
    xgb = None
try:
    import lightgbm as lgb
except ImportError:
    lgb = None

ROUNDS = 100
TOL_ACC = 0.02  # accuracy points
TOL_LOGLOSS = 0.03  # multi-class: the Hessians differ by a constant factor (see above)


def split(loader):
    X, y = loader(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


def probabilities(margin):
    """Raw scores -> class probabilities (sigmoid for one column, softmax else)."""
    if margin.ndim == 1:
        p1 = 1.0 / (1.0 + np.exp(-margin))
        return np.stack([1.0 - p1, p1], axis=1)
    e = np.exp(margin - margin.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def quality(y, margin):
    p = probabilities(np.asarray(margin, np.float64))
    return accuracy_score(y, p.argmax(axis=1)), log_loss(y, p, labels=np.arange(p.shape[1]))


def run_xgboost(Xtr, Xte, ytr, yte, n_classes):
    params = {"max_depth": 3, "eta": 0.1, "nthread": 2, "seed": 0}
    dtr, dte = xgb.DMatrix(Xtr, ytr), xgb.DMatrix(Xte, yte)
    if n_classes == 2:
        builtin = {**params, "objective": "binary:logistic", "base_score": 0.5}  # margin 0 at the start
        custom = {**params, "base_score": 0.0}  # a custom objective's base_score is a margin
        loss = BinaryCrossentropy(from_logits=True)
    else:
        builtin = {**params, "objective": "multi:softprob", "num_class": n_classes}
        custom = {**params, "num_class": n_classes, "base_score": 0.0}
        loss = SparseCategoricalCrossentropy(from_logits=True)
    b0 = xgb.train(builtin, dtr, ROUNDS)
    b1 = xgb.train(custom, dtr, ROUNDS, obj=xgboost_objective(loss))
    return (
        (builtin["objective"], quality(yte, b0.predict(dte, output_margin=True))),
        (f"fastloss {type(loss).__name__}", quality(yte, b1.predict(dte, output_margin=True))),
    )


def run_lightgbm(Xtr, Xte, ytr, yte, n_classes):
    params = {"num_leaves": 8, "learning_rate": 0.1, "num_threads": 2, "seed": 0, "verbose": -1, "deterministic": True}
    if n_classes == 2:
        # built-in objectives start from the average; a custom one starts from 0
        builtin = {**params, "objective": "binary", "boost_from_average": False}
        loss = BinaryCrossentropy(from_logits=True)
        custom = {**params}
    else:
        builtin = {**params, "objective": "multiclass", "num_class": n_classes}
        loss = SparseCategoricalCrossentropy(from_logits=True)
        custom = {**params, "num_class": n_classes}
    custom["objective"] = lightgbm_objective(loss)
    b0 = lgb.train(builtin, lgb.Dataset(Xtr, ytr), ROUNDS)
    b1 = lgb.train(custom, lgb.Dataset(Xtr, ytr), ROUNDS)
    return (
        (builtin["objective"], quality(yte, b0.predict(Xte, raw_score=True))),
        (f"fastloss {type(loss).__name__}", quality(yte, b1.predict(Xte, raw_score=True))),
    )


def main():
    libs = [(name, fn) for name, fn, mod in (("xgboost", run_xgboost, xgb), ("lightgbm", run_lightgbm, lgb)) if mod]
    if not libs:
        print("neither xgboost nor lightgbm is installed: pip install xgboost lightgbm")
        return 0
    rows, failures = [], []
    for dname, loader, n_classes in (("breast_cancer", load_breast_cancer, 2), ("digits", load_digits, 10)):
        data = split(loader)
        for lname, fn in libs:
            (obj0, (acc0, ll0)), (obj1, (acc1, ll1)) = fn(*data, n_classes)
            rows.append((dname, lname, obj0, acc0, ll0))
            rows.append((dname, lname, obj1, acc1, ll1))
            if abs(acc1 - acc0) > TOL_ACC or abs(ll1 - ll0) > TOL_LOGLOSS:
                failures.append(f"{dname}/{lname}: accuracy {acc1:.4f} vs {acc0:.4f}, log-loss {ll1:.4f} vs {ll0:.4f}")
    print(f"held-out quality, {ROUNDS} rounds, 30% test split (random_state=0)")
    print(f"{'data set':<14} {'library':<9} {'objective':<40} {'accuracy':>8} {'log-loss':>9}")
    for dname, lname, obj, acc, ll in rows:
        print(f"{dname:<14} {lname:<9} {obj:<40} {acc:>8.4f} {ll:>9.4f}")
    if failures:
        print("fastloss objective and built-in objective differ:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print(f"fastloss objectives match the built-in ones (tolerance {TOL_ACC} accuracy, {TOL_LOGLOSS} log-loss)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
