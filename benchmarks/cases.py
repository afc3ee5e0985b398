"""Benchmark cases and providers, shared by the pytest-benchmark suite and the report.

Every case is loss + gradient w.r.t. ``y_pred`` in float32 from NumPy inputs,
with the result back as NumPy arrays:

==================  ======================================  =====================
kernel              fastloss call                           peers
==================  ======================================  =====================
``scce_logits``     ``SparseCategoricalCrossentropy(         Keras 3 class on TF;
                    from_logits=True)``, int64 labels        NumPy vectorized
``bce_probs``       ``BinaryCrossentropy()`` on              Keras 3 class on TF
                    probabilities, float32 0/1 targets
``cce_logits``      ``CategoricalCrossentropy(               Keras 3 class on TF
                    from_logits=True)``, one-hot float32
``cat_focal``       ``CategoricalFocalCrossentropy()``       Keras 3 class on TF
                    (Keras defaults: probabilities,
                    alpha=0.25, gamma=2), one-hot float32
                    targets, rows of a softmax
``sigmoid_focal``   ``SigmoidFocalCrossEntropy()`` (TFA      TFA's function body
                    defaults: probabilities, alpha=0.25,     ported to TF ops
                    gamma=2, reduction "none"), shape        (``tf_*``); real TF
                    ``(N, 1)`` -- N elements, one per row    Addons in a subprocess
                                                             (``tfa_*``)
``huber``           ``Huber()`` (delta=1), float32 targets   Keras 3 class on TF
``log_cosh``        ``LogCosh()``, float32 targets           Keras 3 class on TF
``giou``            ``GIoULoss()`` (TF Addons defaults:      TFA's function body
                    mode "giou", sum_over_batch_size),       ported to TF ops
                    boxes ``(N, 4)`` in TFA's yxyx order     (``tf_*``); real TF
                                                             Addons in a subprocess
                                                             (``tfa_*``)
``triplet_semihard`` ``TripletSemiHardLoss()`` (TFA           TFA's function body
                    defaults: margin 1, L2), size            in TF ops (``tf_*``,
                    ``NxD``: N embeddings of dimension D,    its N^2 x N tiling
                    l2-normalized, ~16 per class, int32      included); real TF
                    labels                                   Addons (``tfa_*``)
``triplet_hard``    ``TripletHardLoss()`` (margin 1, L2)     the same
==================  ======================================  =====================

Sizes are ``"NxC"`` strings (GIoU: ``"Nx4"``, N boxes). Sigmoid focal uses ``(N, 1)`` (e.g. ``1048576x1``,
"1M elements"): TFA sums over the last axis, so this is one loss value per
element, the shape of a dense detection head flattened to one score per anchor.

Providers
    ``fastloss``            ``obj.value_and_grad(y_true, y_pred)`` (a new gradient array per call),
                            once per backend in ``fastloss.available_backends()``.
    ``fastloss_grad_out``   the same with ``grad_out=`` reusing one buffer (the hot-loop use).
    ``tf_function``         ``tf.function`` of [convert inputs; GradientTape; loss; gradient];
                            ``.numpy()`` of loss and gradient included in the time.
    ``tf_eager``            the same function, not wrapped in ``tf.function``.
    ``numpy``               a vectorized float32 NumPy implementation (SCCE logits only).
    ``torch_eager``         PyTorch eager, when installed: ``torch.from_numpy`` of the inputs, the loss
                            written to Keras' semantics (``F.cross_entropy`` for SCCE/CCE logits, BCE on
                            probabilities clipped to [eps, 1 - eps], TFA's focal and GIoU formulas), gradient by
                            ``torch.autograd.grad``; ``.numpy()`` of loss and gradient included.
                            ``torch.set_num_threads(os.cpu_count())``.
    ``jax_jit``             JAX, when installed: ``jax.jit(jax.value_and_grad(loss))`` called on the NumPy
                            inputs (the transfer is in the time), results turned into NumPy arrays
                            (``np.asarray``) inside the timed call. XLA's default CPU threads.
    ``tfa_function``/``tfa_eager``  TF Addons under ``$FASTLOSS_TFA_PYTHON`` (report only).

TF providers use TF's default thread pools (intra/inter op threads untouched).
"""

import os
from dataclasses import dataclass

import numpy as np

EPS = 1e-7
SEED = 1234


@dataclass(frozen=True)
class Case:
    kernel: str
    rows: int
    cols: int
    quick: bool = True  # in the report's --quick set
    suite: bool = True  # in the pytest-benchmark suite

    @property
    def size(self):
        return f"{self.rows}x{self.cols}"

    @property
    def id(self):
        return f"{self.kernel}-{self.size}"

    @property
    def n_elements(self):
        return self.rows * self.cols

    @property
    def label(self):
        return f"{KERNEL_LABELS[self.kernel]} {self.size}"


