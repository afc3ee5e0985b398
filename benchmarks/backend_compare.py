"""C vs Numba, kernel by kernel: the registry kernels called directly (no
validation, no allocation in the timed call), loss + gradient, float32 unless
``--dtype float64``.

    python -m benchmarks.backend_compare                  # serial and all threads
    python -m benchmarks.backend_compare --threads 1 --repeats 51
    python -m benchmarks.backend_compare --only giou,ciou --threads 1,2   # box losses
    python -m benchmarks.backend_compare --only triplet      # the triplet rows alone
    python -m benchmarks.backend_compare --dtype float64 --threads 1   # float64 kernels

Each row times the same kernel call on both backends, interleaved (so drift of
a busy machine hits both alike), and reports the MINIMUM over ``--repeats``
calls (the least disturbed run) and C/Numba. ``--threads n`` uses n row chunks
(1 = the serial path). The end-to-end numbers, peers included, are
``python -m benchmarks.report`` (it times every available backend); cold start
is ``python -m benchmarks.cold_start``.

Triplet losses (their own path, ``fastloss._triplet``) are timed end to end,
``value_and_grad`` under ``use_backend`` (Gram product, mining, gradient
assembly; the path picks serial/parallel itself: "auto" threads), and the
mining kernel alone on the same Gram matrix (all threads from
``PARALLEL_MIN_ENTRIES`` matrix entries on, as the path does).
"""

import argparse
import time

import numpy as np

# (registry name, variant, R, K, labels: "sparse" | "binary" | "real", y_pred: "probs" | "normal", params)
CASES = [
    ("sparse_categorical_crossentropy", "logits", 256, 10, "sparse", "normal", None),
    ("sparse_categorical_crossentropy", "logits", 4096, 1000, "sparse", "normal", None),
    ("categorical_crossentropy", "logits", 4096, 1000, "onehot", "normal", None),
    ("binary_crossentropy", "probs", 4096, 256, "binary", "probs", None),
    ("binary_crossentropy", "logits", 1 << 20, 1, "binary", "normal", None),
    ("sigmoid_focal_crossentropy", "probs", 1 << 20, 1, "binary", "probs", {"alpha": 0.25, "gamma": 2.0}),
    ("sigmoid_focal_crossentropy", "probs", 1 << 20, 1, "binary", "probs", {"alpha": 0.25, "gamma": 1.5}),
    ("binary_focal_crossentropy", "probs", 1 << 20, 1, "binary", "probs", {"alpha": 0.25, "gamma": 1.5}),
    # categorical focal: Keras' default gamma 2 (its own loop) and a general power
    ("categorical_focal_crossentropy", "probs", 16384, 100, "onehot", "probs",
     {"alpha": 0.25, "gamma": 2.0, "ls_per_class": True}),
    ("categorical_focal_crossentropy", "probs", 16384, 100, "onehot", "probs",
     {"alpha": 0.25, "gamma": 1.5, "ls_per_class": True}),
    ("categorical_focal_crossentropy", "logits", 16384, 100, "onehot", "normal",
     {"alpha": 0.25, "gamma": 2.0, "ls_per_class": True, "flag": 1.0}),
    ("huber", "probs", 1 << 22, 1, "real", "normal", {"alpha": 1.0}),
    ("huber", "probs", 16384, 256, "real", "normal", {"alpha": 1.0}),
    ("log_cosh", "probs", 1 << 22, 1, "real", "normal", None),
    ("mean_squared_error", "probs", 1 << 22, 1, "real", "normal", None),
    ("binary_crossentropy", "gh_logits", 1 << 20, 1, "binary", "normal", None),
    # short rows (4 classes/outputs): the per-row pass of the elementwise driver
    ("mean_squared_error", "probs", 65536, 4, "real", "normal", None),
    ("huber", "probs", 65536, 4, "real", "normal", {"alpha": 1.0}),
    ("binary_crossentropy", "probs", 65536, 4, "binary", "probs", None),
    ("cosine_similarity", "probs", 65536, 4, "real", "normal", None),
    # short rows of the softmax family (the Numba kernels' columns layout)
    ("categorical_crossentropy", "probs", 65536, 4, "onehot", "probs", None),
    ("categorical_crossentropy", "logits", 65536, 4, "onehot", "normal", None),
    ("sparse_categorical_crossentropy", "probs", 65536, 4, "sparse", "probs", None),
    ("sparse_categorical_crossentropy", "logits", 65536, 4, "sparse", "normal", None),
    ("categorical_focal_crossentropy", "probs", 65536, 4, "onehot", "probs",
     {"alpha": 0.25, "gamma": 2.0, "ls_per_class": True}),
    # box losses: K = 4 (one box per row); "boxes_t1": one true box against all
    # rows, "boxes_p1": one predicted box (its gradient summed per chunk)
    ("giou_loss", "probs", 1 << 20, 4, "boxes", "boxes", {"flag": 0.0}),
    ("ciou_loss", "probs", 1 << 20, 4, "boxes", "boxes", {"flag": 0.0}),
    ("giou_loss", "probs", 1 << 20, 4, "boxes_t1", "boxes", {"flag": 0.0}),
    ("giou_loss", "probs", 1 << 20, 4, "boxes_p1", "boxes", {"flag": 0.0}),
]


