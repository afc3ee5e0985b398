"""fastloss' TripletSemiHardLoss / TripletHardLoss vs the real TF Addons classes.

TF Addons needs TF <= 2.15, so it runs in a separate interpreter: set
FASTLOSS_TFA_PYTHON to a python that has tensorflow-addons (e.g. /opt/tfa/bin/python);
skipped otherwise. tests/tfa_triplet_oracle.py is run once per session. TFA only
works in float32 here (its L2 distance mixes in a float32 constant).
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fastloss import losses as L

import reference as R

TFA_PYTHON = os.environ.get("FASTLOSS_TFA_PYTHON")
pytestmark = pytest.mark.skipif(not TFA_PYTHON, reason="set FASTLOSS_TFA_PYTHON to a python with tensorflow-addons")


def _dot_with_vjp(x):
    """TFA docstring's callable ``x @ x^T``, with its vjp so fastloss can give a gradient."""
    return x @ x.T, lambda c: (c + c.T) @ x


def _cases():
    rng = np.random.default_rng(77)
    cases, arrays = [], {}

    def add(kind, metric, lab, emb, margin=1.0, soft=False, weight=None):
        i = len(cases)
        arrays[f"lab_{i}"] = np.asarray(lab, np.int32)
        arrays[f"emb_{i}"] = np.asarray(emb, np.float32)
        cases.append(dict(kind=kind, metric=metric, margin=margin, soft=soft, weight=weight))  # noqa: B023

    for kind in ("semihard", "hard"):
        for metric in ("L2", "squared-L2", "angular", "dot"):
            for n, d, k in ((16, 4, 3), (40, 8, 5), (64, 16, 2)):
                x = rng.normal(size=(n, d))
                if metric == "dot":
                    x /= np.linalg.norm(x, axis=1, keepdims=True)
                add(kind, metric, rng.integers(0, k, n), x, margin=float(rng.choice([1.0, 0.5, 0.2])))
            add(kind, metric, rng.integers(0, 3, 20), rng.normal(size=(20, 5)), weight=1.7)
            add(kind, metric, np.zeros(10, int), rng.normal(size=(10, 3)))  # single class
        add("hard", "L2", rng.integers(0, 4, 30), rng.normal(size=(30, 6)), soft=True)
        add("hard", "angular", rng.integers(0, 4, 30), rng.normal(size=(30, 6)), soft=True)
    # hard: anchors without positives (all labels distinct) -> hp = row min
    add("hard", "L2", np.arange(12), rng.normal(size=(12, 3)))
    # normalized embeddings with within-class duplicates (L2 distances of duplicates: fastloss exact 0)
    x = rng.normal(size=(6, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    add("semihard", "L2", [0, 0, 1, 1, 2, 2, 0, 1], x[[0, 0, 1, 1, 2, 3, 4, 5]])
    cases[-1]["groups"] = [[0, 1], [2, 3]]
    return cases, arrays


@pytest.fixture(scope="module")
def tfa_results(tmp_path_factory):
    cases, arrays = _cases()
    d = tmp_path_factory.mktemp("tfa_triplet")
    src, dst = d / "in.npz", d / "out.npz"
    np.savez(src, spec=np.array(json.dumps(cases)), **arrays)
    oracle = Path(__file__).with_name("tfa_triplet_oracle.py")
    proc = subprocess.run([TFA_PYTHON, str(oracle), str(src), str(dst)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"TFA triplet oracle failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return cases, arrays, dict(np.load(dst))


def test_tfa_docstring_values(tfa_results):
    _, _, out = tfa_results
    np.testing.assert_allclose(out["doc"], [2.4142137, 1.0, 1.0, 0.0], rtol=1e-6)
    y_true = np.array([0, 0])
    y_pred = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    dot = lambda x: x @ x.T  # noqa: E731
    got = [
        L.TripletSemiHardLoss()(y_true, y_pred),
        L.TripletSemiHardLoss(distance_metric=dot)(y_true, y_pred),
        L.TripletHardLoss()(y_true, y_pred),
        L.TripletHardLoss(distance_metric=dot)(y_true, y_pred),
    ]
    np.testing.assert_allclose(got, out["doc"], rtol=1e-6)


@pytest.mark.parametrize("i", range(len(_cases()[0])))
def test_matches_tfa(tfa_results, i):
    cases, arrays, out = tfa_results
    c = cases[i]
    lab, x = arrays[f"lab_{i}"], arrays[f"emb_{i}"]
    metric = _dot_with_vjp if c["metric"] == "dot" else c["metric"]
    if c["kind"] == "semihard":
        o = L.TripletSemiHardLoss(margin=c["margin"], distance_metric=metric)
    else:
        o = L.TripletHardLoss(margin=c["margin"], soft=c["soft"], distance_metric=metric)
    loss, grad = o.value_and_grad(lab, x, sample_weight=c["weight"])
    tl, tg = out[f"loss_{i}"], out[f"grad_{i}"]
    assert np.shape(loss) == np.shape(tl) and loss.dtype == tl.dtype == np.float32
    np.testing.assert_allclose(loss, tl, rtol=2e-5, atol=2e-6)
    for g in c.get("groups", []):
        # duplicates: equal distances tie; TF splits the gradient among the tied
        # copies, fastloss gives it to the first: the sums over the copies agree
        grad[g[0]] = grad[g].sum(0)
        tg[g[0]] = tg[g].sum(0)
        grad[g[1:]] = tg[g[1:]] = 0
    np.testing.assert_allclose(grad, tg, rtol=2e-4, atol=2e-5)
    # the literal float64 reference agrees with TFA too (checks the reference)
    ref = R.triplet_semihard if c["kind"] == "semihard" else R.triplet_hard
    kw = dict(margin=c["margin"], distance_metric=(lambda e: e @ e.T) if c["metric"] == "dot" else c["metric"])
    if c["kind"] == "hard":
        kw["soft"] = c["soft"]
    want = ref(lab, x.astype(np.float64), **kw) * (1.0 if c["weight"] is None else c["weight"])
    np.testing.assert_allclose(want, tl, rtol=2e-5, atol=2e-6)