KERNEL_LABELS = {
    "scce_logits": "SCCE logits",
    "bce_probs": "BCE probs",
    "cce_logits": "CCE logits",
    "cat_focal": "CategoricalFocal probs",
    "sigmoid_focal": "SigmoidFocal",
    "huber": "Huber",
    "log_cosh": "LogCosh",
    "giou": "GIoU",
    "triplet_semihard": "TripletSemiHard",
    "triplet_hard": "TripletHard",
    "triplet_hard_gram": "TripletHard (Gram-matrix path)",  # GPU rows only (benchmarks/gpu_check.py)
    "scce_logits_twopass": "SCCE logits (two-pass kernels)",  # GPU rows only
}

TRIPLET_KERNELS = ("triplet_semihard", "triplet_hard")

CASES = [
    Case("scce_logits", 256, 10),
    Case("scce_logits", 1024, 1000, quick=False, suite=False),
    Case("scce_logits", 4096, 1000),
    Case("scce_logits", 16384, 1000, quick=False, suite=False),
    Case("scce_logits", 65536, 1000),
    # short rows (a few classes: the CPU kernels' columns layout)
    Case("scce_logits", 262144, 4),
    Case("bce_probs", 4096, 256, quick=False, suite=False),
    Case("bce_probs", 65536, 256),
    Case("cce_logits", 4096, 1000),
    Case("cce_logits", 65536, 1000, quick=False, suite=False),
    Case("cce_logits", 262144, 4),
    # Keras' CategoricalFocalCrossentropy on probabilities: 100 classes (a detection head's
    # scale) in the quick set, 1000 in the full one
    Case("cat_focal", 16384, 100),
    Case("cat_focal", 4096, 1000, quick=False, suite=False),
    Case("cat_focal", 262144, 4),
    Case("sigmoid_focal", 65536, 1, quick=False, suite=False),
    Case("sigmoid_focal", 1048576, 1),
    Case("sigmoid_focal", 4194304, 1, quick=False, suite=False),
    # regression family (Keras Huber(delta=1) / LogCosh, mean reduction; their pytest
    # suite is benchmarks/test_bench_regression.py); 4M elements as one column and as 256-wide rows
    Case("huber", 256, 1),
    Case("huber", 4194304, 1),
    Case("huber", 16384, 256),
    Case("log_cosh", 256, 1),
    Case("log_cosh", 4194304, 1),
    Case("log_cosh", 16384, 256),
    # box family (TF Addons GIoULoss; pytest suite benchmarks/test_bench_boxes.py): 1M boxes
    # is the target; 10M (report --full) checks that only the outputs are allocated
    Case("giou", 4096, 4, quick=False),
    Case("giou", 1048576, 4),
    Case("giou", 10485760, 4, quick=False, suite=False),
    # triplet family (TF Addons' TripletSemiHardLoss / TripletHardLoss; size NxD, one loss per batch;
    # pytest suite benchmarks/test_bench_triplet.py; N = 256 .. 16384: python -m benchmarks.triplet_scaling)
    Case("triplet_semihard", 256, 128),
    Case("triplet_semihard", 512, 128, quick=False, suite=False),
    Case("triplet_hard", 256, 128),
    Case("triplet_hard", 1024, 128, quick=False, suite=False),
]

PROVIDER_ORDER = [
    "fastloss",
    "fastloss_grad_out",
    "tf_function",
    "tf_eager",
    "tfa_function",
    "tfa_eager",
    "torch_eager",
    "jax_jit",
    "numpy",
]
FASTLOSS_PROVIDERS = ("fastloss", "fastloss_grad_out")
TF_PROVIDERS = ("tf_function", "tf_eager")
TFA_PROVIDERS = ("tfa_function", "tfa_eager")
TORCH_PROVIDERS = ("torch_eager",)
JAX_PROVIDERS = ("jax_jit",)
# kernels with a PyTorch / JAX peer (the formulas below); others skip those providers
PEER_KERNELS = ("scce_logits", "cce_logits", "cat_focal", "bce_probs", "sigmoid_focal", "giou")


def case_matches(case, f):
    """``f`` selects ``case`` if the case id starts with it (``scce``, ``cce_logits-4096``),
    it is the size (``65536x1000``) or a word of the kernel name (``focal``, ``logits``)."""
    f = f.strip().lower()
    return bool(f) and (case.id.startswith(f) or f == case.size or f in case.kernel.split("_"))


FAMILY = {"huber": "regression", "log_cosh": "regression", "giou": "boxes",
          "triplet_semihard": "triplet", "triplet_hard": "triplet"}  # others: "crossentropy"
# kernels timed in TF Addons' own interpreter too (benchmarks/tfa_runner.py --kernel)
TFA_KERNELS = ("sigmoid_focal", "giou", "triplet_semihard", "triplet_hard")


def select_cases(full=False, filters=None, suite=False, family=None):
    out = []
    for c in CASES:
        if family is not None and FAMILY.get(c.kernel, "crossentropy") != family:
            continue
        if suite and not c.suite:
            continue
        if not suite and not full and not c.quick:
            continue
        if filters and not any(case_matches(c, f) for f in filters):
            continue
        out.append(c)
    return out


# --------------------------------------------------------------------- data


