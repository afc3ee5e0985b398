"""A small MLP trained in pure NumPy on scikit-learn's digits, with fastloss
computing the loss and its gradient w.r.t. the logits, and LossTracker keeping
the learning curves (and watching for NaNs).

Run: python examples/numpy_mlp.py [--out DIR]    (writes DIR/numpy_mlp_curves.png,
.csv and .json; DIR defaults to examples/out/, which git ignores)

Exits with status 1 if the test accuracy is below 95%.
"""

import argparse
import os
import sys
import time
from pathlib import Path

# The matrices here are tiny (64 x 128): BLAS threads cost more than they
# save, and on a busy 2-core machine OpenBLAS' spinning threads made each
# epoch 10x slower. One BLAS thread (set before NumPy loads BLAS).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import fastloss  # noqa: E402
from fastloss.losses import SparseCategoricalCrossentropy  # noqa: E402

SEED = 0
HIDDEN = 128
EPOCHS = 30
BATCH = 64
LR = 2e-3  # Adam


def init_params(rng, sizes):
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params.append(rng.standard_normal((n_in, n_out)).astype(np.float32) * np.float32(np.sqrt(2.0 / n_in)))
        params.append(np.zeros(n_out, np.float32))
    return params


def forward(params, x):
    w1, b1, w2, b2 = params
    h_pre = x @ w1 + b1
    h = np.maximum(h_pre, 0)
    return h_pre, h, h @ w2 + b2


def backward(params, x, h_pre, h, d_logits):
    """Gradients of the loss w.r.t. the parameters, given d loss / d logits."""
    w1, b1, w2, b2 = params
    g_w2 = h.T @ d_logits
    g_b2 = d_logits.sum(0)
    d_h = (d_logits @ w2.T) * (h_pre > 0)
    g_w1 = x.T @ d_h
    g_b1 = d_h.sum(0)
    return [g_w1, g_b1, g_w2, g_b2]


class Adam:
    def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, b1, b2, eps
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, params, grads):
        self.t += 1
        c1 = 1 - self.b1**self.t
        c2 = 1 - self.b2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "out"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0  # pixels 0..16 -> 0..1
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y)
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-3
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    n_classes = 10

    rng = np.random.default_rng(SEED)
    params = init_params(rng, [x.shape[1], HIDDEN, n_classes])
    opt = Adam(params, LR)
    scce = SparseCategoricalCrossentropy(from_logits=True)  # mean over the batch
    tracker = fastloss.LossTracker(on_nonfinite="raise")
    d_logits = np.empty((BATCH, n_classes), np.float32)  # gradient buffer, reused

    for epoch in range(EPOCHS):
        order = rng.permutation(len(x_tr))
        for b, start in enumerate(range(0, len(order), BATCH)):
            idx = order[start : start + BATCH]
            xb, yb = x_tr[idx], y_tr[idx]
            h_pre, h, logits = forward(params, xb)
            # loss and d loss / d logits from one fused kernel pass
            buf = d_logits[: len(idx)]
            loss, g = scce.value_and_grad(yb, logits, grad_out=buf)
            tracker.update(loss, batch=b, size=len(idx), y_true=yb, y_pred=logits, labels_range=n_classes)
            opt.step(params, backward(params, xb, h_pre, h, g))
        test_logits = forward(params, x_te)[2]
        tracker.end_epoch(
            test_loss=scce(y_te, test_logits),
            train_accuracy=np.mean(forward(params, x_tr)[2].argmax(1) == y_tr),
            test_accuracy=np.mean(test_logits.argmax(1) == y_te),
        )
        if epoch % 5 == 4 or epoch == 0:
            e = tracker.epochs[-1]
            print(
                f"epoch {epoch + 1:2d}: train loss {e['loss']:.4f}  test loss {e['test_loss']:.4f}  "
                f"test accuracy {e['test_accuracy']:.4f}"
            )

    acc = tracker.epochs[-1]["test_accuracy"]
    tracker.to_csv(out / "numpy_mlp_batches.csv")
    tracker.to_json(out / "numpy_mlp_history.json")
    try:
        png = tracker.plot(out / "numpy_mlp_curves.png", title=f"MLP {x.shape[1]}-{HIDDEN}-{n_classes} on digits (NumPy + fastloss)")
        print(f"learning curves: {png}")
    except ImportError as exc:
        print(f"no plot: {exc}")
    print(f"test accuracy: {acc:.4f} ({len(y_te)} test digits), {time.perf_counter() - t0:.1f} s")
    if acc < 0.95:
        print("FAILED: test accuracy below 0.95", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
