"""Elementwise losses on Numba CUDA: the regression family (MSE, MAE, MAPE,
MSLE, Huber, LogCosh, Hinge, SquaredHinge) and the elementwise cross-entropies
(BCE, binary focal, TF Addons sigmoid focal, KLD, Poisson).

Each loss is an element function ``(y, p, eps, ome, alpha, gamma, flag) ->
(loss, dloss/dp)`` that mirrors its Numba CPU twin in
``numba_cpu/crossentropy.py`` / ``numba_cpu/regression.py`` (same clipping,
same finite limits, same gradient at the kinks; the formulas are documented
there). A per-sample loss is the mean (sum for KLD and TFA's sigmoid focal)
of the element losses over the last axis.

Two layouts, both runnable in the CUDA simulator (so CI checks them):

* ``K < SMALL_K``: one thread per row, grid-stride over rows (``K == 1``, the
  usual regression shape, is one thread per element, coalesced);
* otherwise one block per row, threads striding over the row (coalesced), the
  row's loss summed by a tree in shared memory.

In one pass each kernel writes the per-sample loss, the gradient already
scaled by ``w[i*ws] * factor`` (/K for a mean), and adds ``sum(loss_i w_i)``
into ``tot[0]`` (float64; one atomic per block after a shared-memory tree), so
a reduced loss costs one 8-byte copy back, not the loss array.

Hinge labels: Keras maps labels to ``2 y - 1`` when every label of the batch
is 0 or 1. ``_count_nonbinary`` counts the others into ``aux[0]`` on the
device and the hinge kernels read it there: no host round trip.
"""

import math

import numpy as np
from numba import cuda

from . import _streams
from ._launch import launch

TPB = 256  # threads per block (a power of two); tests shrink it
MAX_TPB = 1024
MAX_BLOCKS = 1 << 16  # tests shrink it to exercise the grid-stride loops
SMALL_K = 32
LN2 = 0.6931471805599453


# ----------------------------------------------------------------------------
# Element functions
# ----------------------------------------------------------------------------


@cuda.jit(device=True, inline=True)
def _clip(p, lo, hi):
    c = p
    if c < lo:
        c = lo
    if c > hi:
        c = hi
    return c


@cuda.jit(device=True, inline=True)
def _pow(b, g):
    """``b ** g`` for ``b, g >= 0`` with ``0 ** 0 = 1`` and ``0 ** g = 0``
    otherwise (also for the ``g - 1 < 0`` of a derivative: the finite limit
    fastloss documents for focal losses with gamma < 1)."""
    if g == 2.0:
        return b * b
    if g == 1.0:
        return b
    if g == 0.0:
        return 1.0
    if b == 0.0:
        return 0.0
    return math.pow(b, g)


@cuda.jit(device=True, inline=True)
def _sign(e):
    s = 0.0
    if e > 0.0:
        s = 1.0
    if e < 0.0:
        s = -1.0
    if e != e:
        s = e
    return s


@cuda.jit(device=True, inline=True)
def _sigmoid_pair(x):
    """(sigmoid(x), sigmoid(-x)), each without 1 - s cancellation."""
    u = math.exp(-abs(x))
    s = 1.0 / (1.0 + u)
    t = u * s
    if x >= 0.0:
        return s, t
    return t, s


@cuda.jit(device=True, inline=True)
def _ce_logits_pq(y, x):
    """(max(x, 0) - x y + log1p(exp(-|x|)), sigmoid(x), sigmoid(-x)) from one exp."""
    u = math.exp(-abs(x))
    relu = x if x > 0.0 else 0.0
    s = 1.0 / (1.0 + u)
    p = s if x >= 0.0 else u * s
    q = u * s if x >= 0.0 else s
    return relu - x * y + math.log1p(u), p, q


@cuda.jit(device=True, inline=True)
def e_bce(y, p, eps, ome, alpha, gamma, flag):
    pc = _clip(p, eps, ome)
    l = -(y * math.log(pc) + (1.0 - y) * math.log(1.0 - pc))
    g = (pc - y) / (pc * (1.0 - pc))
    if p < eps or p > ome:
        g = 0.0
    return l, g


@cuda.jit(device=True, inline=True)
def e_bce_logits(y, x, eps, ome, alpha, gamma, flag):
    u = math.exp(-abs(x))
    relu = x if x > 0.0 else 0.0
    s = 1.0 / (1.0 + u)
    sig = s if x >= 0.0 else u * s
    return relu - x * y + math.log1p(u), sig - y