def make_data(case):
    """``(y_true, y_pred)`` NumPy inputs of ``case`` (deterministic)."""
    rng = np.random.default_rng(SEED)
    n, c = case.rows, case.cols
    if case.kernel == "scce_logits":
        return rng.integers(0, c, size=n, dtype=np.int64), rng.standard_normal((n, c), dtype=np.float32)
    if case.kernel in ("cce_logits", "cat_focal"):
        lab = rng.integers(0, c, size=n)
        yt = np.zeros((n, c), dtype=np.float32)
        yt[np.arange(n), lab] = 1.0
        z = rng.standard_normal((n, c), dtype=np.float32)
        if case.kernel == "cat_focal":  # probabilities: each row a softmax (sums to 1 up to rounding)
            e = np.exp(z.astype(np.float64))
            z = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return yt, z
    if case.kernel in ("bce_probs", "sigmoid_focal"):
        yt = (rng.random((n, c), dtype=np.float32) < 0.5).astype(np.float32)
        yp = rng.uniform(1e-3, 1 - 1e-3, size=(n, c)).astype(np.float32)
        return yt, yp
    if case.kernel in ("huber", "log_cosh"):  # errors ~ N(0, 2): about half beyond delta = 1
        return rng.standard_normal((n, c), dtype=np.float32), rng.standard_normal((n, c), dtype=np.float32)
    if case.kernel == "giou":  # [y_min, x_min, y_max, x_max]; pairs overlap, nest or lie apart
        return make_boxes(rng, n), make_boxes(rng, n)
    if case.kernel in TRIPLET_KERNELS:
        # ~unit-norm embeddings (TFA expects normalized ones), ~16 per class, entries on a
        # 2**-11 grid: every product, norm and squared distance is then exact in float32, so
        # the mining of a float32 run is that of the float64 reference (with N(0, 1/D)
        # entries, an anchor's negatives lie ~1e-4 apart and float32 rounding would flip a
        # few semi-hard choices, differently in each implementation)
        x = np.clip(np.round(rng.standard_normal((n, c)) / np.sqrt(c) * 2048.0), -2047, 2047) / 2048.0
        return rng.integers(0, max(2, n // 16), size=n).astype(np.int32), x.astype(np.float32)
    raise KeyError(case.kernel)


def make_boxes(rng, n):
    """``n`` float32 boxes in TFA's yxyx order, corners in [0, 100), sides in [1, 30)."""
    out = np.empty((n, 4), np.float32)
    out[:, :2] = rng.uniform(0, 100, (n, 2))
    out[:, 2:] = out[:, :2] + rng.uniform(1, 30, (n, 2))
    return out


def floor_bytes(case, y_true, y_pred):
    """Bytes that must move: the inputs read once plus the gradient written once."""
    return int(y_true.nbytes + y_pred.nbytes + y_pred.nbytes)


# ---------------------------------------------------------- float64 reference


def reference(case, y_true, y_pred):
    """``(loss, grad)`` in float64 NumPy, the semantics of the Keras / TFA originals."""
    x = y_pred.astype(np.float64)
    n, c = x.shape
    if case.kernel in TRIPLET_KERNELS:
        return triplet_reference(case.kernel, y_true, x)
    if case.kernel in ("scce_logits", "cce_logits"):
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        p = e / s
        lse = np.log(s[:, 0])
        if case.kernel == "scce_logits":
            idx = np.asarray(y_true)
            loss = float(np.mean(lse - z[np.arange(n), idx]))
            p[np.arange(n), idx] -= 1.0
        else:
            y = y_true.astype(np.float64)
            loss = float(np.mean(lse * y.sum(axis=1) - (y * z).sum(axis=1)))
            p = p * y.sum(axis=1, keepdims=True) - y
        return loss, p / n
    if case.kernel == "giou":
        return giou_reference(y_true, y_pred)
    y = y_true.astype(np.float64)
    if case.kernel == "cat_focal":
        return cat_focal_reference(y, x)
    if case.kernel == "huber":
        e = x - y
        a = np.abs(e)
        loss = float(np.mean(np.where(a <= 1.0, 0.5 * e * e, a - 0.5)))
        return loss, np.clip(e, -1.0, 1.0) / (n * c)
    if case.kernel == "log_cosh":
        e = x - y
        a = np.abs(e)
        loss = float(np.mean(a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)))
        return loss, np.tanh(e) / (n * c)
    inside = (x > EPS) & (x < 1 - EPS)
    pc = np.clip(x, EPS, 1 - EPS)
    if case.kernel == "bce_probs":
        loss = float(np.mean(-(y * np.log(pc) + (1 - y) * np.log(1 - pc))))
        grad = -(y / pc - (1 - y) / (1 - pc)) * inside / (n * c)
        return loss, grad
    if case.kernel == "sigmoid_focal":
        alpha, gamma = 0.25, 2.0
        ce = -(y * np.log(pc + EPS) + (1 - y) * np.log(1 - pc + EPS))
        dce = -(y / (pc + EPS) - (1 - y) / (1 - pc + EPS)) * inside
        s = 2 * y - 1
        pt = y * x + (1 - y) * (1 - x)
        at = y * alpha + (1 - y) * (1 - alpha)
        mod = (1 - pt) ** gamma
        loss = (at * mod * ce).sum(axis=-1)
        grad = at * (-gamma * (1 - pt) ** (gamma - 1) * s * ce + mod * dce)
        return loss, grad
    raise KeyError(case.kernel)


def cat_focal_reference(y, p, alpha=0.25, gamma=2.0):
    """Keras 3's ``categorical_focal_crossentropy`` on probabilities (mean over rows) and
    its gradient, in float64: ``q = clip(p / sum(p), eps, 1 - eps)``,
    ``loss = sum_j alpha (1 - q_j)^gamma (-y_j log q_j)``; the gradient goes through the
    clip (zero outside) and the row normalization, ``dq_j/dp_k = (delta_jk - r_j) / s``
    with ``r = p / s`` unclipped."""
    n = p.shape[0]
    s = p.sum(axis=1, keepdims=True)
    r = p / s
    q = np.clip(r, EPS, 1 - EPS)
    inside = (r >= EPS) & (r <= 1 - EPS)
    m = 1.0 - q
    loss = (alpha * m**gamma * (-y * np.log(q))).sum(axis=1)
    g = alpha * y * (gamma * m ** (gamma - 1) * np.log(q) - m**gamma / q) * inside  # dloss/dq
    grad = (g - (g * r).sum(axis=1, keepdims=True)) / s
    return float(loss.mean()), grad / n


def giou_reference(y_true, y_pred):
    """TF Addons' GIoU loss (mean over boxes) and its tf.GradientTape gradient,
    in float64 NumPy: reverse mode written out, ties of max/min to y_pred,
    ``max(0, d)`` passing the gradient where ``d > 0``, ``divide_no_nan``."""
    p = y_pred.astype(np.float64)
    t = y_true.astype(np.float64)
    n = p.shape[0]
    g = np.zeros_like(p)
    ext_p = p[:, 2:] - p[:, :2]  # (h, w)
    ext = np.maximum(0.0, ext_p)
    ext_t = np.maximum(0.0, t[:, 2:] - t[:, :2])
    lo_k = p[:, :2] >= t[:, :2]
    hi_k = p[:, 2:] <= t[:, 2:]
    d_i = np.where(hi_k, p[:, 2:], t[:, 2:]) - np.where(lo_k, p[:, :2], t[:, :2])
    i_ext = np.maximum(0.0, d_i)
    lo_c = p[:, :2] <= t[:, :2]
    hi_c = p[:, 2:] >= t[:, 2:]
    d_c = np.where(hi_c, p[:, 2:], t[:, 2:]) - np.where(lo_c, p[:, :2], t[:, :2])
    c_ext = np.maximum(0.0, d_c)
    inter = i_ext.prod(axis=1)
    union = ext.prod(axis=1) + ext_t.prod(axis=1) - inter
    encl = c_ext.prod(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ru = np.where(union == 0, 0.0, 1.0 / union)
        re = np.where(encl == 0, 0.0, 1.0 / encl)
    loss = 1.0 - inter * ru + (encl - union) * re
    g_u = inter * ru * ru - re  # dL/dunion
    g_i = -ru - g_u  # dL/dinter (through the union too)
    g_c = union * re * re  # dL/dencl
    g_ext = g_u[:, None] * ext[:, ::-1] * (ext_p > 0)
    g_iext = g_i[:, None] * i_ext[:, ::-1] * (d_i > 0)
    g_cext = g_c[:, None] * c_ext[:, ::-1] * (d_c > 0)
    g[:, :2] = -g_ext - g_iext * lo_k - g_cext * lo_c
    g[:, 2:] = g_ext + g_iext * hi_k + g_cext * hi_c
    return float(loss.mean()), g / n


def _l2_matrix(x):
    sq = (x * x).sum(1)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ np.ascontiguousarray(x.T)), 0.0))
    np.fill_diagonal(D, 0.0)
    return D


