"""Loss monitoring for NumPy training loops: learning curves and NaN diagnosis.

::

    tracker = fastloss.LossTracker(on_nonfinite="raise")
    for epoch in range(n_epochs):
        for b, (xb, yb) in enumerate(batches):
            logits = model(xb)
            loss, grad = scce.value_and_grad(yb, logits)
            tracker.update(loss, batch=b, y_true=yb, y_pred=logits, labels_range=n_classes)
            ...
        tracker.end_epoch(test_accuracy=acc)
    tracker.to_csv("curves.csv"); tracker.plot("curves.png")

``update`` records the batch loss (an array loss is averaged) and, when
``y_pred`` is given, the largest ``|y_pred|`` of the batch (one pass over it).
The FIRST non-finite loss is caught with its epoch, batch index and global
step, and diagnosed (``tracker.first_nonfinite``, a :class:`Diagnosis`). Its
causes, most specific first:

``"nonfinite_y_true"``
    NaN/inf in ``y_true`` (count and first index);
``"labels_out_of_range"``
    a label outside ``labels_range`` (``C`` for ``[0, C)``, or ``(low, high)``,
    ``high`` excluded), or a non-integral label;
``"nonfinite_y_pred"``
    NaN/inf in ``y_pred``;
``"exploding_y_pred"``
    ``max |y_pred|`` grew ``explode_factor``-fold (default 1000) over the
    recent ``window`` batches (the usual road to an overflow);
``"loss_diverging"``
    the last finite losses grew ``diverge_factor``-fold (default 10) over the
    window's smallest;
``"unknown"``
    none of the above: the inputs were finite and in range, so the NaN/inf
    came from the computation itself (log of 0, 0/0, exp overflow...).

Out-of-range labels on a batch whose loss is finite give one warning (a loss
that does not check its labels may have read garbage).

What happens then (``on_nonfinite``): ``"warn"`` (default: one
``RuntimeWarning``), ``"raise"`` (:class:`NonFiniteLossError`), ``"stop"``
(``update`` returns False and ``should_stop`` is True), ``"ignore"``.
"""

import csv
import json
import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

_MODES = ("warn", "raise", "stop", "ignore")


class NonFiniteLossError(FloatingPointError):
    """Raised by ``LossTracker(on_nonfinite="raise")``; ``.diagnosis`` holds the details."""

    def __init__(self, diagnosis):
        super().__init__(diagnosis.message)
        self.diagnosis = diagnosis


@dataclass
class Diagnosis:
    """The first non-finite loss: where, and why (``causes`` most specific first)."""

    epoch: int
    batch: int
    step: int
    loss: float
    cause: str
    causes: list = field(default_factory=list)
    details: list = field(default_factory=list)

    @property
    def message(self):
        head = f"non-finite loss {self.loss} at epoch {self.epoch}, batch {self.batch} (step {self.step})"
        return head + ": " + "; ".join(self.details)

    def to_dict(self):
        d = asdict(self)
        d["loss"] = _enc(self.loss)
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["loss"] = _dec(d["loss"])
        return cls(**d)


def _enc(v):
    """JSON without NaN/Infinity literals (strict JSON): non-finite floats as strings."""
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _dec(v):
    return None if v is None else float(v)


def _first_bad(mask):
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return 0, None
    return int(idx.size), np.unravel_index(int(idx[0]), mask.shape)


def _fmt_idx(idx):
    return str(tuple(int(i) for i in idx)) if len(idx) != 1 else str(int(idx[0]))


