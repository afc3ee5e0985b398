"""The path the triplet losses take: validate -> distances -> mining kernel ->
normalize -> gradient assembly.

Triplet losses do not fit ``_core.compute``'s ``(R, K)`` elementwise layout
(one loss per batch, from pairwise distances), so they have this path of
their own beside it; it shares ``_validate``'s helpers, the registry (family
``"triplet"``, one entry per loss with its kernels) and the backend choice.

Memory is O(N^2): the Gram matrix ``X X^T`` (the backend's own blocked kernel,
faster than OpenBLAS' gemm here at every size measured, 256 to 4096 rows)
and, for the gradient of the dense modes (semi-hard, batch-all), one
coefficient matrix ``W`` of the same size. Each kernel thread mines one
anchor row at a time in O(N) scratch.

Gradient (kernel docstring, ``backends/numba_cpu/triplet.py``): the kernel
writes per-pair coefficients ``c[a, j]``; with ``S = c + c^T``,
L2/squared-L2: ``grad = scale (rowsum(S) X - S X)``, from the nonzero
coefficients (semi-hard: ~2 per anchor-positive pair) or, when W is dense,
by BLAS products;
angular: ``grad_i = -scale r_i ((S N)_i - q_i n_i)`` with ``N`` the normalized
rows and ``q_i = sum_j S_ij cos_ij``; hard mining has two entries per anchor and
is assembled sparsely (O(N D)).
"""

import numbers
import time

import numpy as np

from . import _backend, _parallel, _registry
from . import _validate as V
from ._config import PARALLEL_MIN_ELEMENTS

# The Gram product and the mining split their rows over the threads from this
# many entries of the (N, N) matrix on (N >= 182), like the elementwise losses
# (PARALLEL_MIN_ELEMENTS); below it they run in the calling thread.
# (Measured on the 2-core EPYC, 256 x 128 float32: Gram 60 -> 37 us, hard
# mining 42 -> 18 us on two threads. A parallel kernel called right after a
# NumPy/OpenBLAS product can wait milliseconds for a core while OpenBLAS'
# threads spin: fastloss/_parallel.py then falls back to serial calls; README,
# "Threads".)
PARALLEL_MIN_ENTRIES = PARALLEL_MIN_ELEMENTS

# The dense-mode gradient (L2/squared-L2) is assembled from the nonzero
# coefficients (O(entries D), serial) when they are at most this fraction of
# the N^2 matrix (semi-hard: at most 2 per anchor-positive pair), else by two
# BLAS products (O(N^2 D)); measured break-even ~0.15 at D = 128.
SPARSE_MAX_FRACTION = 1.0 / 8.0

# Batch-all counts no entries: the sparse assembly below this many
# multiply-adds (N * N * D; 2**27 = 1024 x 1024 x 128), BLAS above.
SMALL_MADDS = 1 << 27

# registry name -> mining mode
_MODES = {"triplet_semihard": "semihard", "triplet_hard": "hard", "triplet_batch_all": "batch_all"}

METRICS = {"L2": 0, "squared-L2": 1, "angular": 2, "precomputed": 3}

# Recompute d2 = |x_a - x_j|^2 directly where the Gram formula's result is
# below this fraction of |x_a|^2 + |x_j|^2 (it has lost most digits there).
_CUT = {np.dtype(np.float32): 2.0**-6, np.dtype(np.float64): 2.0**-20}


def check_margin(margin):
    if isinstance(margin, np.ndarray) and margin.ndim == 0:
        margin = margin.item()
    if isinstance(margin, bool) or not isinstance(margin, numbers.Real):
        raise TypeError(f"`margin` must be a real number; got {margin!r}")
    m = float(margin)
    if not np.isfinite(m):
        raise ValueError(f"`margin` must be finite; got {margin!r}")
    return m


def check_metric(distance_metric):
    if callable(distance_metric):
        return distance_metric
    if isinstance(distance_metric, str) and distance_metric in METRICS:
        return distance_metric
    raise ValueError(
        f"`distance_metric` must be one of {list(METRICS)} or a callable; got {distance_metric!r}"
    )


def triplet_labels(y_true, n):
    """Labels of shape (N,) or (N, 1) as int64; floats must be integral."""
    lab = V.as_labels(y_true, "y_true")
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(
            f"`y_true` must hold one integer label per embedding: shape ({n},) or ({n}, 1); "
            f"got shape {lab.shape}"
        )
    if lab.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(lab) & (lab == np.trunc(lab))
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"`y_true` labels must be integers; {int(np.count_nonzero(~ok))} are not, "
                f"the first is {lab[i].item()!r} at index {i}"
            )
    return np.ascontiguousarray(lab, dtype=np.int64)


def _threads():
    from . import _core

    return _core._threads()