def triplet_reference(kernel, labels, x):
    """TFA's semi-hard / hard triplet loss (margin 1, L2) and its gradient in float64,
    O(N^2) memory, one anchor row at a time; ties go to the lowest index. The mining
    compares the float32 square roots of the (exact, see ``make_data``) squared
    distances, as a float32 run does: distinct squared distances 2**-22 apart can
    share one float32 root, and then they tie."""
    lab = np.asarray(labels).reshape(-1)
    n = x.shape[0]
    D = _l2_matrix(x)
    Dm = np.sqrt((D * D).astype(np.float32)).astype(np.float64)
    W = np.zeros((n, n))  # dL/dD before normalization
    total, count = 0.0, 0
    for a in range(n):
        d = D[a]
        dm = Dm[a]
        same = lab == lab[a]
        pos = np.flatnonzero(same & (np.arange(n) != a))
        neg = np.flatnonzero(~same)
        if kernel == "triplet_hard":
            ip = pos[np.argmax(dm[pos])] if pos.size else int(np.argmin(dm))
            jn = neg[np.argmin(dm[neg])] if neg.size else int(np.argmax(dm))
            z = d[ip] - d[jn] + 1.0
            total += max(z, 0.0)
            count += 1
            if z >= 0 and ip != jn:
                W[a, ip] += 1.0
                W[a, jn] -= 1.0
            continue
        count += pos.size
        if not pos.size:
            continue
        order = neg[np.argsort(dm[neg], kind="stable")]
        inside = order[-1] if neg.size else int(np.argmin(dm))
        k = np.searchsorted(dm[order], dm[pos], side="right")
        chosen = np.where(k < neg.size, order[np.minimum(k, max(neg.size - 1, 0))], inside)
        z = 1.0 + d[pos] - d[chosen]
        on = z >= 0
        total += z[on].sum()
        np.add.at(W[a], pos[on], 1.0)
        np.add.at(W[a], chosen[on], -1.0)
    if count == 0:
        return 0.0, np.zeros_like(x)
    S = W + W.T
    with np.errstate(divide="ignore", invalid="ignore"):
        C = np.where(D > 0, S / D, 0.0)
    grad = (C.sum(1)[:, None] * x - C @ x) / count
    return total / count, grad


