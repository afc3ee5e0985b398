"""fastloss.losses.GIoULoss vs the real TF Addons GIoULoss: values, shapes
and tf.GradientTape gradients, kinks (ties, clamps, zero divisors) included.

TF Addons needs TF <= 2.15, so it runs in a separate interpreter: set
FASTLOSS_TFA_PYTHON to a python that has tensorflow-addons (e.g.
/opt/tfa/bin/python); the tests are skipped otherwise. tests/tfa_boxes_oracle.py
is run once per session.
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


def _rand(rng, shape, dtype):
    lo = rng.uniform(0, 10, shape + (2,))
    hi = lo + rng.uniform(0.2, 6, shape + (2,))
    return np.concatenate([lo, hi], -1).astype(dtype)


def _grid(rng, n, dtype):
    """Corners on a 0..3 integer grid: ties between coordinates everywhere,
    zero-area, inverted and identical boxes, touching boxes."""
    return rng.integers(0, 4, (n, 4)).astype(dtype)


def _cases():
    rng = np.random.default_rng(2025)
    cases, arrays = [], {}

    def add(yt, yp, mode="giou", reduction="none", sw=None, tag=""):
        i = len(cases)
        arrays[f"yt_{i}"] = yt
        arrays[f"yp_{i}"] = yp
        if sw is not None:
            arrays[f"sw_{i}"] = sw
        cases.append(dict(mode=mode, reduction=reduction, weighted=sw is not None, tag=tag))

    for dtype in ("float32", "float64"):
        for mode in ("giou", "iou"):
            for reduction, weighted in (("none", False), ("sum", True), ("sum_over_batch_size", False),
                                        ("sum_over_batch_size", True), ("none", True)):
                yt, yp = _rand(rng, (12,), dtype), _rand(rng, (12,), dtype)
                yp[:3] = yt[:3]
                sw = rng.uniform(0.2, 2.0, 12).astype(dtype) if weighted else None
                add(yt, yp, mode, reduction, sw, f"random-{dtype}")
            # kinks: ties, clamps, zero divisors
            add(_grid(rng, 200, dtype), _grid(rng, 200, dtype), mode, "none", tag=f"grid-{dtype}")
            add(_grid(rng, 200, dtype), _grid(rng, 200, dtype), mode, "sum", tag=f"grid-{dtype}")
    # shapes and broadcasting (as TF broadcasts; TFA squeezes the per-box loss)
    for st, sp in [((5,), (5,)), ((1,), (1,)), ((), ()), ((2, 3), (2, 3)), ((2, 1), (2, 1)), ((1, 1), (1, 1)),
                   ((), (5,)), ((5,), ()), ((1,), (5,)), ((5,), (1,)), ((2, 3), (3,)), ((3,), (2, 3))]:
        for reduction in ("none", "sum_over_batch_size"):
            add(_rand(rng, st, "float32"), _rand(rng, sp, "float32"), "giou", reduction, tag=f"shape-{st}-{sp}")
    # Keras 2 weight rank fixes
    add(_rand(rng, (2, 3), "float32"), _rand(rng, (2, 3), "float32"), "giou", "none",
        rng.uniform(0.5, 2, (2,)).astype("float32"), tag="sw-rank-1")
    add(_rand(rng, (5,), "float32"), _rand(rng, (5,), "float32"), "giou", "sum_over_batch_size",
        rng.uniform(0.5, 2, (5, 1)).astype("float32"), tag="sw-trailing-1")
    # integer boxes (TFA casts y_pred to float32 and y_true to y_pred's dtype)
    add(rng.integers(0, 6, (10, 4)).astype(np.int32), rng.integers(0, 6, (10, 4)).astype(np.int64), "giou", "none",
        tag="int")
    # degenerate and far apart
    deg_t = np.array([[1, 1, 1, 1], [0, 0, 2, 2], [0, 0, 2, 2], [2, 2, 0, 0], [0, 0, 1, 1], [0, 0, 1e6, 1e6]], "float64")
    deg_p = np.array([[1, 1, 1, 1], [1, 1, 1, 1.5], [2, 2, 0, 0], [3, 3, 1, 1], [1e6, 1e6, 1e6 + 1, 1e6 + 1],
                      [5, 5, 5.001, 5.001]], "float64")
    for mode in ("giou", "iou"):
        add(deg_t, deg_p, mode, "none", tag="degenerate")
        add(deg_t.astype("float32"), deg_p.astype("float32"), mode, "none", tag="degenerate-f32")
    # NaN coordinates
    yt, yp = _rand(rng, (6,), "float32"), _rand(rng, (6,), "float32")
    yp[2, 1] = np.nan
    yt[4, 3] = np.nan
    add(yt, yp, "giou", "none", tag="nan")
    # weights two ranks above the per-box loss: Keras 2 leaves them alone and its product
    # spreads each box's loss over several weighted losses
    for reduction in ("none", "sum_over_batch_size"):
        add(_rand(rng, (3,), "float32"), _rand(rng, (3,), "float32"), "giou", reduction,
            rng.uniform(0.5, 2, (2, 1, 3)).astype("float32"), tag="sw-spread")
    return cases, arrays


@pytest.fixture(scope="module")
def tfa(tmp_path_factory):
    cases, arrays = _cases()
    d = tmp_path_factory.mktemp("tfa_boxes")
    src, dst = d / "in.npz", d / "out.npz"
    np.savez(src, spec=np.array(json.dumps(cases)), **arrays)
    oracle = Path(__file__).with_name("tfa_boxes_oracle.py")
    proc = subprocess.run([TFA_PYTHON, str(oracle), str(src), str(dst)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"TFA oracle failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return cases, arrays, dict(np.load(dst))


def test_oracle_versions_and_docstring(tfa):
    _, _, out = tfa
    assert json.loads(str(out["versions"]))["tfa"].startswith("0.")
    np.testing.assert_allclose(out["doc"], 1.5041667, rtol=1e-6)
    got = L.GIoULoss()(
        np.array([[4.0, 3.0, 7.0, 5.0], [5.0, 6.0, 10.0, 7.0]], np.float32),
        np.array([[3.0, 4.0, 6.0, 8.0], [14.0, 14.0, 15.0, 15.0]], np.float32),
    )
    np.testing.assert_allclose(got, out["doc"], rtol=1e-6)


@pytest.mark.parametrize("i", range(len(_cases()[0])), ids=[f"{k}-{c['tag']}-{c['mode']}-{c['reduction']}"
                                                         for k, c in enumerate(_cases()[0])])
def test_matches_tfa(tfa, i):
    cases, arrays, out = tfa
    c = cases[i]
    yt, yp = arrays[f"yt_{i}"], arrays[f"yp_{i}"]
    sw = arrays.get(f"sw_{i}") if c["weighted"] else None
    obj = L.GIoULoss(mode=c["mode"], reduction=c["reduction"])
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
    tl, tg = out[f"loss_{i}"], out[f"grad_{i}"]
    assert np.shape(loss) == np.shape(tl)
    assert grad.shape == tg.shape and grad.dtype == tg.dtype
    if tg.dtype == np.float64:
        tv, tgr = dict(rtol=1e-12, atol=1e-14), dict(rtol=1e-10, atol=1e-13)
    else:
        tv, tgr = dict(rtol=2e-6, atol=1e-6), dict(rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(loss, tl, **tv)
    if c["tag"] == "nan":  # NaN rows: the loss is NaN in both; gradients compared on the other rows
        finite = np.isfinite(np.asarray(R.giou_loss(yt, yp)))
        assert not finite.all()
        np.testing.assert_allclose(grad[finite], tg[finite], **tgr)
    else:
        np.testing.assert_allclose(grad, tg, **tgr)
    # the independent reference agrees with TFA too (checks the reference)
    per = R.giou_loss(yt, yp, mode=c["mode"])
    if c["tag"] not in ("nan",) and not c["tag"].startswith("sw-"):
        np.testing.assert_allclose(R.reduce(per, sw, c["reduction"]), tl, rtol=2e-6, atol=1e-6)