def compute_triplet(
    name,
    y_true,
    y_pred,
    *,
    margin=1.0,
    soft=False,
    distance_metric="L2",
    sample_weight=None,
    reduction="none",
    want_grad=False,
    grad_out=None,
    dtype=None,
):
    """Run triplet loss ``name``; returns ``(loss, grad)`` (``grad`` None unless asked)."""
    spec = _registry.get(name)
    margin = check_margin(margin)
    metric = check_metric(distance_metric)
    if _on_device(y_pred) or _backend._explicit() == "cuda":
        return _compute_cuda(
            spec, y_true, y_pred, margin, soft, metric, sample_weight, reduction, want_grad, grad_out, dtype
        )
    dt = V.compute_dtype(y_pred, dtype)
    emb = V.as_float(y_pred, "y_pred", dt)
    fn_metric = None if isinstance(metric, str) else metric
    code = 3 if fn_metric is not None else METRICS[metric]
    if code == 3 and fn_metric is None:
        if emb.ndim != 2 or emb.shape[0] != emb.shape[1]:
            raise ValueError(
                f"`y_pred` must be a square (N, N) distance matrix for distance_metric='precomputed'; "
                f"got shape {emb.shape}"
            )
    elif emb.ndim != 2:
        raise ValueError(f"`y_pred` must be 2-D embeddings (batch_size, dim); got shape {emb.shape}")
    N = emb.shape[0]
    lab = triplet_labels(y_true, N)
    grad_shape = emb.shape

    w, gscale = _weights(sample_weight, dt, reduction)

    if want_grad and grad_out is not None:
        V.check_grad_out(grad_out, grad_shape, dt, (y_true, y_pred, sample_weight))

    # ---- backend: one for the whole call (explicit choice, else automatic:
    # Numba where installed, C where Numba is missing or broken) ---------------
    backend = _backend.choose(spec, "mine")  # the helper kernels come from the same backend
    try:
        mine = _backend.kernel(spec, "mine", backend)
    except ImportError:  # a broken Numba: pick_kernel drops it for C (or raises)
        mine = _backend.pick_kernel(spec, "mine", None)
        backend = _backend.choose(spec, "mine")

    wanted = min(N, _threads()) if N * N >= PARALLEL_MIN_ENTRIES else 1
    pkey = (spec.name, dt.char, code, bool(want_grad), backend)
    nch = _parallel.chunks(pkey, wanted)
    t0 = time.perf_counter()

    # ---- distances -----------------------------------------------------------
    vjp = None
    X = np.empty((0, 0), dt)
    aux = np.empty(0, dt)
    if fn_metric is not None:
        out = fn_metric(emb)
        if isinstance(out, tuple):
            if len(out) != 2 or not callable(out[1]):
                raise TypeError(
                    "a callable `distance_metric` must return the (N, N) distance matrix, or a pair "
                    "(distances, vjp) with vjp(dL/ddistances) -> dL/dembeddings"
                )
            out, vjp = out
        M = np.ascontiguousarray(V.as_float(out, "distance_metric(y_pred)", dt))
        if M.shape != (N, N):
            raise ValueError(f"`distance_metric` must return an ({N}, {N}) matrix; got shape {M.shape}")
        if want_grad and vjp is None:
            raise ValueError(
                "value_and_grad with a callable `distance_metric` needs the callable to return "
                "(distances, vjp), vjp mapping dL/ddistances (N, N) to dL/dembeddings; it returned "
                "only the distances (the loss value alone works)"
            )
    elif code == 3:
        M = np.ascontiguousarray(emb)
    else:
        X = np.ascontiguousarray(emb)
        M = np.empty((N, N), dt)
        if N:
            _backend.kernel(spec, "gram", backend)(X, M, nch)
        # squared norms from the Gram diagonal (TFA sums squares separately; the
        # diagonal keeps D[i, i] = 0 and duplicate rows consistent)
        sq = M.diagonal().copy()
        if code == 2:
            aux = (1.0 / np.sqrt(np.maximum(sq, dt.type(1e-12)))).astype(dt, copy=False)
        else:
            aux = sq

    mode = _MODES[spec.name]
    dense = mode != "hard"
    grad_M = fn_metric is not None or code == 3  # gradient w.r.t. a distance matrix
    rowloss = np.zeros(N, np.float64)
    rowcnt = np.zeros(N, np.float64)
    W = np.empty((N, N) if (want_grad and dense) else (N, 0), dt)
    sel = np.zeros((N, 2) if mode == "hard" else (0, 2), np.int64)
    selc = np.zeros((N, 2) if mode == "hard" else (0, 2), dt)
    if N:
        prm = np.array((margin, code, 1.0 if soft else 0.0, 0.0 if code >= 2 else _CUT[dt]), dt)
        mine(M, aux, X, lab, prm, rowloss, rowcnt, W, sel, selc, bool(want_grad), max(nch, 1))

    total = float(np.sum(rowloss))
    work = N * N * max(X.shape[1], 1)
    if mode == "hard":
        denom = float(N)
    else:
        denom = float(np.sum(rowcnt))
    bad = total != total
    loss = total / denom if denom > 0 else (float("nan") if bad else 0.0)

    value = _value(loss, w, reduction, gscale, dt)

    if not want_grad:
        _parallel.record(pkey, wanted, nch, work, time.perf_counter() - t0)
        return value, None

    # ---- gradient --------------------------------------------------------------
    scale = gscale / denom if denom > 0 else 0.0
    G = grad_out if (grad_out is not None and vjp is None) else np.empty(grad_shape, dt)
    if N == 0:
        G[...] = 0
    elif bad:
        G.fill(np.nan)
    elif not dense:
        hard_grad = _backend.kernel(spec, "grad", backend)
        tgt = np.empty((N, N), dt) if vjp is not None else G
        hard_grad(X, M, aux, sel, selc, 3 if grad_M else code, dt.type(scale), tgt)
        if vjp is not None:
            G = _from_vjp(vjp, tgt, grad_shape, dt, grad_out)
    elif grad_M:
        W *= dt.type(scale)
        G = _from_vjp(vjp, W, grad_shape, dt, grad_out) if vjp is not None else _put(W, G)
    elif code == 2:
        symmetrize = _backend.kernel(spec, "symmetrize", backend)
        r = np.empty(N, np.float64)
        q = np.zeros(N, np.float64)
        symmetrize(W, M, aux, code, r, q, nch)
        Nrm = X * aux[:, None]
        np.matmul(W, Nrm, out=G)
        proj = (aux <= dt.type(1e6)).astype(dt)
        G -= (q.astype(dt) * proj)[:, None] * Nrm
        G *= (-scale * aux).astype(dt)[:, None]
    elif (
        2.0 * float(np.sum(rowcnt)) <= SPARSE_MAX_FRACTION * N * N
        if mode == "semihard"
        else N * N * max(X.shape[1], 1) <= SMALL_MADDS
    ):
        _backend.kernel(spec, "dense_grad", backend)(W, X, dt.type(scale), G)
    else:
        # S = W + W^T without forming it: two BLAS products (the second reads W
        # transposed in place), row sums r = rowsum(W) + colsum(W)
        r = np.add.reduce(W, axis=1, dtype=np.float64)
        r += np.add.reduce(W, axis=0, dtype=np.float64)
        np.matmul(W, X, out=G)
        G += W.T @ X
        G -= r.astype(dt)[:, None] * X
        G *= dt.type(-scale)
    _parallel.record(pkey, wanted, nch, work, time.perf_counter() - t0)
    return value, G