def _boxes(rng, n, dt=np.float32):
    """n proper yxyx boxes: overlapping, nested and disjoint pairs."""
    lo = rng.uniform(0.0, 10.0, (n, 2))
    hi = lo + rng.uniform(0.1, 5.0, (n, 2))
    return np.concatenate([lo, hi], axis=1).astype(dt)


def _inputs(rng, R, K, labels, pred, dt=np.float32):
    if labels.startswith("boxes"):
        yt = _boxes(rng, 1 if labels == "boxes_t1" else R, dt)
        yp = _boxes(rng, 1 if labels == "boxes_p1" else R, dt)
        return yt, yp
    yp = (rng.uniform(0.05, 0.95, (R, K)) if pred == "probs" else rng.normal(size=(R, K))).astype(dt)
    if labels == "sparse":
        yt = rng.integers(0, K, R)
    elif labels == "onehot":
        yt = np.eye(K, dtype=dt)[rng.integers(0, K, R)]
    elif labels == "binary":
        yt = rng.integers(0, 2, (R, K)).astype(dt)
    else:
        yt = rng.normal(size=(R, K)).astype(dt)
    return yt, yp


def run(threads, repeats, backends, only=None, dtype="float32"):
    from fastloss import _backend, _core, _registry

    rng = np.random.default_rng(0)
    rows = []
    for name, variant, R, K, labels, pred, params in CASES:
        if only and not any(o in name for o in only):
            continue
        spec = _registry.get(name)
        dt = np.dtype(dtype)
        yt, yp = _inputs(rng, R, K, labels, pred, dt)
        gh = variant.startswith("gh")
        prm = _core._prm(1.0 if gh else 1.0 / R, K, params, None, dt)
        w = np.ones(1, dt)
        loss = np.empty(R, dt)
        nch = min(R, threads)
        g = np.empty((nch if yp.shape[0] != R else R, K), dt)
        h = np.empty((R, K), dt)
        calls = {}
        for b in backends:
            fn = _backend.kernel(spec, variant, b)
            if gh:
                calls[b] = lambda fn=fn: fn(yt, yp, prm, w, 0, g, h, nch)
            else:
                calls[b] = lambda fn=fn: fn(yt, yp, prm, w, 0, loss, g, True, nch)
            calls[b]()  # warm-up (Numba: load/compile)
        best = _best_of(calls, repeats)
        tag = f" {labels[6:]}" if labels.startswith("boxes_") else ""
        if params and "gamma" in params:
            tag += f" gamma {params['gamma']:g}"
        rows.append((f"{name}/{variant} {R}x{K}{tag}", threads, best))
    return rows


