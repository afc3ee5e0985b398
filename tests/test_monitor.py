"""fastloss.LossTracker: recording, NaN diagnosis on crafted inputs, CSV/JSON, plot."""

import csv
import json
import math

import numpy as np
import pytest

import fastloss
from fastloss.monitor import Diagnosis, LossTracker, NonFiniteLossError


def _batch(rng, n=8, c=4, scale=1.0):
    return rng.integers(0, c, n), rng.standard_normal((n, c)) * scale


def test_records_batches_and_epoch_means():
    t = LossTracker()
    for loss in (1.0, 2.0, 3.0):
        t.update(loss)
    assert t.end_epoch(acc=0.5) == pytest.approx(2.0)
    t.update(np.array([1.0, 3.0]), size=2)  # per-sample losses: the mean is recorded
    t.update(4.0, size=6)
    assert t.end_epoch() == pytest.approx((2.0 * 2 + 4.0 * 6) / 8)
    assert [r["batch"] for r in t.batches] == [0, 1, 2, 0, 1]
    assert [r["step"] for r in t.batches] == [0, 1, 2, 3, 4]
    assert [r["epoch"] for r in t.batches] == [0, 0, 0, 1, 1]
    assert t.epochs[0] == {"epoch": 0, "loss": 2.0, "acc": 0.5}
    assert t.first_nonfinite is None and not t.should_stop


def test_nan_in_y_pred_at_batch_3():
    rng = np.random.default_rng(0)
    t = LossTracker(on_nonfinite="ignore")
    t.update(1.0)
    t.end_epoch()
    for b in range(6):
        y, p = _batch(rng)
        loss = 1.2
        if b == 3:
            p[5, 2] = np.nan
            loss = float("nan")
        if b == 5:
            loss = float("inf")  # later ones are recorded, not re-diagnosed
        t.update(loss, batch=b, y_true=y, y_pred=p, labels_range=4)
    d = t.first_nonfinite
    assert (d.epoch, d.batch, d.step) == (1, 3, 4)
    assert d.cause == "nonfinite_y_pred"
    assert "(5, 2)" in d.message and "epoch 1, batch 3" in d.message
    assert math.isnan(d.loss)


def test_nan_in_y_true():
    rng = np.random.default_rng(1)
    t = LossTracker(on_nonfinite="ignore")
    y = rng.standard_normal((4, 3))
    y[1, 0] = np.inf
    t.update(float("inf"), y_true=y, y_pred=rng.standard_normal((4, 3)))
    assert t.first_nonfinite.cause == "nonfinite_y_true"
    assert t.first_nonfinite.causes == ["nonfinite_y_true"]
    assert "(1, 0)" in t.first_nonfinite.message


@pytest.mark.parametrize(
    "labels, rng_arg, bad",
    [
        (np.array([0, 1, 7, 2]), 4, "7"),
        (np.array([0, -1, 1, 2]), 4, "-1"),
        (np.array([1.0, 2.5, 1.0, 2.0]), (1, 3), "2.5"),  # not integral
        (np.array([1, 2, 3, 0]), (1, 4), "0"),
    ],
)
def test_labels_out_of_range(labels, rng_arg, bad):
    t = LossTracker(on_nonfinite="ignore")
    t.update(float("nan"), batch=0, y_true=labels, y_pred=np.zeros((4, 4)), labels_range=rng_arg)
    d = t.first_nonfinite
    assert d.cause == "labels_out_of_range"
    assert bad in d.message