def _weights(sample_weight, dt, reduction):
    """(w, gscale): the weight array (None without one) and the gradient's
    weight factor. The loss is one number per batch: one weight."""
    if sample_weight is None:
        return None, 1.0
    w = V.as_float(sample_weight, "sample_weight", dt)
    if w.size != 1:
        raise ValueError(
            "`sample_weight` must be a scalar (or hold one element) for a triplet loss: the loss "
            f"is one number per batch (TF Addons fails on any other shape); got shape {w.shape}"
        )
    w0 = float(w.reshape(-1)[0])
    if reduction == "mean_with_sample_weight":
        return w, (0.0 if w0 == 0.0 else 1.0)
    return w, w0


def _value(loss, w, reduction, gscale, dt):
    """The returned loss value for the batch's mean ``loss``."""
    if w is None:
        return dt.type(loss)
    if reduction == "none":
        value = (np.asarray(loss, dt) * w).astype(dt, copy=False)
        return value if value.ndim else dt.type(value)
    if reduction == "mean_with_sample_weight":
        return dt.type(loss * gscale)
    return dt.type(loss * float(w.reshape(-1)[0]))


def _on_device(x):
    return V.on_device(x)


def _compute_cuda(spec, y_true, y_pred, margin, soft, metric, sample_weight, reduction, want_grad, grad_out, dtype):
    """The CUDA path (``backends/numba_cuda/triplet.py``): device inputs (viewed
    without a copy; the gradient returned on the device, as the caller's own
    array type), or NumPy inputs under ``use_backend("cuda")`` (copied in, the
    gradient copied back)."""
    from numba import cuda

    from .backends.numba_cuda import device as DV
    from .backends.numba_cuda import triplet as CT

    if callable(metric):
        raise ValueError(
            "a callable `distance_metric` runs on the CPU backends only (its vjp is host code); "
            "on the GPU pass distance_metric='precomputed' with the (N, N) distances"
        )
    code = METRICS[metric]
    stream = DV.current_stream(y_pred)
    on_dev = _on_device(y_pred)
    if on_dev:
        emb = DV._device(y_pred, "y_pred", stream)
        dt = np.dtype(emb.dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"device `y_pred` must be float32 or float64; got {dt}")
        if dtype is not None and np.dtype(dtype) != dt:
            raise ValueError(f"`dtype`={dtype!r} differs from the device y_pred's {dt}; cast it on the device first")
        if not emb.is_c_contiguous():
            raise ValueError("device `y_pred` must be C-contiguous; make a contiguous copy on the device first")
        shape = tuple(emb.shape)
    else:
        dt = V.compute_dtype(y_pred, dtype)
        host = np.ascontiguousarray(V.as_float(y_pred, "y_pred", dt))
        shape = host.shape
    if code == 3:
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(
                f"`y_pred` must be a square (N, N) distance matrix for distance_metric='precomputed'; "
                f"got shape {shape}"
            )
    elif len(shape) != 2:
        raise ValueError(f"`y_pred` must be 2-D embeddings (batch_size, dim); got shape {shape}")
    N = shape[0]
    if _on_device(y_true):
        lab = DV._device(y_true, "y_true", stream)
        if np.dtype(lab.dtype).kind not in "iu":
            raise TypeError(f"device labels (`y_true`) must be an integer array; got {lab.dtype}")
        if tuple(lab.shape) not in ((N,), (N, 1)):
            raise ValueError(
                f"`y_true` must hold one integer label per embedding: shape ({N},) or ({N}, 1); "
                f"got shape {tuple(lab.shape)}"
            )
        if not lab.is_c_contiguous():
            raise ValueError("device `y_true` must be C-contiguous")
        lab = lab.reshape(N)
    else:
        lab = triplet_labels(y_true, N)
    if sample_weight is not None and _on_device(sample_weight):
        sample_weight = DV._device(sample_weight, "sample_weight", stream).copy_to_host(stream=stream)
    w, gscale = _weights(sample_weight, dt, reduction)
    host_grad_out = None
    if want_grad and grad_out is not None:
        if on_dev:  # a host array is refused here (TypeError)
            g = DV._device(grad_out, "grad_out", stream)
            if tuple(g.shape) != shape or np.dtype(g.dtype) != dt or not g.is_c_contiguous():
                raise ValueError(f"`grad_out` must be a C-contiguous device array of shape {shape} and dtype {dt}")
            grad_out_user, grad_out = grad_out, g
        else:
            if _on_device(grad_out):
                raise TypeError("`grad_out` must be a NumPy array for NumPy inputs (the gradient is copied into it)")
            V.check_grad_out(grad_out, shape, dt, (y_true, y_pred, sample_weight))
            host_grad_out, grad_out = grad_out, None
    if not on_dev:
        emb = cuda.to_device(host, stream=stream)
    if not _on_device(lab):
        lab = cuda.to_device(lab, stream=stream)

    mode = _MODES[spec.name]
    if N:
        prm = (margin, 1.0 if soft else 0.0, code, 0.0 if code >= 2 else _CUT[dt], 0.0, 1.0, 2.0)
        bufs = CT.run(mode, None if code == 3 else emb, emb if code == 3 else None, lab, prm, want_grad, stream)
        total = bufs["total"]
        denom = float(N) if mode == "hard" else bufs["count"]
    else:
        bufs, total, denom = None, 0.0, 0.0
    bad = total != total
    loss = total / denom if denom > 0 else (float("nan") if bad else 0.0)
    value = _value(loss, w, reduction, gscale, dt)
    if not want_grad:
        return value, None
    scale = gscale / denom if denom > 0 else 0.0
    if grad_out is not None:
        res, G = grad_out_user, grad_out
    elif on_dev:
        res, G = DV.new_like(y_pred, shape, dt, stream)  # the caller's library's own array type
    else:
        res = G = cuda.device_array(shape, dt, stream=stream)
    if N == 0 or bad:
        CT.fill(G, np.nan if bad else 0.0, stream)
    else:
        CT.gradient(mode, code, emb, bufs, scale, G, stream)
    if on_dev:
        return value, res
    out = host_grad_out if host_grad_out is not None else np.empty(shape, dt)
    G.copy_to_host(out, stream=stream)
    if not isinstance(stream, int):
        stream.synchronize()
    return value, out


def _put(src, G):
    if src is not G:
        G[...] = src
    return G


def _from_vjp(vjp, cot, shape, dt, grad_out):
    g = V.as_float(vjp(cot), "vjp(dL/ddistances)", dt)
    if g.shape != shape:
        raise ValueError(f"the `distance_metric` vjp must return an array of shape {shape}; got {g.shape}")
    if grad_out is not None:
        grad_out[...] = g
        return grad_out
    return np.ascontiguousarray(g)