def max_rel_err(ref, got):
    """max over loss and gradient of ``max|got - ref| / max|ref|``."""
    errs = []
    for r, g in zip(ref, got):
        r = np.asarray(r, dtype=np.float64)
        g = np.asarray(g, dtype=np.float64)
        scale = max(float(np.max(np.abs(r))) if r.size else 0.0, 1e-30)
        errs.append(float(np.max(np.abs(g - r))) / scale if r.size else 0.0)
    return max(errs)


# ---------------------------------------------------------------- providers


def fastloss_object(case):
    from fastloss import losses

    if case.kernel == "scce_logits":
        return losses.SparseCategoricalCrossentropy(from_logits=True)
    if case.kernel == "bce_probs":
        return losses.BinaryCrossentropy()
    if case.kernel == "cce_logits":
        return losses.CategoricalCrossentropy(from_logits=True)
    if case.kernel == "cat_focal":
        return losses.CategoricalFocalCrossentropy()
    if case.kernel == "sigmoid_focal":
        return losses.SigmoidFocalCrossEntropy()
    if case.kernel == "huber":
        return losses.Huber()
    if case.kernel == "log_cosh":
        return losses.LogCosh()
    if case.kernel == "giou":
        return losses.GIoULoss()
    if case.kernel == "triplet_semihard":
        return losses.TripletSemiHardLoss()
    if case.kernel == "triplet_hard":
        return losses.TripletHardLoss()
    raise KeyError(case.kernel)


def fastloss_backends():
    try:
        import fastloss
    except ImportError:
        return []
    return list(fastloss.available_backends())


def make_fastloss(case, y_true, y_pred, backend, grad_out=False):
    """Zero-argument callable returning ``(loss, grad)`` on ``backend``."""
    import fastloss

    obj = fastloss_object(case)
    if grad_out:
        buf = np.empty_like(y_pred)

        def run():
            with fastloss.use_backend(backend):
                return obj.value_and_grad(y_true, y_pred, grad_out=buf)

    else:

        def run():
            with fastloss.use_backend(backend):
                return obj.value_and_grad(y_true, y_pred)

    return run


def numpy_scce_logits(y_true, y_pred):
    """Vectorized float32 NumPy SCCE from logits, mean reduction: ``(loss, grad)``."""
    n = y_pred.shape[0]
    rows = np.arange(n)
    grad = y_pred - y_pred.max(axis=1, keepdims=True)  # z (new array, becomes the gradient)
    picked = grad[rows, y_true].astype(np.float64)
    np.exp(grad, out=grad)
    s = grad.sum(axis=1, keepdims=True)
    loss = np.float32(np.mean(np.log(s[:, 0], dtype=np.float64) - picked))
    grad *= (1.0 / (s * n)).astype(np.float32)
    grad[rows, y_true] -= np.float32(1.0 / n)
    return loss, grad


def has_numpy_peer(case):
    return case.kernel == "scce_logits"


def make_numpy(case, y_true, y_pred):
    if case.kernel != "scce_logits":
        raise KeyError(case.kernel)
    return lambda: numpy_scce_logits(y_true, y_pred)