def test_out_of_range_labels_with_a_finite_loss_warn_once():
    t = LossTracker()
    with pytest.warns(RuntimeWarning, match="outside"):
        t.update(0.5, y_true=[0, 9], labels_range=3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.update(0.5, y_true=[0, 9], labels_range=3)
    assert t.first_nonfinite is None


def test_exploding_logits():
    rng = np.random.default_rng(2)
    t = LossTracker(on_nonfinite="ignore", window=10)
    scale = 1.0
    for b in range(12):
        y, p = _batch(rng, scale=scale)
        t.update(1.0, batch=b, y_true=y, y_pred=p, labels_range=4)
        scale *= 4.0  # |logits| x4 per batch: 4**11 ~ 4e6 by the last one
    y, p = _batch(rng, scale=scale)  # finite logits, yet the loss overflowed
    t.update(float("inf"), batch=12, y_true=y, y_pred=p, labels_range=4)
    d = t.first_nonfinite
    assert d.batch == 12
    assert d.cause == "exploding_y_pred"
    assert "grew" in d.message


def test_exploding_then_nan_reports_both():
    rng = np.random.default_rng(3)
    t = LossTracker(on_nonfinite="ignore")
    for b, s in enumerate([1, 10, 1e2, 1e3, 1e4, 1e5]):
        t.update(1.0, y_true=[0] * 8, y_pred=rng.standard_normal((8, 4)) * s)
    p = rng.standard_normal((8, 4))
    p[0, 0] = np.inf
    t.update(float("nan"), y_true=[0] * 8, y_pred=p)
    assert t.first_nonfinite.causes[:2] == ["nonfinite_y_pred", "exploding_y_pred"]


def test_diverging_loss_and_unknown():
    t = LossTracker(on_nonfinite="ignore")
    for loss in (0.5, 0.6, 2.0, 9.0, 80.0):
        t.update(loss)
    t.update(float("nan"))
    assert t.first_nonfinite.cause == "loss_diverging"
    t2 = LossTracker(on_nonfinite="ignore")
    t2.update(0.5, y_true=[0, 1], y_pred=np.ones((2, 2)))
    t2.update(float("nan"), y_true=[0, 1], y_pred=np.ones((2, 2)))
    assert t2.first_nonfinite.cause == "unknown"


def test_modes_raise_stop_warn():
    t = LossTracker(on_nonfinite="raise")
    t.update(1.0)
    with pytest.raises(NonFiniteLossError, match="batch 1") as ei:
        t.update(float("nan"), y_pred=np.array([np.nan]))
    assert isinstance(ei.value, FloatingPointError)
    assert ei.value.diagnosis.cause == "nonfinite_y_pred"

    s = LossTracker(on_nonfinite="stop")
    assert s.update(1.0) is True
    assert s.update(float("nan")) is False
    assert s.should_stop and s.update(1.0) is False

    w = LossTracker()
    with pytest.warns(RuntimeWarning, match="non-finite loss"):
        w.update(float("inf"))
    with pytest.raises(ValueError, match="on_nonfinite"):
        LossTracker(on_nonfinite="explode")


def _filled():
    rng = np.random.default_rng(4)
    t = LossTracker(on_nonfinite="ignore")
    for e in range(3):
        for b in range(5):
            y, p = _batch(rng)
            t.update(float(1.0 / (1 + e * 5 + b)), batch=b, size=8, y_true=y, y_pred=p, labels_range=4)
        t.end_epoch(val_loss=0.5 / (e + 1), accuracy=0.5 + 0.1 * e)
    t.update(float("nan"), y_pred=np.array([[np.nan, 1.0]]))
    return t


def test_csv_round_trip(tmp_path):
    t = _filled()
    path = t.to_csv(tmp_path / "b.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    assert rows[0].keys() >= {"epoch", "batch", "step", "loss", "pred_absmax"}
    back = LossTracker.read_csv(path)
    for a, b in zip(back, t.batches):
        assert a.keys() == b.keys()
        for k in a:
            if isinstance(b[k], float) and math.isnan(b[k]):
                assert math.isnan(a[k])
            else:
                assert a[k] == b[k]
    ep = LossTracker.read_csv(t.to_csv(tmp_path / "e.csv", which="epochs"))
    assert ep == t.epochs


def test_json_round_trip(tmp_path):
    t = _filled()
    path = t.to_json(tmp_path / "h.json")
    raw = open(path).read()
    assert "NaN" in raw
    json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = LossTracker.from_json(path)
    assert back.epochs == t.epochs
    assert len(back.batches) == len(t.batches)
    assert back.batches[:-1] == t.batches[:-1]
    assert math.isnan(back.batches[-1]["loss"])
    assert isinstance(back.first_nonfinite, Diagnosis)
    assert back.first_nonfinite.message == t.first_nonfinite.message
    back.update(0.1)  # recording goes on in the epoch it was in
    assert back.batches[-1]["epoch"] == 3 and back.batches[-1]["batch"] == 1


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    t = _filled()
    path = t.plot(tmp_path / "curves.png", title="test")
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


def test_plot_without_matplotlib_says_so(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mpl(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        LossTracker().plot(tmp_path / "x.png")


def test_with_fastloss_losses():
    """End to end: SCCE from logits whose inputs hold a NaN."""
    scce = fastloss.losses.SparseCategoricalCrossentropy(from_logits=True)
    t = fastloss.LossTracker(on_nonfinite="ignore")
    rng = np.random.default_rng(5)
    for b in range(5):
        y, x = _batch(rng)
        x = x.astype(np.float32)
        if b == 3:
            x[2, 1] = np.nan
        t.update(scce(y, x), batch=b, y_true=y, y_pred=x, labels_range=4)
    assert (t.first_nonfinite.batch, t.first_nonfinite.cause) == (3, "nonfinite_y_pred")
