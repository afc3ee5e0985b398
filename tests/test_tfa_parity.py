"""fastloss.losses.SigmoidFocalCrossEntropy vs the real TF Addons class.

TF Addons needs TF <= 2.15, so it runs in a separate interpreter: set
FASTLOSS_TFA_PYTHON to a python that has tensorflow-addons (e.g. /opt/tfa/bin/python);
the test is skipped otherwise. tests/tfa_oracle.py is run once per session.
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

ALPHA_GAMMA = [(0.25, 2.0), (None, None), (0.0, 0.0), (0.5, 0.5), (0.25, 1.0), (0.75, 3.0), (None, 2.0), (0.25, None)]


def _cases():
    rng = np.random.default_rng(2024)
    cases, arrays = [], {}
    for from_logits in (False, True):
        for alpha, gamma in ALPHA_GAMMA:
            for dtype in ("float32", "float64"):
                for reduction, weighted in (("none", False), ("sum", True), ("sum_over_batch_size", True), ("none", True)):
                    i = len(cases)
                    shape = (6, 4)
                    yt = rng.integers(0, 2, shape).astype(np.float64)
                    if from_logits:
                        yp = rng.normal(0, 2, shape)
                    else:
                        yp = rng.uniform(0.03, 0.97, shape)
                    arrays[f"yt_{i}"] = yt.astype(dtype)
                    arrays[f"yp_{i}"] = yp.astype(dtype)
                    if weighted:
                        arrays[f"sw_{i}"] = rng.uniform(0.2, 2.0, shape[0]).astype(dtype)
                    cases.append(
                        dict(alpha=alpha, gamma=gamma, from_logits=from_logits, reduction=reduction, weighted=weighted, dtype=dtype)
                    )
    # edge case: probabilities exactly 0 / 1 (clip-gated gradient, +eps inside the logs)
    i = len(cases)
    arrays[f"yt_{i}"] = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0]])
    arrays[f"yp_{i}"] = np.array([[0.0, 1.0, 0.999, 0.001], [0.3, 0.0, 0.5, 1.0]])
    cases.append(dict(alpha=0.25, gamma=2.0, from_logits=False, reduction="none", weighted=False, dtype="float64"))
    # weights under Keras 2's rank fix (TF Addons runs on it, not on Keras 3's): one rank
    # below the per-sample loss (it gets a trailing axis), two ranks above (spreads the
    # losses), 0-d against a loss of shape (1,) (left alone: "none" keeps the (1,))
    for ysh, wsh, reduction in (((2, 3, 4), (2,), "sum_over_batch_size"), ((2, 3, 4), (2,), "none"),
                                ((3, 4), (2, 1, 3), "sum_over_batch_size"), ((3, 4), (2, 1, 3), "none"),
                                ((1, 4), (), "none")):
        i = len(cases)
        arrays[f"yt_{i}"] = rng.integers(0, 2, ysh).astype(np.float32)
        arrays[f"yp_{i}"] = rng.uniform(0.03, 0.97, ysh).astype(np.float32)
        arrays[f"sw_{i}"] = rng.uniform(0.2, 2.0, wsh).astype(np.float32)
        cases.append(dict(alpha=0.25, gamma=2.0, from_logits=False, reduction=reduction, weighted=True, dtype="float32"))
    return cases, arrays


@pytest.fixture(scope="module")
def tfa_results(tmp_path_factory):
    cases, arrays = _cases()
    d = tmp_path_factory.mktemp("tfa")
    src, dst = d / "in.npz", d / "out.npz"
    np.savez(src, spec=np.array(json.dumps(cases)), **arrays)
    oracle = Path(__file__).with_name("tfa_oracle.py")
    proc = subprocess.run([TFA_PYTHON, str(oracle), str(src), str(dst)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"TFA oracle failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out = dict(np.load(dst))
    return cases, arrays, out


def test_oracle_versions(tfa_results):
    _, _, out = tfa_results
    v = json.loads(str(out["versions"]))
    assert v["tfa"].startswith("0.")


def test_tfa_docstring_example(tfa_results):
    _, _, out = tfa_results
    fl = L.SigmoidFocalCrossEntropy()
    got32 = fl([[1.0], [1.0], [0.0]], np.array([[0.97], [0.91], [0.03]], np.float32))
    np.testing.assert_allclose(out["doc_f32"], [6.8532745e-06, 1.9097870e-04, 2.0559824e-05], rtol=1e-6)
    np.testing.assert_allclose(got32, out["doc_f32"], rtol=1e-5)
    got64 = fl(np.array([[1.0], [1.0], [0.0]]), np.array([[0.97], [0.91], [0.03]]))
    np.testing.assert_allclose(got64, out["doc_f64"], rtol=1e-12)


@pytest.mark.parametrize("i", range(len(_cases()[0])))
def test_matches_tfa(tfa_results, i):
    cases, arrays, out = tfa_results
    c = cases[i]
    yt, yp = arrays[f"yt_{i}"], arrays[f"yp_{i}"]
    sw = arrays.get(f"sw_{i}") if c["weighted"] else None
    obj = L.SigmoidFocalCrossEntropy(from_logits=c["from_logits"], alpha=c["alpha"], gamma=c["gamma"], reduction=c["reduction"])
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
    tl, tg = out[f"loss_{i}"], out[f"grad_{i}"]
    assert np.shape(loss) == np.shape(tl)
    assert grad.dtype == yp.dtype
    if c["dtype"] == "float64":
        t, tgrad = dict(rtol=1e-10, atol=1e-13), dict(rtol=1e-9, atol=1e-12)
    else:
        t, tgrad = dict(rtol=2e-5, atol=1e-7), dict(rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(loss, tl, **t)
    np.testing.assert_allclose(grad, tg, **tgrad)
    # and the independent reference agrees with TFA (checks the reference too)
    per = R.sigmoid_focal_crossentropy(yt, yp, alpha=c["alpha"], gamma=c["gamma"], from_logits=c["from_logits"])
    if sw is not None and sw.ndim == per.ndim - 1:  # Keras 2's rank fix (R.reduce has Keras 3's)
        sw = sw[..., None]
    np.testing.assert_allclose(R.reduce(per, sw, c["reduction"]), tl, rtol=1e-10 if c["dtype"] == "float64" else 2e-5, atol=1e-7)