def _quiet_import(name):
    """Import ``name`` with file descriptor 2 sent to /dev/null (TF's C++ start-up chatter
    ignores TF_CPP_MIN_LOG_LEVEL); ``None`` if it is not installed."""
    import importlib
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        return importlib.import_module(name)
    except ImportError:
        return None
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tf():
    """``(tf, keras)`` or ``(None, None)``; logging quiet, threads left at TF's defaults."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tf = _quiet_import("tensorflow")
    if tf is None:
        return None, None
    tf.get_logger().setLevel("ERROR")
    try:
        import keras
    except ImportError:
        keras = tf.keras
    return tf, keras


def tf_sigmoid_focal(tf, y_true, y_pred, alpha=0.25, gamma=2.0):
    """TF Addons 0.23 ``sigmoid_focal_crossentropy`` (from_logits=False), in TF ops.

    ``ce`` is Keras 2's ``binary_crossentropy`` on probabilities:
    clip to [eps, 1-eps], ``-(y log(p + eps) + (1 - y) log(1 - p + eps))``.
    """
    eps = tf.constant(EPS, y_pred.dtype)
    p = tf.clip_by_value(y_pred, eps, 1.0 - eps)
    ce = -(y_true * tf.math.log(p + eps) + (1.0 - y_true) * tf.math.log(1.0 - p + eps))
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    alpha_factor = y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
    modulating = tf.pow(1.0 - p_t, gamma)
    return tf.reduce_sum(alpha_factor * modulating * ce, axis=-1)


def tf_giou(tf, y_true, y_pred, per_box=False):
    """TF Addons 0.23 ``giou_loss`` (mode "giou") in TF ops, mean over boxes
    (GIoULoss' default sum_over_batch_size; ``per_box``: the loss of each box):
    extents ``max(0, .)``, IoU and the enclosure term by ``divide_no_nan``."""
    zero = tf.constant(0.0, y_pred.dtype)
    p_lo, p_hi = y_pred[:, :2], y_pred[:, 2:]
    t_lo, t_hi = y_true[:, :2], y_true[:, 2:]
    area_p = tf.reduce_prod(tf.maximum(zero, p_hi - p_lo), axis=-1)
    area_t = tf.reduce_prod(tf.maximum(zero, t_hi - t_lo), axis=-1)
    inter = tf.reduce_prod(tf.maximum(zero, tf.minimum(p_hi, t_hi) - tf.maximum(p_lo, t_lo)), axis=-1)
    union = area_p + area_t - inter
    iou = tf.math.divide_no_nan(inter, union)
    encl = tf.reduce_prod(tf.maximum(zero, tf.maximum(p_hi, t_hi) - tf.minimum(p_lo, t_lo)), axis=-1)
    giou = iou - tf.math.divide_no_nan(encl - union, encl)
    return (1.0 - giou) if per_box else tf.reduce_mean(1.0 - giou)


def tf_triplet(tf, labels, emb, hard, margin=1.0):
    """TF Addons 0.23's ``triplet_semihard_loss`` / ``triplet_hard_loss`` (L2
    distances) written out in TF ops, with TFA's algorithm: the Gram-formula
    distance matrix with its zero mask, masked minimum/maximum through row
    min/max offsets and, for semi-hard mining, the (N^2, N) tiled comparison."""
    f32 = emb.dtype
    lab = tf.reshape(labels, [-1, 1])
    n = tf.shape(lab)[0]
    sq = tf.reduce_sum(tf.square(emb), axis=1, keepdims=True)
    d2 = tf.maximum(sq + tf.transpose(sq) - 2.0 * tf.matmul(emb, emb, transpose_b=True), 0.0)
    zero = tf.less_equal(d2, 0.0)
    d = tf.sqrt(d2 + tf.cast(zero, f32) * 1e-16) * tf.cast(tf.logical_not(zero), f32)
    d = d * (tf.ones_like(d) - tf.linalg.diag(tf.ones([n], f32)))
    same = tf.equal(lab, tf.transpose(lab))
    other = tf.cast(tf.logical_not(same), f32)

    def masked_min(x, m):
        top = tf.reduce_max(x, 1, keepdims=True)
        return tf.reduce_min((x - top) * m, 1, keepdims=True) + top

    def masked_max(x, m):
        low = tf.reduce_min(x, 1, keepdims=True)
        return tf.reduce_max((x - low) * m, 1, keepdims=True) + low

    positives = tf.cast(same, f32) - tf.linalg.diag(tf.ones([n], f32))
    if hard:
        hp = masked_max(d, positives)
        hn = masked_min(d, other)
        return tf.reduce_mean(tf.maximum(hp - hn + margin, 0.0))
    tiled = tf.tile(d, [n, 1])  # row k: anchor k % n, threshold d[k % n, k // n]
    beyond = tf.logical_and(tf.tile(tf.logical_not(same), [n, 1]), tf.greater(tiled, tf.reshape(tf.transpose(d), [-1, 1])))
    has = tf.transpose(tf.reshape(tf.reduce_any(beyond, 1), [n, n]))
    outside = tf.transpose(tf.reshape(masked_min(tiled, tf.cast(beyond, f32)), [n, n]))
    inside = tf.tile(masked_max(d, other), [1, n])
    neg = tf.where(has, outside, inside)
    per = tf.maximum((margin + d - neg) * positives, 0.0)
    return tf.reduce_sum(per) / tf.reduce_sum(positives)


def make_tf(case, y_true, y_pred, compiled):
    """Zero-argument callable: NumPy in -> TF loss + GradientTape gradient -> NumPy out."""
    tf, keras = import_tf()
    if tf is None:
        raise ImportError("tensorflow is not installed")
    if case.kernel == "scce_logits":
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    elif case.kernel == "bce_probs":
        loss_fn = keras.losses.BinaryCrossentropy()
    elif case.kernel == "cce_logits":
        loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True)
    elif case.kernel == "cat_focal":
        loss_fn = keras.losses.CategoricalFocalCrossentropy()
    elif case.kernel == "sigmoid_focal":

        def loss_fn(yt, yp):
            return tf_sigmoid_focal(tf, yt, yp)

    elif case.kernel == "huber":
        loss_fn = keras.losses.Huber()
    elif case.kernel == "log_cosh":
        loss_fn = keras.losses.LogCosh()
    elif case.kernel == "giou":

        def loss_fn(yt, yp):
            return tf_giou(tf, yt, yp)
    elif case.kernel in TRIPLET_KERNELS:
        hard = case.kernel == "triplet_hard"

        def loss_fn(yt, yp):
            return tf_triplet(tf, yt, yp, hard)

    else:
        raise KeyError(case.kernel)

    def value_and_grad(yt, yp):
        with tf.GradientTape() as tape:
            tape.watch(yp)
            loss = loss_fn(yt, yp)
        return loss, tape.gradient(loss, yp)

    fn = tf.function(value_and_grad) if compiled else value_and_grad

    def run():
        loss, grad = fn(tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred))
        return loss.numpy(), grad.numpy()

    return run

# ------------------------------------------------------ PyTorch / JAX peers


def import_torch():
    """``torch`` (intra-op threads set to ``os.cpu_count()``) or ``None`` when not installed."""
    torch = _quiet_import("torch")
    if torch is not None and torch.get_num_threads() != (os.cpu_count() or 1):
        torch.set_num_threads(os.cpu_count() or 1)
    return torch


def import_jax():
    """``jax`` (CPU, float32 default) or ``None`` when not installed."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return _quiet_import("jax")