class LossTracker:
    """Per-batch and per-epoch losses of a training loop, with NaN diagnosis.

    Parameters
    ----------
    on_nonfinite : ``"warn"`` | ``"raise"`` | ``"stop"`` | ``"ignore"``
        What to do at the first non-finite loss (it is always recorded).
    window : int
        How many recent batches the explosion/divergence checks look at.
    explode_factor : float
        Growth of ``max |y_pred|`` over the window that counts as exploding.
    diverge_factor : float
        Growth of the loss over the window that counts as diverging.
    """

    def __init__(self, on_nonfinite="warn", window=20, explode_factor=1e3, diverge_factor=10.0):
        if on_nonfinite not in _MODES:
            raise ValueError(f"`on_nonfinite` must be one of {list(_MODES)}; got {on_nonfinite!r}")
        if int(window) < 2:
            raise ValueError(f"`window` must be >= 2; got {window!r}")
        self.on_nonfinite = on_nonfinite
        self.window = int(window)
        self.explode_factor = float(explode_factor)
        self.diverge_factor = float(diverge_factor)
        self.batches = []  # dicts: epoch, batch, step, loss, size, pred_absmax
        self.epochs = []  # dicts: epoch, loss, **metrics
        self.first_nonfinite = None
        self.should_stop = False
        self._epoch = 0
        self._batch_in_epoch = 0
        self._warned_labels = False

    # ---- recording -----------------------------------------------------------------

    @property
    def epoch(self):
        """The epoch being recorded (0-based)."""
        return self._epoch

    def update(self, loss, *, batch=None, size=None, y_true=None, y_pred=None, labels_range=None):
        """Record one batch. Returns False when training should stop
        (``on_nonfinite="stop"`` after a non-finite loss), else True.

        ``loss``: a number, or an array (per-sample losses: their mean is recorded).
        ``batch``: index within the epoch (default: count of updates this epoch).
        ``size``: batch size, to weight the epoch mean (default: equal weights).
        ``y_true``/``y_pred``/``labels_range``: the batch's data, used for the
        diagnosis (``max |y_pred|`` is recorded on every batch).
        """
        arr = np.asarray(loss, dtype=np.float64)
        value = float(arr) if arr.ndim == 0 else (float(arr.mean()) if arr.size else 0.0)
        b = self._batch_in_epoch if batch is None else int(batch)
        amax = None
        yp = None
        if y_pred is not None:
            yp = np.asarray(y_pred)
            if yp.size and yp.dtype.kind in "fiub":
                with np.errstate(invalid="ignore"):
                    amax = float(np.max(np.abs(yp)))
        rec = {
            "epoch": self._epoch,
            "batch": b,
            "step": len(self.batches),
            "loss": value,
            "size": None if size is None else int(size),
            "pred_absmax": amax,
        }
        self.batches.append(rec)
        self._batch_in_epoch += 1

        label_issue = None
        if labels_range is not None and y_true is not None:
            label_issue = self._check_labels(y_true, labels_range)
        if math.isfinite(value):
            if label_issue and not self._warned_labels:
                self._warned_labels = True
                warnings.warn(
                    f"epoch {self._epoch}, batch {b}: {label_issue} (the loss is finite; "
                    "a loss that does not check its labels may have read garbage)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return not self.should_stop
        if self.first_nonfinite is None:
            self.first_nonfinite = self._diagnose(rec, y_true, yp, label_issue)
            self._act(self.first_nonfinite)
        return not self.should_stop

    def end_epoch(self, **metrics):
        """Close the epoch: its loss is the mean of its batch losses (weighted by
        ``size`` where given; NaN if any was NaN). Extra ``metrics`` (numbers,
        e.g. ``val_loss=..., test_accuracy=...``) are stored with it. Returns
        the epoch's loss."""
        recs = [r for r in self.batches if r["epoch"] == self._epoch]
        if recs:
            w = np.array([1.0 if r["size"] is None else r["size"] for r in recs])
            v = np.array([r["loss"] for r in recs])
            with np.errstate(invalid="ignore"):
                ep_loss = float(np.sum(v * w) / np.sum(w)) if np.sum(w) else float("nan")
        else:
            ep_loss = float("nan")
        entry = {"epoch": self._epoch, "loss": ep_loss}
        for k, val in metrics.items():
            entry[k] = float(val)
        self.epochs.append(entry)
        self._epoch += 1
        self._batch_in_epoch = 0
        return ep_loss

    # ---- diagnosis ---------------------------------------------------------------------

    @staticmethod
    def _check_labels(y_true, labels_range):
        if isinstance(labels_range, (tuple, list)):
            lo, hi = labels_range
        else:
            lo, hi = 0, labels_range
        y = np.asarray(y_true)
        if y.dtype.kind not in "fiub":
            return None
        with np.errstate(invalid="ignore"):
            bad = ~((y >= lo) & (y < hi))
            if y.dtype.kind == "f":
                bad |= np.isfinite(y) & (y != np.round(y))
        n, idx = _first_bad(bad)
        if not n:
            return None
        return (
            f"{n} label(s) outside [{lo}, {hi}) or not integral; first at index {_fmt_idx(idx)}: "
            f"{y[idx].item()!r}"
        )

    def _recent(self, key, upto):
        lo = max(0, upto - self.window)
        return [r[key] for r in self.batches[lo:upto] if r[key] is not None and math.isfinite(r[key])]

    def _diagnose(self, rec, y_true, yp, label_issue):
        causes, details = [], []
        if y_true is not None:
            yt = np.asarray(y_true)
            if yt.dtype.kind == "f":
                n, idx = _first_bad(~np.isfinite(yt))
                if n:
                    causes.append("nonfinite_y_true")
                    details.append(f"y_true holds {n} NaN/inf value(s); first at index {_fmt_idx(idx)}: {yt[idx].item()!r}")
        if label_issue:
            causes.append("labels_out_of_range")
            details.append(label_issue)
        step = rec["step"]
        if yp is not None and yp.dtype.kind == "f":
            n, idx = _first_bad(~np.isfinite(yp))
            if n:
                causes.append("nonfinite_y_pred")
                details.append(f"y_pred holds {n} NaN/inf value(s); first at index {_fmt_idx(idx)}: {yp[idx].item()!r}")
        # explosion: max |y_pred| over the window, this batch included when finite
        hist = self._recent("pred_absmax", step)
        cur = rec["pred_absmax"]
        if hist:
            peak = cur if cur is not None and math.isfinite(cur) else max(hist)
            base = min(hist)
            if base > 0 and peak / base >= self.explode_factor:
                causes.append("exploding_y_pred")
                details.append(
                    f"max |y_pred| grew {peak / base:.3g}-fold over the last {len(hist)} batches "
                    f"(from {base:.3g} to {peak:.3g})"
                )
        losses = self._recent("loss", step)
        if len(losses) >= 2:
            lo_, last = min(losses), losses[-1]
            if lo_ > 0 and last / lo_ >= self.diverge_factor:
                causes.append("loss_diverging")
                details.append(
                    f"the loss grew {last / lo_:.3g}-fold over the last {len(losses)} batches "
                    f"(from {lo_:.4g} to {last:.4g}): lower the learning rate or clip gradients"
                )
        if not causes:
            causes.append("unknown")
            details.append(
                "the inputs given were finite and in range, so the NaN/inf arose in the computation "
                "(log of 0, 0/0, exp overflow: use from_logits=True losses, clip probabilities)"
                + ("" if yp is not None else "; pass y_true/y_pred to update() for a closer diagnosis")
            )
        return Diagnosis(
            epoch=rec["epoch"], batch=rec["batch"], step=step, loss=rec["loss"],
            cause=causes[0], causes=causes, details=details,
        )

    def _act(self, diag):
        if self.on_nonfinite == "raise":
            raise NonFiniteLossError(diag)
        if self.on_nonfinite == "stop":
            self.should_stop = True
        elif self.on_nonfinite == "warn":
            warnings.warn(diag.message, RuntimeWarning, stacklevel=3)

    # ---- output ------------------------------------------------------------------------

    def summary(self):
        """One line per epoch, and the diagnosis if there was one."""
        lines = []
        for e in self.epochs:
            extra = "".join(f", {k}={v:.4g}" for k, v in e.items() if k not in ("epoch", "loss"))
            lines.append(f"epoch {e['epoch']}: loss={e['loss']:.4g}{extra}")
        if self.first_nonfinite is not None:
            lines.append(self.first_nonfinite.message)
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"LossTracker({len(self.batches)} batches, {len(self.epochs)} epochs, "
            f"first_nonfinite={None if self.first_nonfinite is None else self.first_nonfinite.cause!r})"
        )

    _BATCH_FIELDS = ("epoch", "batch", "step", "loss", "size", "pred_absmax")

    def to_csv(self, path, which="batches"):
        """Write the per-batch (``which="batches"``) or per-epoch (``"epochs"``)
        records as CSV with a header row (non-finite values as ``nan``/``inf``)."""
        if which == "batches":
            rows, fields = self.batches, list(self._BATCH_FIELDS)
        elif which == "epochs":
            rows = self.epochs
            fields = ["epoch", "loss"] + sorted({k for e in rows for k in e} - {"epoch", "loss"})
        else:
            raise ValueError(f"`which` must be 'batches' or 'epochs'; got {which!r}")
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow({k: ("" if r.get(k) is None else repr(r[k])) for k in fields})
        return path

    @classmethod
    def read_csv(cls, path):
        """The records of a CSV written by :meth:`to_csv` (a list of dicts;
        ints as ints, floats as floats, empty cells as None)."""
        out = []
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                rec = {}
                for k, v in row.items():
                    if v == "":
                        rec[k] = None
                    elif k in ("epoch", "batch", "step", "size"):
                        rec[k] = int(v)
                    else:
                        rec[k] = float(v)
                out.append(rec)
        return out

    def to_dict(self):
        return {
            "settings": {
                "on_nonfinite": self.on_nonfinite,
                "window": self.window,
                "explode_factor": self.explode_factor,
                "diverge_factor": self.diverge_factor,
            },
            "batches": [{k: (_enc(v) if k in ("loss", "pred_absmax") else v) for k, v in r.items()} for r in self.batches],
            "epochs": [{k: (v if k == "epoch" else _enc(v)) for k, v in e.items()} for e in self.epochs],
            "first_nonfinite": None if self.first_nonfinite is None else self.first_nonfinite.to_dict(),
        }

    def to_json(self, path):
        """Write everything (settings, batches, epochs, diagnosis) as strict JSON
        (non-finite numbers as the strings ``"NaN"``, ``"Infinity"``)."""
        with open(path, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        return path

    @classmethod
    def from_json(cls, path):
        """A tracker restored from :meth:`to_json` (recording can go on)."""
        with open(path) as f:
            d = json.load(f)
        t = cls(**d["settings"])
        t.batches = [{k: (_dec(v) if k in ("loss", "pred_absmax") else v) for k, v in r.items()} for r in d["batches"]]
        t.epochs = [{k: (v if k == "epoch" else _dec(v)) for k, v in e.items()} for e in d["epochs"]]
        if d["first_nonfinite"] is not None:
            t.first_nonfinite = Diagnosis.from_dict(d["first_nonfinite"])
        t._epoch = len(t.epochs)
        t._batch_in_epoch = sum(1 for r in t.batches if r["epoch"] == t._epoch)
        return t

    def plot(self, path, title=None, dpi=110):
        """Write the learning curves as a PNG: batch losses (thin) and epoch
        losses (markers) against epochs, every ``*loss*`` epoch metric beside
        them, the other epoch metrics in a second panel, and the first
        non-finite loss marked. Needs matplotlib."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError(
                "LossTracker.plot needs matplotlib, which is not installed: "
                "pip install matplotlib (or pip install 'fastloss[examples]')"
            ) from None
        others = sorted({k for e in self.epochs for k in e} - {"epoch", "loss"})
        loss_like = [k for k in others if "loss" in k]
        metric = [k for k in others if "loss" not in k]
        fig = Figure(figsize=(9 if metric else 6.5, 4.2))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 2 if metric else 1, 1)

        # batch x position: epoch + (k + 1) / batches in that epoch
        per_epoch = {}
        for r in self.batches:
            per_epoch[r["epoch"]] = per_epoch.get(r["epoch"], 0) + 1
        seen = {}
        xs, ys = [], []
        for r in self.batches:
            k = seen.get(r["epoch"], 0)
            seen[r["epoch"]] = k + 1
            xs.append(r["epoch"] + (k + 1) / per_epoch[r["epoch"]])
            ys.append(r["loss"])
        ys_a = np.array(ys, dtype=float)
        if xs:
            ax.plot(xs, ys_a, lw=0.7, alpha=0.45, color="C0", label="loss (batch)")
        ex = [e["epoch"] + 1 for e in self.epochs]
        if ex:
            ax.plot(ex, [e["loss"] for e in self.epochs], "o-", color="C0", lw=1.8, ms=4, label="loss (epoch)")
        for i, k in enumerate(loss_like):
            pts = [(e["epoch"] + 1, e[k]) for e in self.epochs if k in e]
            ax.plot(*zip(*pts), "s--", color=f"C{i + 1}", lw=1.5, ms=4, label=k)
        finite = ys_a[np.isfinite(ys_a)]
        if finite.size and np.all(finite > 0) and finite.max() / finite.min() > 20:
            ax.set_yscale("log")
        if self.first_nonfinite is not None:
            d = self.first_nonfinite
            k = sum(1 for r in self.batches[: d.step + 1] if r["epoch"] == d.epoch)
            xd = d.epoch + k / per_epoch.get(d.epoch, 1)
            ax.axvline(xd, color="red", ls=":", lw=1.5, label=f"first non-finite ({d.cause})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(title or "learning curves", fontsize=10)
        if metric:
            ax2 = fig.add_subplot(1, 2, 2)
            for i, k in enumerate(metric):
                pts = [(e["epoch"] + 1, e[k]) for e in self.epochs if k in e]
                ax2.plot(*zip(*pts), "o-", color=f"C{i + 3}", lw=1.5, ms=4, label=k)
            ax2.set_xlabel("epoch")
            ax2.grid(True, alpha=0.3)
            ax2.legend(fontsize=8)
            ax2.set_title("metrics", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
        return path