@cuda.jit(device=True, inline=True)
def _binary_focal_core(y, p, q, eps, ome, alpha, gamma, balance):
    """Keras' binary focal loss and d/dp; q = 1 - p from the caller (without
    cancellation for logits); 1 - clip(p) taken from q, clipped to match."""
    pc = p
    qc = q
    if p < eps:
        pc = eps
        qc = ome
    if p > ome:
        pc = ome
        qc = 1.0 - ome
    bce = -(y * math.log(pc) + (1.0 - y) * math.log(qc))
    dbce = ((1.0 - y) * pc - y * qc) / (pc * qc)
    if p < eps or p > ome:
        dbce = 0.0
    m = y * q + (1.0 - y) * p
    f = _pow(m, gamma)
    df = gamma * _pow(m, gamma - 1.0) * (1.0 - y - y)
    wb = 1.0
    if balance:
        wb = y * alpha + (1.0 - y) * (1.0 - alpha)
    return wb * f * bce, wb * (df * bce + f * dbce)


@cuda.jit(device=True, inline=True)
def e_bfocal(y, p, eps, ome, alpha, gamma, flag):
    return _binary_focal_core(y, p, 1.0 - p, eps, ome, alpha, gamma, flag != 0.0)


@cuda.jit(device=True, inline=True)
def e_bfocal_logits(y, x, eps, ome, alpha, gamma, flag):
    """Keras 3 on TensorFlow: the cross-entropy from the logits (no clip), the
    focal factor from sigmoid(x) (see the CPU twin)."""
    ce, p, q = _ce_logits_pq(y, x)
    m = y * q + (1.0 - y) * p
    f = _pow(m, gamma)
    df = gamma * _pow(m, gamma - 1.0) * (1.0 - y - y)
    wb = 1.0
    if flag != 0.0:
        wb = y * alpha + (1.0 - y) * (1.0 - alpha)
    return wb * f * ce, wb * (df * (p * q) * ce + f * (p - y))


@cuda.jit(device=True, inline=True)
def _tfa_factors(y, prob, qprob, alpha, gamma):
    """TF Addons' alpha factor, modulating factor and its d/d prob; alpha or
    gamma of 0 switch their factor off."""
    af = 1.0
    if alpha != 0.0:
        af = y * alpha + (1.0 - y) * (1.0 - alpha)
    mf = 1.0
    dmf = 0.0
    if gamma != 0.0:
        m = y * qprob + (1.0 - y) * prob
        mf = _pow(m, gamma)
        dmf = gamma * _pow(m, gamma - 1.0) * (1.0 - y - y)
    return af, mf, dmf


@cuda.jit(device=True, inline=True)
def e_sfocal(y, p, eps, ome, alpha, gamma, flag):
    pc = _clip(p, eps, ome)
    u = pc + eps  # Keras 2's backend puts eps inside the logs
    v = 1.0 - pc + eps
    ce = -(y * math.log(u) + (1.0 - y) * math.log(v))
    dce = ((1.0 - y) * u - y * v) / (u * v)
    if p < eps or p > ome:
        dce = 0.0
    af, mf, dmf = _tfa_factors(y, p, 1.0 - p, alpha, gamma)
    return af * mf * ce, af * (dmf * ce + mf * dce)


@cuda.jit(device=True, inline=True)
def e_sfocal_logits(y, x, eps, ome, alpha, gamma, flag):
    ce, p, q = _ce_logits_pq(y, x)
    af, mf, dmf = _tfa_factors(y, p, q, alpha, gamma)
    return af * mf * ce, af * (dmf * (p * q) * ce + mf * (p - y))


@cuda.jit(device=True, inline=True)
def e_kld(y, p, eps, ome, alpha, gamma, flag):
    yc = _clip(y, eps, 1.0)
    pc = _clip(p, eps, 1.0)
    g = -yc / pc
    if p < eps or p > 1.0:
        g = 0.0
    return yc * math.log(yc / pc), g


@cuda.jit(device=True, inline=True)
def e_poisson(y, p, eps, ome, alpha, gamma, flag):
    return p - y * math.log(p + eps), 1.0 - y / (p + eps)