def has_torch_peer(case):
    return case.kernel in PEER_KERNELS


def has_jax_peer(case):
    return case.kernel in PEER_KERNELS


def make_torch(case, y_true, y_pred):
    """Zero-argument callable: NumPy in -> PyTorch eager loss + ``torch.autograd.grad`` -> NumPy out.

    Keras semantics: mean over rows for SCCE/CCE logits (``F.cross_entropy`` with class indices /
    probabilities as targets), BCE on probabilities clipped to [eps, 1 - eps] (clamp's gradient is 0
    outside, as Keras'; the clipped log never reaches ``F.binary_cross_entropy``'s -100 floor), Keras'
    categorical focal formula (rows normalized, then clipped), and TF Addons' sigmoid focal formula (reduction "none": the gradient is that of the summed loss).
    """
    torch = import_torch()
    if torch is None:
        raise ImportError("torch is not installed")
    import torch.nn.functional as F

    k = case.kernel
    if k in ("scce_logits", "cce_logits"):

        def loss_fn(yt, yp):
            return F.cross_entropy(yp, yt)

    elif k == "cat_focal":

        def loss_fn(yt, yp, alpha=0.25, gamma=2.0):  # Keras' formula in torch ops
            q = torch.clamp(yp / yp.sum(dim=-1, keepdim=True), EPS, 1.0 - EPS)
            return torch.mean((alpha * torch.pow(1.0 - q, gamma) * (-yt * torch.log(q))).sum(dim=-1))

    elif k == "bce_probs":

        def loss_fn(yt, yp):
            return F.binary_cross_entropy(torch.clamp(yp, EPS, 1.0 - EPS), yt)

    elif k == "sigmoid_focal":

        def loss_fn(yt, yp, alpha=0.25, gamma=2.0):
            p = torch.clamp(yp, EPS, 1.0 - EPS)
            ce = -(yt * torch.log(p + EPS) + (1.0 - yt) * torch.log(1.0 - p + EPS))
            p_t = yt * yp + (1.0 - yt) * (1.0 - yp)
            alpha_factor = yt * alpha + (1.0 - yt) * (1.0 - alpha)
            return (alpha_factor * torch.pow(1.0 - p_t, gamma) * ce).sum(dim=-1)

    elif k == "giou":

        def loss_fn(yt, yp):  # TF Addons' giou_loss in torch ops, mean over boxes
            zero = torch.zeros((), dtype=yp.dtype)
            p_lo, p_hi, t_lo, t_hi = yp[:, :2], yp[:, 2:], yt[:, :2], yt[:, 2:]
            area_p = torch.prod(torch.maximum(zero, p_hi - p_lo), dim=-1)
            area_t = torch.prod(torch.maximum(zero, t_hi - t_lo), dim=-1)
            inter = torch.prod(torch.maximum(zero, torch.minimum(p_hi, t_hi) - torch.maximum(p_lo, t_lo)), dim=-1)
            union = area_p + area_t - inter
            iou = torch.where(union == 0, zero, inter / union)
            encl = torch.prod(torch.maximum(zero, torch.maximum(p_hi, t_hi) - torch.minimum(p_lo, t_lo)), dim=-1)
            giou = iou - torch.where(encl == 0, zero, (encl - union) / encl)
            return torch.mean(1.0 - giou)

    else:
        raise KeyError(k)

    def run():
        yt = torch.from_numpy(y_true)
        yp = torch.from_numpy(y_pred).requires_grad_(True)
        loss = loss_fn(yt, yp)
        (grad,) = torch.autograd.grad(loss.sum() if loss.dim() else loss, yp)
        return loss.detach().numpy(), grad.numpy()

    return run