def _best_of(calls, repeats):
    """The least disturbed time of each backend's call: min over ``repeats``
    rounds, the backends interleaved within each round."""
    best = {b: float("inf") for b in calls}
    for _ in range(repeats):
        for b, call in calls.items():
            t0 = time.perf_counter()
            call()
            best[b] = min(best[b], time.perf_counter() - t0)
    return best


TRIPLET_CASES = [
    ("TripletSemiHardLoss", "triplet_semihard", 256, 128),
    ("TripletSemiHardLoss", "triplet_semihard", 4096, 128),
    ("TripletHardLoss", "triplet_hard", 256, 128),
    ("TripletHardLoss", "triplet_hard", 4096, 128),
]


def run_triplet(repeats, backends):
    import fastloss
    from fastloss import _backend, _registry, _triplet
    from fastloss import losses as L

    rng = np.random.default_rng(0)
    rows = []
    for cls, name, N, D in TRIPLET_CASES:
        x = rng.normal(size=(N, D)).astype(np.float32)
        lab = rng.integers(0, max(2, N // 16), N)
        loss = getattr(L, cls)()
        # end to end
        calls = {}
        for b in backends:
            def call(b=b):
                with fastloss.use_backend(b):
                    return loss.value_and_grad(lab, x)
            call()
            calls[b] = call
        best = _best_of(calls, repeats)
        rows.append((f"{cls} value_and_grad {N}x{D}", "auto", best))
        # the mining kernel alone (same inputs for both backends)
        spec = _registry.get(name)
        M = x @ np.ascontiguousarray(x.T)
        aux = M.diagonal().copy()
        prm = np.array((1.0, 0, 0, _triplet._CUT[np.dtype(np.float32)]), np.float32)
        hard = name == "triplet_hard"
        W = np.empty((N, 0 if hard else N), np.float32)
        sel = np.zeros((N if hard else 0, 2), np.int64)
        selc = np.zeros((N if hard else 0, 2), np.float32)
        rl, rc = np.zeros(N), np.zeros(N)
        nch = 1 if N * N < _triplet.PARALLEL_MIN_ENTRIES else min(N, _triplet._threads())
        for b in backends:
            fn = _backend.kernel(spec, "mine", b)
            calls[b] = lambda fn=fn: fn(M, aux, x, lab, prm, rl, rc, W, sel, selc, True, nch)
            calls[b]()
        best = _best_of(calls, repeats)
        rows.append((f"{name}/mine {N}x{D}", nch, best))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default=None, help="comma-separated chunk counts (default: 1 and all threads)")
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                    help="the kernels' dtype (the triplet rows stay float32)")
    ap.add_argument("--only", default=None, help="comma-separated substrings of loss names (e.g. giou,ciou), or 'triplet' for the triplet rows alone")
    a = ap.parse_args(argv)
    import fastloss
    from fastloss import _core

    backends = [b for b in ("numba", "c") if b in fastloss.available_backends()]
    threads = [int(t) for t in a.threads.split(",")] if a.threads else sorted({1, _core._threads()})
    print(f"backends {backends}; min of {a.repeats} interleaved calls; {a.dtype} loss + gradient")
    print("| kernel | threads | " + " | ".join(f"{b} ms" for b in backends) + (" | C/Numba |" if len(backends) == 2 else " |"))
    print("|---|---|" + "---|" * (len(backends) + (len(backends) == 2)))
    only = [o for o in a.only.split(",") if o] if a.only else None
    rows = []
    if only != ["triplet"]:
        for t in threads:
            rows += list(run(t, a.repeats, backends, only, a.dtype))
    if only is None or "triplet" in only:
        rows += run_triplet(a.repeats, backends)
    for label, th, best in rows:
        cells = " | ".join(f"{best[b] * 1e3:.3f}" for b in backends)
        ratio = f" | {best['c'] / best['numba']:.2f} |" if len(backends) == 2 else " |"
        print(f"| {label} | {th} | {cells}{ratio}", flush=True)


if __name__ == "__main__":
    main()