@cuda.jit(device=True, inline=True)
def e_mse(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    return e * e, e + e


@cuda.jit(device=True, inline=True)
def e_mae(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    return abs(e), _sign(e)


@cuda.jit(device=True, inline=True)
def e_mape(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    m = abs(y)
    if m < eps:
        m = eps
    r = 100.0 / m
    return abs(e) * r, _sign(e) * r


@cuda.jit(device=True, inline=True)
def msle_parts(y, p, eps):
    """(d = log1p(max(p, eps)) - log1p(max(y, eps)), max(p, eps))."""
    pc = p
    if p < eps:
        pc = eps
    yc = y
    if y < eps:
        yc = eps
    return math.log1p(pc) - math.log1p(yc), pc


@cuda.jit(device=True, inline=True)
def e_msle(y, p, eps, ome, alpha, gamma, flag):
    d, pc = msle_parts(y, p, eps)
    g = (d + d) / (1.0 + pc)
    if p < eps:
        g = 0.0
    return d * d, g


@cuda.jit(device=True, inline=True)
def e_huber(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    ae = abs(e)
    l = 0.5 * e * e
    if ae > alpha:
        l = alpha * ae - 0.5 * alpha * alpha
    g = e
    if e > alpha:
        g = alpha
    if e < -alpha:
        g = -alpha
    return l, g


@cuda.jit(device=True, inline=True)
def e_log_cosh(y, p, eps, ome, alpha, gamma, flag):
    """|e| + log1p(exp(-2|e|)) - log 2; below |e| = 0.625 the same function as
    -log1p(-tanh(e)**2) / 2 (no cancellation). d/dp = tanh(e)."""
    e = p - y
    ae = abs(e)
    em = math.expm1(-2.0 * ae)
    t = -em / (2.0 + em)
    if e < 0.0:
        t = -t
    if ae < 0.625:
        return -0.5 * math.log1p(-(t * t)), t
    return ae + math.log1p(em + 1.0) - LN2, t


@cuda.jit(device=True, inline=True)
def e_hinge(y, p, eps, ome, alpha, gamma, flag):
    m = 1.0 - y * p
    l = m
    if m < 0.0:
        l = 0.0
    g = -y
    if not m >= 0.0:
        g = 0.0
    return l, g


@cuda.jit(device=True, inline=True)
def e_squared_hinge(y, p, eps, ome, alpha, gamma, flag):
    m = 1.0 - y * p
    mc = m
    if m < 0.0:
        mc = 0.0
    g = -2.0 * y * mc
    if not m >= 0.0:
        g = 0.0
    return mc * mc, g


# ----------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------

# y' = y (plain), y * a + b (label smoothing), or the hinge map read from aux[0]
_PLAIN, _SMOOTH, _HINGE = 0, 1, 2


@cuda.jit(device=True, inline=True)
def _block_sum(v, sh):
    """Sum of ``v`` over the block (blockDim.x a power of two), via ``sh``."""
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    h = cuda.blockDim.x >> 1
    while h > 0:
        if tid < h:
            sh[tid] += sh[tid + h]
        cuda.syncthreads()
        h >>= 1
    v = sh[0]
    cuda.syncthreads()
    return v


@cuda.jit(device=True, inline=True)
def _label_map(mode, aux, a, b):
    if mode == _HINGE:
        if aux[0] == 0:
            return 2.0, -1.0
        return 1.0, 0.0
    return a, b


def _make(elem, mode, row_mean):
    """The two kernels of one elementwise loss (``mode``, ``row_mean`` are
    compile-time constants of the closure)."""

    @cuda.jit
    def thread_rows(yt, yp, fac, eps, ome, a, b, alpha, gamma, flag, w, ws, loss, grad, want_grad, tot, aux):
        R, K = yp.shape
        sh = cuda.shared.array(MAX_TPB, np.float64)
        rs = 1.0 / K if row_mean else 1.0
        a, b = _label_map(mode, aux, a, b)
        part = 0.0
        for i in range(cuda.grid(1), R, cuda.gridsize(1)):
            wi = w[i * ws]
            sc = wi * fac * rs
            acc = 0.0
            for j in range(K):
                y = yt[i, j]
                if mode != _PLAIN:
                    y = y * a + b
                l, g = elem(y, yp[i, j], eps, ome, alpha, gamma, flag)
                acc += l
                if want_grad:
                    grad[i, j] = g * sc
            li = acc * rs
            loss[i] = li
            part += li * wi
        part = _block_sum(part, sh)
        if cuda.threadIdx.x == 0:
            cuda.atomic.add(tot, 0, part)

    @cuda.jit
    def block_rows(yt, yp, fac, eps, ome, a, b, alpha, gamma, flag, w, ws, loss, grad, want_grad, tot, aux):
        R, K = yp.shape
        sh = cuda.shared.array(MAX_TPB, np.float64)
        rs = 1.0 / K if row_mean else 1.0
        a, b = _label_map(mode, aux, a, b)
        tid = cuda.threadIdx.x
        part = 0.0
        for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
            wi = w[i * ws]
            sc = wi * fac * rs
            acc = 0.0
            for j in range(tid, K, cuda.blockDim.x):
                y = yt[i, j]
                if mode != _PLAIN:
                    y = y * a + b
                l, g = elem(y, yp[i, j], eps, ome, alpha, gamma, flag)
                acc += l
                if want_grad:
                    grad[i, j] = g * sc
            acc = _block_sum(acc, sh)
            if tid == 0:
                li = acc * rs
                loss[i] = li
                part += li * wi
        if tid == 0:
            cuda.atomic.add(tot, 0, part)

    return thread_rows, block_rows


@cuda.jit
def _count_nonbinary(yt, aux):
    """aux[0] += number of labels that are neither 0 nor 1 (one atomic per
    thread that saw any)."""
    R, K = yt.shape
    n = 0
    for t in range(cuda.grid(1), R * K, cuda.gridsize(1)):
        y = yt[t // K, t % K]
        if y != 0.0 and y != 1.0:
            n += 1
    if n:
        cuda.atomic.add(aux, 0, n)


@cuda.jit
def _reset(tot, aux):
    tot[0] = 0.0
    aux[0] = 0


# kind -> (element function, label mode, per-sample mean (else sum))
_SPECS = {
    "bce_probs": (e_bce, _SMOOTH, True),
    "bce_logits": (e_bce_logits, _SMOOTH, True),
    "binary_focal": (e_bfocal, _SMOOTH, True),
    "binary_focal_logits": (e_bfocal_logits, _SMOOTH, True),
    "sigmoid_focal": (e_sfocal, _PLAIN, False),
    "sigmoid_focal_logits": (e_sfocal_logits, _PLAIN, False),
    "kl_divergence": (e_kld, _PLAIN, False),
    "poisson": (e_poisson, _PLAIN, True),
    "mse": (e_mse, _PLAIN, True),
    "mae": (e_mae, _PLAIN, True),
    "mape": (e_mape, _PLAIN, True),
    "msle": (e_msle, _PLAIN, True),
    "huber": (e_huber, _PLAIN, True),
    "log_cosh": (e_log_cosh, _PLAIN, True),
    "hinge": (e_hinge, _HINGE, True),
    "squared_hinge": (e_squared_hinge, _HINGE, True),
}
KINDS = tuple(_SPECS)
_KERNELS = {}


def _kernels(kind):
    ks = _KERNELS.get(kind)
    if ks is None:
        try:
            elem, mode, row_mean = _SPECS[kind]
        except KeyError:
            raise ValueError(f"no CUDA elementwise kernel {kind!r}; known: {sorted(_SPECS)}") from None
        ks = _KERNELS[kind] = _make(elem, mode, row_mean)
    return ks


def run(kind, yt, yp, prm, w, ws, loss, grad, want_grad, stream=0):
    """Launch elementwise loss ``kind`` on device arrays ``yt``/``yp`` (R, K);
    ``prm`` the host parameter vector (layout ``numba_cpu/_common.py``).
    Returns the device array ``tot`` whose element 0 is ``sum(loss_i w_i)``."""
    thread_rows, block_rows = _kernels(kind)
    tot = _streams.scratch("tot", 1, np.float64, stream)
    aux = _streams.scratch("aux", 1, np.int64, stream)
    launch(_reset, 1, 1, stream, tot, aux)
    R, K = yp.shape
    if R == 0:
        return tot
    if _SPECS[kind][1] == _HINGE:
        tpb = min(TPB, 256)
        launch(_count_nonbinary, max(1, min((R * K + tpb - 1) // tpb, MAX_BLOCKS)), tpb, stream, yt, aux)
    p = [float(v) for v in prm[:8]]
    args = (yt, yp, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], w, ws, loss, grad, want_grad, tot, aux)
    if K < SMALL_K:
        tpb = min(TPB, 256)
        launch(thread_rows, max(1, min((R + tpb - 1) // tpb, MAX_BLOCKS)), tpb, stream, *args)
    else:
        tpb = TPB
        while tpb > 32 and tpb // 2 >= K:  # no idle half-blocks on short rows
            tpb //= 2
        launch(block_rows, max(1, min(R, MAX_BLOCKS)), tpb, stream, *args)
    return tot


def _host_entry(kind):
    """The registry's kernel contract for NumPy inputs under use_backend("cuda"):
    copy in, run, copy the loss (and gradient) back."""

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        st, d_yt, d_yp, d_w, d_loss, d_grad = _streams.stage(yt, yp, w, loss, grad, want_grad)
        tot = run(kind, d_yt, d_yp, prm, d_w, ws, d_loss, d_grad, want_grad, st).copy_to_host(stream=st)
        d_loss.copy_to_host(loss, stream=st)
        if want_grad:
            d_grad.copy_to_host(grad, stream=st)
        _streams.sync(st)
        return ((0.0, -1.0, float(tot[0])),)

    kernel.__name__ = kernel.__qualname__ = kind
    return kernel


for _k in KINDS:
    globals()[_k] = _host_entry(_k)
del _k