def jax_loss_fn(kernel):
    """The JAX loss ``f(y_pred, y_true)`` of ``kernel`` (Keras / TFA semantics, as ``make_torch``)."""
    import jax
    import jax.numpy as jnp

    if kernel == "scce_logits":

        def f(yp, yt):
            lse = jax.nn.logsumexp(yp, axis=-1)
            return jnp.mean(lse - jnp.take_along_axis(yp, yt[:, None], axis=-1)[:, 0])

    elif kernel == "cce_logits":

        def f(yp, yt):
            return jnp.mean(-jnp.sum(yt * jax.nn.log_softmax(yp, axis=-1), axis=-1))

    elif kernel == "cat_focal":

        def f(yp, yt, alpha=0.25, gamma=2.0):
            q = jnp.clip(yp / jnp.sum(yp, axis=-1, keepdims=True), EPS, 1.0 - EPS)
            return jnp.mean(jnp.sum(alpha * jnp.power(1.0 - q, gamma) * (-yt * jnp.log(q)), axis=-1))

    elif kernel == "bce_probs":

        def f(yp, yt):
            p = jnp.clip(yp, EPS, 1.0 - EPS)
            return jnp.mean(-(yt * jnp.log(p) + (1.0 - yt) * jnp.log(1.0 - p)))

    elif kernel == "sigmoid_focal":

        def f(yp, yt, alpha=0.25, gamma=2.0):
            p = jnp.clip(yp, EPS, 1.0 - EPS)
            ce = -(yt * jnp.log(p + EPS) + (1.0 - yt) * jnp.log(1.0 - p + EPS))
            p_t = yt * yp + (1.0 - yt) * (1.0 - yp)
            alpha_factor = yt * alpha + (1.0 - yt) * (1.0 - alpha)
            loss = jnp.sum(alpha_factor * jnp.power(1.0 - p_t, gamma) * ce, axis=-1)
            return jnp.sum(loss), loss  # reduction "none": gradient of the summed loss

    elif kernel == "giou":

        def f(yp, yt):  # TF Addons' giou_loss in jnp ops, mean over boxes
            p_lo, p_hi, t_lo, t_hi = yp[:, :2], yp[:, 2:], yt[:, :2], yt[:, 2:]
            area_p = jnp.prod(jnp.maximum(0.0, p_hi - p_lo), axis=-1)
            area_t = jnp.prod(jnp.maximum(0.0, t_hi - t_lo), axis=-1)
            inter = jnp.prod(jnp.maximum(0.0, jnp.minimum(p_hi, t_hi) - jnp.maximum(p_lo, t_lo)), axis=-1)
            union = area_p + area_t - inter
            iou = jnp.where(union == 0, 0.0, inter / jnp.where(union == 0, 1.0, union))
            encl = jnp.prod(jnp.maximum(0.0, jnp.maximum(p_hi, t_hi) - jnp.minimum(p_lo, t_lo)), axis=-1)
            giou = iou - jnp.where(encl == 0, 0.0, (encl - union) / jnp.where(encl == 0, 1.0, encl))
            return jnp.mean(1.0 - giou)

    else:
        raise KeyError(kernel)
    return f


def make_jax(case, y_true, y_pred):
    """Zero-argument callable: NumPy in -> ``jax.jit(jax.value_and_grad(loss))`` -> NumPy out."""
    jax = import_jax()
    if jax is None:
        raise ImportError("jax is not installed")
    aux = case.kernel == "sigmoid_focal"
    fn = jax.jit(jax.value_and_grad(jax_loss_fn(case.kernel), has_aux=aux))

    def run():
        value, grad = fn(y_pred, y_true)
        loss = value[1] if aux else value
        return np.asarray(loss), np.asarray(grad)

    return run


def make_provider(case, provider, backend, y_true, y_pred):
    if provider == "fastloss":
        return make_fastloss(case, y_true, y_pred, backend)
    if provider == "fastloss_grad_out":
        return make_fastloss(case, y_true, y_pred, backend, grad_out=True)
    if provider == "tf_function":
        return make_tf(case, y_true, y_pred, compiled=True)
    if provider == "tf_eager":
        return make_tf(case, y_true, y_pred, compiled=False)
    if provider == "numpy":
        return make_numpy(case, y_true, y_pred)
    if provider == "torch_eager":
        return make_torch(case, y_true, y_pred)
    if provider == "jax_jit":
        return make_jax(case, y_true, y_pred)
    raise KeyError(provider)


def provider_list(case, tf_available=True, torch_available=False, jax_available=False):  # noqa: D401
    """``[(provider, backend)]`` to run in-process for ``case``."""
    out = []
    for b in fastloss_backends():
        out.append(("fastloss", b))
        out.append(("fastloss_grad_out", b))
    if tf_available:
        out += [("tf_function", ""), ("tf_eager", "")]
    if torch_available and has_torch_peer(case):
        out.append(("torch_eager", ""))
    if jax_available and has_jax_peer(case):
        out.append(("jax_jit", ""))
    if has_numpy_peer(case):
        out.append(("numpy", ""))
    return out
