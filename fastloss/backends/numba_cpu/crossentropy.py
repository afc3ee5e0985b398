"""Cross-entropy family on the Numba CPU backend.

Every kernel has the same contract (see ``fastloss/_registry.py``)::

    kernel(y_true, y_pred, prm, w, ws, loss, grad, want_grad, nch) -> info

* ``y_pred``: C-contiguous ``(R, K)`` float32/float64; ``y_true`` the same shape
  (dense kernels, any real dtype, converted per element) or ``(R,)`` labels
  (sparse kernels, integer or integral float).
* ``prm``: parameters, in y_pred's dtype: ``prm[F_SCALE]`` is the reduction
  scale, then eps, 1 - eps, and the loss' own parameters (the ``P_*`` indices).
* ``w``/``ws``: per-row weights and their stride (0: one weight for all rows).
* ``loss``: ``(R,)`` out, the unweighted per-sample loss.
* ``grad``: ``(R, K)`` out when ``want_grad``: d loss_i / d y_pred[i] multiplied
  by ``w[i*ws] * prm[F_SCALE]``, written in the same pass (no second pass over
  the gradient for the scaling).
* ``nch``: number of row chunks; 1 runs serially in the calling thread (no
  thread-pool wake-up), more run the chunks in parallel (``prange``).
* ``info``: one ``(bad_labels, first_bad_row, total)`` triple per chunk: the
  number of invalid labels and the first such row (-1 if none; 0 and -1 for
  dense kernels), and the float64 sum of ``loss[i] * w[i*ws]`` over the chunk
  (the batch total, accumulated while the loss is written, no second pass).

Each kernel is a ``*_rows(..., lo, hi)`` function over a row range (the serial
path) plus a ``*_par`` driver that runs row chunks in ``prange``. Rows are
indexed two-dimensionally (no per-row array views: their reference counting
costs more than a short row's arithmetic). Row arithmetic is in y_pred's
dtype; every float constant goes through ``lit`` so float32 stays float32
(and vectorizes).
"""

import numpy as np
from numba import njit

from ._common import (
    BLOCK,
    COLS_MAX_K,
    F_SCALE,
    INLINE,
    JIT,
    P_AVEC,
    P_EPS,
    P_FLAG,
    P_GAMMA,
    P_AVEC_STEP,
    P_HAS_IGNORE,
    P_IGNORE,
    P_LS_A,
    P_LS_B,
    P_OME,
    PJIT,
    clip,
    cols_in,
    cols_in_labels,
    cols_out,
    elementwise_rows,
    entry,
    entry_cols,
    exp_inplace,
    log_inplace,
    par,
)
from ._math import fexp, flog, flog1p, fpow, lit, row_max, wide_vectors

@njit(**INLINE)
def _sigmoid_pair(x):
    """(sigmoid(x), sigmoid(-x)), each accurate (no 1 - s cancellation)."""
    one = lit(x, 1.0)
    u = fexp(-abs(x))
    s = one / (one + u)
    t = u * s
    if x >= lit(x, 0.0):
        return s, t
    return t, s


# ----------------------------------------------------------------------------
# Elementwise losses, reduced over the last axis (mean, or sum for KLD and TFA focal).
#
# The flat element loop is what vectorizes (AVX2/AVX-512), whatever the row
# length K, even K = 1: per block of rows one flat loop computes element losses
# into a small scratch buffer and gradients straight into ``grad``; a short
# pass then sums each row's losses (and applies per-row weights, if any, to the
# block while it is in cache).
# ----------------------------------------------------------------------------

@njit(**INLINE)
def _e_bce(y, p, eps, ome, hard):
    """BCE on probabilities and d/dp; ``hard`` (a constant of the loop): y is
    exactly 0 or 1 (hard_labels), and the loss is -log of clip(p) or of
    1 - clip(p), one log instead of two (the other term is 0 times a finite
    log), rounded once."""
    one = lit(p, 1.0)
    pc = clip(p, eps, ome)
    if hard:
        l = -flog(pc if y != lit(p, 0.0) else one - pc)
    else:
        l = -(y * flog(pc) + (one - y) * flog(one - pc))
    g = (pc - y) / (pc * (one - pc))
    if p < eps:
        g = lit(p, 0.0)
    if p > ome:
        g = lit(p, 0.0)
    return l, g


@njit(**INLINE)
def hard_labels(yt, a, b):
    """Every label of the block yt is exactly 0 or 1 and there is no label
    smoothing (a = 1, b = 0): counted in vectorized pieces of 256, so soft
    labels cost one piece. NaN labels are neither 0 nor 1."""
    if a != lit(a, 1.0) or b != lit(b, 0.0):
        return False
    N = yt.shape[0]
    for t0 in range(0, N, 256):  # vectorized pieces; soft labels stop at the first
        y = yt[t0:min(N, t0 + 256)]
        n = 0
        for t in range(y.shape[0]):
            n += np.int64(1) if (y[t] != lit(a, 0.0)) & (y[t] != lit(a, 1.0)) else np.int64(0)
        if n:
            return False
    return True


@njit(**INLINE)
def _e_bce_logits(y, x, eps, ome, alpha, gamma, flag):
    zero = lit(x, 0.0)
    one = lit(x, 1.0)
    u = fexp(-abs(x))
    relu = x if x > zero else zero
    l = relu - x * y + flog1p(u)
    s = one / (one + u)
    sig = s if x >= zero else u * s
    return l, sig - y


@njit(**INLINE)
def _ce_logits_pq(y, x):
    """(max(x, 0) - x y + log1p(exp(-|x|)), sigmoid(x), sigmoid(-x)) from one exp."""
    zero = lit(x, 0.0)
    one = lit(x, 1.0)
    u = fexp(-abs(x))
    relu = x if x > zero else zero
    s = one / (one + u)
    p = s if x >= zero else u * s  # selects, not branches: the loops stay vectorized
    q = u * s if x >= zero else s
    return relu - x * y + flog1p(u), p, q


@njit(**INLINE)
def _focal_pow(m, gamma, sq):
    """(m**gamma, d/dm m**gamma). ``sq`` (gamma == 2, the default, known when
    the loop is entered) takes the branch-free square: vectorized code would
    otherwise evaluate the exp/log of the general power for every element."""
    if sq:
        return m * m, m + m
    return fpow(m, gamma), gamma * fpow(m, gamma - lit(m, 1.0))


@njit(**INLINE)
def _binary_focal_core(y, p, q, eps, ome, alpha, gamma, balance, sq, hard):
    """Keras' binary focal loss and d/dp for one element; q = 1 - p, computed
    by the caller without cancellation (sigmoid(-x) for logits).

    loss = wb (1 - p_t)**gamma bce(clip(p)), 1 - p_t = y q + (1 - y) p.
    ``1 - clip(p)`` is taken from q (clipped to match: eps -> 1 - eps,
    1 - eps -> 1 - (1 - eps) as Keras rounds it), so large logits keep full
    float32 precision. The derivative of (1 - p_t)**gamma is taken as 0 where
    1 - p_t == 0 and gamma < 1 (TF gives inf/NaN there). ``hard``: y is
    exactly 0 or 1 (hard_labels), the bce is one log.
    """
    zero = lit(p, 0.0)
    one = lit(p, 1.0)
    pc = p
    qc = q
    if p < eps:
        pc = eps
        qc = ome
    if p > ome:
        pc = ome
        qc = one - ome
    if hard:
        bce = -flog(pc if y != zero else qc)
    else:
        bce = -(y * flog(pc) + (one - y) * flog(qc))
    dbce = ((one - y) * pc - y * qc) / (pc * qc)
    if p < eps:
        dbce = zero
    if p > ome:
        dbce = zero
    m = y * q + (one - y) * p
    f, dfm = _focal_pow(m, gamma, sq)
    df = dfm * (one - y - y)
    wb = one
    if balance:
        wb = y * alpha + (one - y) * (one - alpha)
    return wb * f * bce, wb * (df * bce + f * dbce)


@njit(**INLINE)
def _e_bfocal(y, p, eps, ome, alpha, gamma, flag, sq, hard):
    return _binary_focal_core(y, p, lit(p, 1.0) - p, eps, ome, alpha, gamma, flag != lit(p, 0.0), sq, hard)


@njit(**INLINE)
def _e_bfocal_logits(y, x, eps, ome, alpha, gamma, flag, sq):
    """from_logits: Keras 3 on TensorFlow takes the cross-entropy from the
    logits themselves (its sigmoid keeps them, so nothing is clipped: a logit
    of -20 for a positive costs 20, not 16.1, and keeps its gradient) and the
    focal factor from sigmoid(x):

    loss = wb (1 - p_t)**gamma ce(x),  ce(x) = max(x, 0) - x y + log1p(exp(-|x|)),
    d/dx = wb ((1 - 2y) p q d/dm m**gamma ce + (1 - p_t)**gamma (p - y)),
    m = 1 - p_t = y q + (1 - y) p, p = sigmoid(x), q = sigmoid(-x).
    gamma = 0 is BinaryCrossentropy(from_logits=True) exactly.
    """
    zero = lit(x, 0.0)
    one = lit(x, 1.0)
    ce, p, q = _ce_logits_pq(y, x)
    m = y * q + (one - y) * p
    f, dfm = _focal_pow(m, gamma, sq)
    wb = one
    if flag != zero:
        wb = y * alpha + (one - y) * (one - alpha)
    return wb * f * ce, wb * (dfm * (one - y - y) * (p * q) * ce + f * (p - y))


@njit(**INLINE)
def _tfa_factors(y, prob, qprob, alpha, gamma, sq):
    """TF Addons' alpha factor, modulating factor and d(modulating)/d prob;
    alpha == 0 or gamma == 0 switch their factor off (TFA: ``if alpha:``)."""
    zero = lit(y, 0.0)
    one = lit(y, 1.0)
    af = one
    if alpha != zero:
        af = y * alpha + (one - y) * (one - alpha)
    mf = one
    dmf = zero
    if gamma != zero:
        m = y * qprob + (one - y) * prob
        mf, dmm = _focal_pow(m, gamma, sq)
        dmf = dmm * (one - y - y)
    return af, mf, dmf


@njit(**INLINE)
def _e_sfocal(y, p, eps, ome, alpha, gamma, flag, sq, hard):
    """TF Addons' sigmoid focal loss on probabilities and d/dp; ``hard``: y is
    exactly 0 or 1 (hard_labels), the cross-entropy is one log."""
    zero = lit(p, 0.0)
    one = lit(p, 1.0)
    pc = clip(p, eps, ome)
    # Keras 2 backend (what TF Addons calls) puts eps inside the logs
    u = pc + eps
    v = one - pc + eps
    if hard:
        ce = -flog(u if y != zero else v)
    else:
        ce = -(y * flog(u) + (one - y) * flog(v))
    dce = ((one - y) * u - y * v) / (u * v)  # (1-y)/v - y/u, one division
    if p < eps:
        dce = zero
    if p > ome:
        dce = zero
    af, mf, dmf = _tfa_factors(y, p, one - p, alpha, gamma, sq)
    if gamma != zero and abs(p) == lit(p, np.inf):
        # TF Addons' p_t = y p + (1 - y)(1 - p) is NaN for an infinite p (a
        # 0 * inf term), as in the C twin; under reassoc LLVM may fold it to inf
        mf = lit(p, np.nan)
    return af * mf * ce, af * (dmf * ce + mf * dce)


@njit(**INLINE)
def _e_sfocal_logits(y, x, eps, ome, alpha, gamma, flag, sq):
    ce, p, q = _ce_logits_pq(y, x)
    af, mf, dmf = _tfa_factors(y, p, q, alpha, gamma, sq)
    # d ce/dx = p - y ; d prob/dx = p q
    return af * mf * ce, af * (dmf * (p * q) * ce + mf * (p - y))


@njit(**INLINE)
def _e_kld(y, p, eps, ome, alpha, gamma, flag):
    zero = lit(p, 0.0)
    one = lit(p, 1.0)
    yc = clip(y, eps, one)
    pc = clip(p, eps, one)
    g = -yc / pc
    if p < eps:
        g = zero
    if p > one:
        g = zero
    return yc * flog(yc / pc), g


@njit(**INLINE)
def _e_poisson(y, p, eps, ome, alpha, gamma, flag):
    return p - y * flog(p + eps), lit(p, 1.0) - y / (p + eps)


# Flat loops, one per loss: element losses into lbuf, gradients (times sc) into
# gf. Blocks arrive as slices so every index is a plain range(n) index (Numba
# then knows it is >= 0 and emits no wraparound select, which would stop the
# vectorizer).
@njit(**INLINE)
def _flat_bce(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    if hard_labels(yt, a, b):  # 0/1 labels: one log per element
        for t in range(yp.shape[0]):
            lbuf[t], g = _e_bce(yt[t], yp[t], eps, ome, True)
            gf[t] = g * sc
    else:
        for t in range(yp.shape[0]):
            lbuf[t], g = _e_bce(yt[t] * a + b, yp[t], eps, ome, False)
            gf[t] = g * sc


@njit(**INLINE)
def _flat_bce_logits(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_bce_logits(yt[t] * a + b, yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_focal_hard(elem, smooth, yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    """The flat loop of a binary focal element function ``elem(y, p, eps, ome,
    alpha, gamma, flag, sq, hard)``: gamma == 2 (sq: a branch-free square) and,
    at that default gamma only, blocks of 0/1 labels (hard_labels: one log per
    element) get loops of their own; ``smooth``: the labels take label
    smoothing (y a + b; TF Addons' sigmoid focal has none and reads them raw).
    The Numba twin of csrc's FL_ELEMENTWISE_FLAT_HARD."""
    if gamma == lit(gamma, 2.0):
        if hard_labels(yt, a, b):
            for t in range(yp.shape[0]):
                lbuf[t], g = elem(yt[t], yp[t], eps, ome, alpha, gamma, flag, True, True)
                gf[t] = g * sc
        else:
            for t in range(yp.shape[0]):
                y = yt[t] * a + b if smooth else yt[t]
                lbuf[t], g = elem(y, yp[t], eps, ome, alpha, gamma, flag, True, False)
                gf[t] = g * sc
    else:
        for t in range(yp.shape[0]):
            y = yt[t] * a + b if smooth else yt[t]
            lbuf[t], g = elem(y, yp[t], eps, ome, alpha, gamma, flag, False, False)
            gf[t] = g * sc


@njit(**INLINE)
def _flat_bfocal(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    _flat_focal_hard(_e_bfocal, True, yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc)


@njit(**INLINE)
def _flat_bfocal_logits(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    if gamma == lit(gamma, 2.0):
        for t in range(yp.shape[0]):
            lbuf[t], g = _e_bfocal_logits(yt[t] * a + b, yp[t], eps, ome, alpha, gamma, flag, True)
            gf[t] = g * sc
    else:
        for t in range(yp.shape[0]):
            lbuf[t], g = _e_bfocal_logits(yt[t] * a + b, yp[t], eps, ome, alpha, gamma, flag, False)
            gf[t] = g * sc


@njit(**INLINE)
def _flat_sfocal(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    _flat_focal_hard(_e_sfocal, False, yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc)


@njit(**INLINE)
def _flat_sfocal_logits(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    if gamma == lit(gamma, 2.0):
        for t in range(yp.shape[0]):
            lbuf[t], g = _e_sfocal_logits(yt[t], yp[t], eps, ome, alpha, gamma, flag, True)
            gf[t] = g * sc
    else:
        for t in range(yp.shape[0]):
            lbuf[t], g = _e_sfocal_logits(yt[t], yp[t], eps, ome, alpha, gamma, flag, False)
            gf[t] = g * sc


@njit(**INLINE)
def _flat_kld(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_kld(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_poisson(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_poisson(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


# The elementwise kernels of this family evaluate exp/log per element and
# take 512-bit vectors where the CPU has them (``_math.wide_vectors``). One
# thread, 65536x16, AVX-512 Xeon, time against LLVM's default 256-bit: float64
# 0.60-0.76, float32 0.53-0.78 (BCE from logits, binary and sigmoid focal,
# KL divergence, Poisson); BCE on probabilities, 65536x4: 0.79 float64, 0.89
# float32. The memory-bound regression losses did not gain (Huber 1.23-1.45x
# the time, MAE/MAPE/hinge 0.96-1.12x) and keep the default.
@njit(**JIT)
def bce_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_bce, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def bce_logits_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_bce_logits, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def binary_focal_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_bfocal, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def binary_focal_logits_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_bfocal_logits, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def sigmoid_focal_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_sfocal, False, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def sigmoid_focal_logits_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_sfocal_logits, False, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def kl_divergence_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_kld, False, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def poisson_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()
    return elementwise_rows(_flat_poisson, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


# ----------------------------------------------------------------------------
# Softmax family. exp(x - max) of a block of rows is written into the gradient
# rows (or a scratch block) and exponentiated by one flat loop, so that short
# rows (C = 10) vectorize as well as long ones.
# ----------------------------------------------------------------------------


@njit(**JIT)
def cce_logits_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """loss = sum(y') logsumexp(x) - sum(y' x); grad = sum(y') softmax(x) - y'.

    TF's own gradient is softmax(x) - y', the derivative only when the labels
    of a row sum to 1; this is the exact derivative for any labels.
    """
    R, C = yp.shape
    zero = prm[0] - prm[0]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    rb = max(1, BLOCK // C)
    nb = min(hi - lo, rb)
    mrow = np.empty(nb, yp.dtype)
    if want_grad:
        buf = grad
        boff = 0
    else:
        buf = np.empty((nb, C), yp.dtype)
    tot = 0.0
    r0 = lo
    while r0 < hi:
        r1 = min(hi, r0 + rb)
        boff = r0 if want_grad else 0
        for i in range(r0, r1):
            m = row_max(yp, i)
            mrow[i - r0] = m
            for j in range(C):
                buf[i - r0 + boff, j] = yp[i, j] - m
        flat = buf.reshape(buf.shape[0] * C)
        exp_inplace(flat[boff * C : (boff + r1 - r0) * C])
        for i in range(r0, r1):
            bi = i - r0 + boff
            m = mrow[i - r0]
            s = zero
            sy = zero
            syx = zero
            for j in range(C):
                s += buf[bi, j]
                y = lit(zero, yt[i, j]) * a + b
                sy += y
                syx += y * (yp[i, j] - m)
            li = sy * flog(s) - syx
            loss[i] = li
            tot += np.float64(li) * np.float64(w[i * ws])
            if want_grad:
                sc = w[i * ws] * prm[F_SCALE]
                r = sc * sy / s
                for j in range(C):
                    buf[bi, j] = buf[bi, j] * r - (lit(zero, yt[i, j]) * a + b) * sc
        r0 = r1
    return 0, -1, tot


@njit(**JIT)
def _label(v, C, ignore, has_ignore):
    """-2: ignored row, -1: bad label, else the class index."""
    if has_ignore and v == ignore:
        return -2
    if not (v >= 0 and v < C):
        return -1
    k = np.int64(v)
    if k != v:
        return -1
    return k


@njit(**JIT)
def scce_logits_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """loss = logsumexp(x) - x[y]; grad = softmax(x) - onehot(y).

    512-bit vectors where the CPU has them (``_math.wide_vectors``): faster
    from 10 to 1000 classes in both dtypes (one thread, AVX-512 Xeon, time
    against 256-bit: 0.84-0.93 float32, 0.77-0.88 float64), level at 4 classes
    in float64 (0.95-1.00; float32 takes the columns kernel there); unlike
    cce_logits_rows, whose three-sum row loop lost at 30-100 classes.
    """
    wide_vectors()
    R, C = yp.shape
    zero = prm[0] - prm[0]
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    rb = max(1, BLOCK // C)
    nb = min(hi - lo, rb)
    mrow = np.empty(nb, yp.dtype)
    srow = np.empty(nb, yp.dtype)
    lrow = np.empty(nb, yp.dtype)
    krow = np.empty(nb, np.int64)
    if want_grad:
        buf = grad
    else:
        buf = np.empty((nb, C), yp.dtype)
    nbad = 0
    first = -1
    tot = 0.0
    r0 = lo
    while r0 < hi:
        r1 = min(hi, r0 + rb)
        n = r1 - r0
        boff = r0 if want_grad else 0
        # the block's rows through slices, indexed from range(n): Numba knows
        # those indices are >= 0 and emits no wraparound select per access
        # (i = r0 + t had one): 0.78 -> 0.71 ms at 32768 x 8 float64, 0.48 ->
        # 0.41 at 21845 x 12 float32, 0.23 -> 0.22 at 2621 x 100 (one thread)
        xb = yp[r0:r1]
        bb = buf[boff : boff + n]
        yb = yt[r0:r1]
        lb = loss[r0:r1]
        for t in range(n):
            k = _label(yb[t], C, ignore, has_ignore)
            krow[t] = k
            if k == -1:
                nbad += 1
                if first < 0:
                    first = r0 + t
            m = row_max(xb, t)
            mrow[t] = m
            for j in range(C):
                bb[t, j] = xb[t, j] - m
        exp_inplace(bb.reshape(n * C))
        for t in range(n):
            s = zero
            for j in range(C):
                s += bb[t, j]
            srow[t] = s
            lrow[t] = s
        log_inplace(lrow[:n])  # log of the row sums, one vector loop
        for t in range(n):
            k = krow[t]
            if k < 0:
                lb[t] = zero
                for j in range(C):
                    bb[t, j] = zero
                continue
            li = lrow[t] - (xb[t, k] - mrow[t])
            lb[t] = li
            wi = w[(r0 + t) * ws]
            tot += np.float64(li) * np.float64(wi)
            if want_grad:
                sc = wi * prm[F_SCALE]
                r = sc / srow[t]
                for j in range(C):
                    bb[t, j] = bb[t, j] * r
                bb[t, k] -= sc
        r0 = r1
    return nbad, first, tot


@njit(**JIT)
def scce_probs_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """TF backend: log(clip(p)) fed to the logits path, i.e.
    loss = log(sum(c)) - log(c_y), c = clip(p, eps, 1 - eps)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    eps = prm[P_EPS]
    ome = prm[P_OME]
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    nbad = 0
    first = -1
    tot = 0.0
    for i in range(lo, hi):
        k = _label(yt[i], C, ignore, has_ignore)
        if k < 0:
            if k == -1:
                nbad += 1
                if first < 0:
                    first = i
            loss[i] = zero
            if want_grad:
                for j in range(C):
                    grad[i, j] = zero
            continue
        S = zero
        for j in range(C):
            S += clip(yp[i, j], eps, ome)
        ck = clip(yp[i, k], eps, ome)
        li = flog(S) - flog(ck)
        loss[i] = li
        tot += np.float64(li) * np.float64(w[i * ws])
        if want_grad:
            sc = w[i * ws] * prm[F_SCALE]
            r = sc / S
            for j in range(C):
                p = yp[i, j]
                v = r
                if p < eps:
                    v = zero
                if p > ome:
                    v = zero
                grad[i, j] = v
            pk = yp[i, k]
            if not (pk < eps or pk > ome):
                grad[i, k] -= sc / ck
    return nbad, first, tot


@njit(**INLINE)
def _sparse_labels(yt, i, a, b, S, idx, n):
    """Row i has n classes j with y'_j = y_j a + b != 0 (counted by the
    caller's sum loop): their indices in idx[:n] and n, when they are few
    (4 n <= C) and S (the row's sum of probabilities) is finite; else -1 (the
    dense loop). Every other class's term and d/dq are exactly 0 (0 times a
    finite log), so only these need the log/pow/divisions; a non-finite S
    (NaN/inf in the row) must reach every element's term, as in Keras, and
    takes the dense loop."""
    C = yt.shape[1]
    if b != lit(b, 0.0) or not (abs(S) < lit(S, np.inf)) or 4 * n > C:
        return -1
    n = 0
    for j in range(C):
        if lit(S, yt[i, j]) * a + b != lit(S, 0.0):
            idx[n] = j
            n += 1
    return n


@njit(**INLINE)
def _nonzero(v):
    """1 if v != 0 else 0 (an integer sum the loop vectorizes)."""
    return np.int64(1) if v != lit(v, 0.0) else np.int64(0)


@njit(**INLINE)
def _cce_q_terms(yv, pj, S, eps, ome):
    """CCE on probabilities, one class: (y' log c, d(-y' log c)/dq, q)."""
    zero = lit(S, 0.0)
    q = pj / S
    qc = clip(q, eps, ome)
    gq = -yv / qc
    if q < eps:
        gq = zero
    if q > ome:
        gq = zero
    return yv * flog(qc), gq, q


# ----------------------------------------------------------------------------
# Short rows (at most COLS_MAX_K classes): a block of rows is transposed into
# (class, row) scratch (cols_in) and every loop runs along the rows of one
# class; per-row quantities (sums, maxima, logs) are arrays over the block.
# ----------------------------------------------------------------------------


# SCCE on logits and the softmax grad/Hessian kernels (boosting) already run
# their exp as one flat loop over a block (above); the columns layout gains on
# them only for the shortest rows (65536 rows, float32, one thread, ns a row,
# row kernel -> columns kernel: SCCE 23.8 -> 16.2 at 4 classes, 29.2 -> 22.3
# at 6, 30.8 -> 27.5 at 8, level at 10, 35.4 -> 39.7 at 12; the SCCE
# grad/Hessian 20.8 -> 17.8 at 4, 27.6 -> 24.7 at 6, 28.2 -> 32.8 at 8).
EXP_BLOCKED_COLS_MAX_K = 6  # the softmax grad/Hessian kernels, float32

# SCCE on logits, since both of its kernels index their blocks through
# slices (no wraparound select per access) and scce_logits_cols puts the
# label's term into the block (2026-12-06, AMD EPYC with AVX-512, one thread,
# ms, row kernel -> columns kernel, interleaved calls): float32 65536 rows:
# 0.98 -> 0.82 at 8 classes, 0.93 -> 0.94 at 9, 1.04 -> 1.12 at 10; 400000
# rows (beyond L2): 6.1 -> 6.2 at 8, 5.9 -> 7.3 at 9. float64 65536 rows:
# 0.98 -> 0.81 at 4, 1.07 -> 1.01 at 5, 1.28 -> 1.40 at 6; 600000 rows: 9.4 ->
# 9.2 at 4, 10.4 -> 11.4 at 5. (Before the row kernel's slices the columns
# one won up to 14 classes at 65536 rows.)
SCCE_LOGITS_COLS_MAX_K = 8
SCCE_LOGITS_COLS_MAX_K_F64 = 4

# float64 cut-overs (the same in csrc/crossentropy.c), from 262144 rows, one
# thread, ms with the row kernel -> the columns kernel, Numba / C backend:
#   CCE probabilities:   K=3 18.5 -> 6.6 / 22.4 -> 7.2, K=6 15.6 -> 13.3 / 17.6 -> 13.2,
#                        K=8 14.9 -> 18.0 / 17.5 -> 17.1, K=10 18.7 -> 22.4 / 19.7 -> 21.6
#   CCE logits:          K=6 18.5 -> 14.4 / 14.9 -> 10.4, K=8 19.1 -> 19.2 / 15.0 -> 12.8,
#                        K=15 31.7 -> 38.5 / 23.6 -> 23.0
#   SCCE probabilities:  K=10 13.5 -> 11.6 / 12.7 -> 8.9, K=15 15.3 -> 17.9 / 14.0 -> 11.9
#   categorical focal:   K=10 43.2 -> 37.7 / 43.4 -> 31.3, K=15 60.0 -> 60.2 / 53.5 -> 46.7
#   SCCE logits:         K=3 8.4 -> 7.3 / 6.8 -> 5.2, K=4 9.5 -> 9.0 / 6.5 -> 6.6 (Numba's
#                        cut-over since raised, above: SCCE_LOGITS_COLS_MAX_K_F64)
#   softmax grad/Hess.:  K=2 5.1 -> 4.8 / 4.2 -> 4.0, K=3 6.9 -> 7.3 / 5.9 -> 5.8
COLS_MAX_K_F64 = 10  # SCCE on probabilities, categorical focal
COLS_MAX_K_F64_DENSE = 6  # CCE: its dense labels are transposed too
GH_COLS_MAX_K_F64 = 2  # the softmax grad/Hessian kernels (float32: EXP_BLOCKED_COLS_MAX_K)


@njit(**INLINE)
def _cols_scratch(C, lo, hi):
    """Rows per block and the block's row count, capped by the range."""
    rb = max(1, BLOCK // C)
    return rb, max(1, min(hi - lo, rb))


@njit(**INLINE)
def _cols_row_sums(X, nr, S):
    """S[i] = sum_j X[j, i] (classes added in order, as the row loops do)."""
    for i in range(nr):
        S[i] = X[0, i]
    for j in range(1, X.shape[0]):
        for i in range(nr):
            S[i] += X[j, i]


@njit(**INLINE)
def _cols_row_max(X, nr, M):
    """M[i] = max_j X[j, i]; a NaN is passed over (its exp carries it into
    the row's sum, as row_max's choice does). Over flat 1-D slices: with 2-D
    indexing CCE on logits took 16.1 instead of 14.4 ns a row (4 classes)."""
    nb = X.shape[1]
    x = X.reshape(X.size)
    for i in range(nr):
        M[i] = x[i]
    for j in range(1, X.shape[0]):
        xj = x[j * nb : j * nb + nr]
        for i in range(nr):
            v = xj[i]
            m = M[i]
            M[i] = v if v > m else m


@njit(**JIT)
def cce_probs_cols(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """cce_probs_rows for short rows (same arithmetic, columns layout).
    512-bit vectors (``_math.wide_vectors``): its loops run along the block's
    rows, long whatever C is (one thread, AVX-512 Xeon, time against 256-bit:
    0.88-0.89 at 4 and 10 classes float32, 0.86 at 4 float64)."""
    wide_vectors()
    R, C = yp.shape
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    rb, nb = _cols_scratch(C, lo, hi)
    Q = np.empty((C, nb), yp.dtype)  # p, then q = p / S
    Y = np.empty((C, nb), yp.dtype)  # y', then y' log(clip(q))
    G = np.empty((C, nb), yp.dtype)  # d loss / dq, then the gradient
    S = np.empty(nb, yp.dtype)
    A = np.empty(nb, yp.dtype)
    D = np.empty(nb, yp.dtype)
    tot = 0.0
    r0 = lo
    while r0 < hi:
        nr = min(hi - r0, rb)
        cols_in(yp, r0, nr, Q)
        cols_in_labels(yt, r0, nr, Y, a, b)
        _cols_row_sums(Q, nr, S)
        for j in range(C):
            for i in range(nr):
                term, gq, q = _cce_q_terms(Y[j, i], Q[j, i], S[i], eps, ome)
                Q[j, i] = q
                G[j, i] = gq
                Y[j, i] = term
        _cols_row_sums(Y, nr, A)
        for i in range(nr):
            D[i] = G[0, i] * Q[0, i]
        for j in range(1, C):
            for i in range(nr):
                D[i] += G[j, i] * Q[j, i]
        for i in range(nr):
            li = -A[i]
            loss[r0 + i] = li
            tot += np.float64(li) * np.float64(w[(r0 + i) * ws])
            S[i] = w[(r0 + i) * ws] * prm[F_SCALE] / S[i]
        if want_grad:
            for j in range(C):
                for i in range(nr):
                    G[j, i] = (G[j, i] - D[i]) * S[i]
            cols_out(G, grad, r0, nr)
        r0 += nr
    return 0, -1, tot


@njit(**JIT)
def scce_probs_cols(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """scce_probs_rows for short rows (same arithmetic, columns layout)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    rb, nb = _cols_scratch(C, lo, hi)
    P = np.empty((C, nb), yp.dtype)
    G = np.empty((C, nb), yp.dtype)  # clip(p), then the gradient
    S = np.empty(nb, yp.dtype)
    LS = np.empty(nb, yp.dtype)
    LC = np.empty(nb, yp.dtype)
    K = np.empty(nb, np.int64)
    nbad = 0
    first = -1
    tot = 0.0
    r0 = lo
    while r0 < hi:
        nr = min(hi - r0, rb)
        cols_in(yp, r0, nr, P)
        for j in range(C):
            for i in range(nr):
                G[j, i] = clip(P[j, i], eps, ome)
        _cols_row_sums(G, nr, S)
        for i in range(nr):
            k = _label(yt[r0 + i], C, ignore, has_ignore)
            K[i] = k
            if k == -1:
                nbad += 1
                if first < 0:
                    first = r0 + i
            LC[i] = G[k, i] if k >= 0 else one
        for i in range(nr):  # log_inplace of a copy of S: 1 ns a row more (3 classes)
            LS[i] = flog(S[i])
        for i in range(nr):
            LC[i] = flog(LC[i])
        for i in range(nr):
            k = K[i]
            if k < 0:
                loss[r0 + i] = zero
                S[i] = zero
                continue
            li = LS[i] - LC[i]
            loss[r0 + i] = li
            tot += np.float64(li) * np.float64(w[(r0 + i) * ws])
            LS[i] = w[(r0 + i) * ws] * prm[F_SCALE]  # the row's scale
            S[i] = LS[i] / S[i]
        if want_grad:
            for j in range(C):
                for i in range(nr):
                    p = P[j, i]
                    v = S[i]
                    if p < eps:
                        v = zero
                    if p > ome:
                        v = zero
                    G[j, i] = v
            cols_out(G, grad, r0, nr)
            for i in range(nr):
                k = K[i]
                if k < 0:
                    for j in range(C):
                        grad[r0 + i, j] = zero
                    continue
                pk = P[k, i]
                if not (pk < eps or pk > ome):
                    grad[r0 + i, k] -= LS[i] / clip(pk, eps, ome)
        r0 += nr
    return nbad, first, tot


@njit(**JIT)
def scce_logits_cols(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """scce_logits_rows for short rows (same arithmetic, columns layout)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    rb, nb = _cols_scratch(C, lo, hi)
    P = np.empty((C, nb), yp.dtype)  # x
    G = np.empty((C, nb), yp.dtype)  # exp(x - max), then the gradient
    M = np.empty(nb, yp.dtype)
    S = np.empty(nb, yp.dtype)
    LS = np.empty(nb, yp.dtype)
    K = np.empty(nb, np.int64)
    nbad = 0
    first = -1
    tot = 0.0
    r0 = lo
    while r0 < hi:
        nr = min(hi - r0, rb)
        cols_in(yp, r0, nr, P)
        _cols_row_max(P, nr, M)
        for j in range(C):
            for i in range(nr):
                G[j, i] = fexp(P[j, i] - M[i])
        _cols_row_sums(G, nr, S)
        for i in range(nr):
            LS[i] = S[i]
        log_inplace(LS[:nr])
        # the block's labels and losses through slices: indices from range(nr),
        # which Numba knows are >= 0 (no wraparound select per access; r0 + i
        # has one): 0.37 -> 0.25 ms for this loop over 131072 rows of 2 classes
        yb = yt[r0 : r0 + nr]
        lb = loss[r0 : r0 + nr]
        for i in range(nr):
            k = _label(yb[i], C, ignore, has_ignore)
            K[i] = k
            if k < 0:
                if k == -1:
                    nbad += 1
                    if first < 0:
                        first = r0 + i
                lb[i] = zero
                S[i] = zero
                continue
            li = LS[i] - (P[k, i] - M[i])
            lb[i] = li
            wi = w[(r0 + i) * ws]
            tot += np.float64(li) * np.float64(wi)
            LS[i] = wi * prm[F_SCALE]  # the row's scale
            S[i] = LS[i] / S[i]
        if want_grad:
            for j in range(C):
                for i in range(nr):
                    G[j, i] = G[j, i] * S[i]
            # the label's term in the block, before it is written out (the
            # same operations as on grad after cols_out: 0.14 -> 0.0x ms,
            # 131072 rows of 2 classes; grad[r0 + i, k] has a wraparound select)
            for i in range(nr):
                k = K[i]
                if k < 0:
                    for j in range(C):
                        G[j, i] = zero
                    continue
                G[k, i] -= LS[i]
            cols_out(G, grad, r0, nr)
        r0 += nr
    return nbad, first, tot


@njit(**JIT)
def cce_logits_cols(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """cce_logits_rows for short rows (same arithmetic, columns layout).
    512-bit vectors as cce_probs_cols (0.90-0.91 of the time at 4 and 10
    classes float32, 0.90 at 4 float64). The other columns kernels measured level (SCCE,
    0.91-1.02) or mixed (categorical focal, 0.90-1.12) and keep the default."""
    wide_vectors()
    R, C = yp.shape
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    rb, nb = _cols_scratch(C, lo, hi)
    P = np.empty((C, nb), yp.dtype)  # x - max, then y' (x - max)
    Y = np.empty((C, nb), yp.dtype)  # y'
    G = np.empty((C, nb), yp.dtype)  # exp(x - max), then the gradient
    M = np.empty(nb, yp.dtype)
    S = np.empty(nb, yp.dtype)
    SY = np.empty(nb, yp.dtype)
    LS = np.empty(nb, yp.dtype)
    tot = 0.0
    r0 = lo
    while r0 < hi:
        nr = min(hi - r0, rb)
        cols_in(yp, r0, nr, P)
        cols_in_labels(yt, r0, nr, Y, a, b)
        _cols_row_max(P, nr, M)
        for j in range(C):
            for i in range(nr):
                v = P[j, i] - M[i]
                G[j, i] = fexp(v)
                P[j, i] = Y[j, i] * v
        _cols_row_sums(G, nr, S)
        _cols_row_sums(Y, nr, SY)
        _cols_row_sums(P, nr, M)  # sum y' (x - max)
        for i in range(nr):
            LS[i] = S[i]
        log_inplace(LS[:nr])
        for i in range(nr):
            li = SY[i] * LS[i] - M[i]
            loss[r0 + i] = li
            tot += np.float64(li) * np.float64(w[(r0 + i) * ws])
            sc = w[(r0 + i) * ws] * prm[F_SCALE]
            LS[i] = sc
            S[i] = sc * SY[i] / S[i]
        if want_grad:
            for j in range(C):
                for i in range(nr):
                    G[j, i] = G[j, i] * S[i] - Y[j, i] * LS[i]
            cols_out(G, grad, r0, nr)
        r0 += nr
    return 0, -1, tot


@njit(**JIT)
def cce_probs_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """Keras: q = p / sum(p); c = clip(q, eps, 1 - eps); loss = -sum(y' log c).
    Rows with few nonzero labels (one-hot) take the terms of those classes only."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    idx = np.empty(C, np.int64)
    tot = 0.0
    for i in range(lo, hi):
        S = zero
        n = 0
        for j in range(C):
            S += yp[i, j]
            n += _nonzero(lit(zero, yt[i, j]) * a + b)
        acc = zero
        dot = zero
        nz = _sparse_labels(yt, i, a, b, S, idx, n)
        if nz >= 0:
            if want_grad:
                for j in range(C):
                    grad[i, j] = zero
            for t in range(nz):
                j = idx[t]
                term, gq, q = _cce_q_terms(lit(zero, yt[i, j]) * a + b, yp[i, j], S, eps, ome)
                acc += term
                if want_grad:
                    grad[i, j] = gq
                    dot += gq * q
        else:
            for j in range(C):
                term, gq, q = _cce_q_terms(lit(zero, yt[i, j]) * a + b, yp[i, j], S, eps, ome)
                acc += term
                if want_grad:
                    grad[i, j] = gq
                    dot += gq * q
        loss[i] = -acc
        tot += np.float64(-acc) * np.float64(w[i * ws])
        if want_grad:
            r = w[i * ws] * prm[F_SCALE] / S
            for j in range(C):
                grad[i, j] = (grad[i, j] - dot) * r
    return 0, -1, tot


@njit(**INLINE)
def _cfocal_terms(yt, yp, grad, want_grad, i, pb, S, logits, a, b, eps, ome, alphas, gamma, sq):
    """Row i's categorical focal loss and ``sum_j (dl/dq_j) q_j`` (its d/dq_j
    into grad[i]); the probabilities are yp[i], or the row's softmax in pb
    (``logits``); ``sq``: gamma == 2, its own loop (_focal_pow)."""
    zero = lit(S, 0.0)
    acc = zero
    dot = zero
    for j in range(yp.shape[1]):
        pj = pb[j] if logits else yp[i, j]
        term, gq, q = _cfocal_elem(lit(zero, yt[i, j]) * a + b, pj, S, eps, ome, alphas[j], gamma, sq)
        acc += term
        if want_grad:
            grad[i, j] = gq
            dot += gq * q
    return acc, dot


@njit(**INLINE)
def _cfocal_elem(y, pj, S, eps, ome, al, gamma, sq):
    """Categorical focal, one class: (its loss term, d term/dq (0 where q is
    clipped), q)."""
    zero = lit(S, 0.0)
    one = lit(S, 1.0)
    q = pj / S
    qc = clip(q, eps, ome)
    lc = flog(qc)
    f, dfm = _focal_pow(one - qc, gamma, sq)
    gq = al * (f * (-y / qc) - dfm * (-y * lc))
    if q < eps:
        gq = zero
    if q > ome:
        gq = zero
    return al * f * (-y * lc), gq, q


@njit(**INLINE)
def _cfocal_sparse(yt, p, grad, want_grad, i, S, a, b, eps, ome, alphas, gamma, idx, nz, sq):
    """_cfocal_terms over the nz classes idx[:nz] with y' != 0 (_sparse_labels),
    p: row i's probabilities; the other classes' terms and d/dq are 0."""
    zero = lit(S, 0.0)
    acc = zero
    dot = zero
    if want_grad:
        for j in range(p.shape[0]):
            grad[i, j] = zero
    for t in range(nz):
        j = idx[t]
        term, gq, q = _cfocal_elem(lit(zero, yt[i, j]) * a + b, p[j], S, eps, ome, alphas[j], gamma, sq)
        acc += term
        if want_grad:
            grad[i, j] = gq
            dot += gq * q
    return acc, dot


@njit(**JIT)
def _cfocal_sparse_pow(yt, p, grad, want_grad, i, S, a, b, eps, ome, alphas, gamma, idx, nz):
    """_cfocal_sparse for gamma != 2, not inlined: one compiled copy of the
    general power per dtype serves the serial and parallel kernels and both
    inputs (inlined everywhere, it doubled the kernel's cold compile to 34 s);
    gamma == 2 is inlined (a call per row costs ~10% there)."""
    return _cfocal_sparse(yt, p, grad, want_grad, i, S, a, b, eps, ome, alphas, gamma, idx, nz, False)


@njit(**JIT)
def categorical_focal_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """Keras CategoricalFocalCrossentropy; prm[P_FLAG] != 0 means logits.

    p = softmax(x) (logits) -> q = p / sum(p) -> c = clip(q) ->
    loss = sum_j alpha_j (1 - c_j)**gamma (-y'_j log c_j);
    alpha_j = prm[P_AVEC + j * prm[P_AVEC_STEP]] (one alpha, or one per class).
    """
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    gamma = prm[P_GAMMA]
    logits = prm[P_FLAG] != zero
    astep = np.int64(prm[P_AVEC_STEP])
    alphas = np.empty(C, yp.dtype)  # a contiguous copy: prm[P_AVEC + j * astep] in the loop does not vectorize
    for j in range(C):
        alphas[j] = prm[P_AVEC + j * astep]
    sq = gamma == lit(gamma, 2.0)
    pb = np.empty(C if logits else 0, yp.dtype)  # a row's softmax: one exp per element
    idx = np.empty(C, np.int64)
    tot = 0.0
    for i in range(lo, hi):
        S = zero
        n = 0  # nonzero labels, for _sparse_labels
        if logits:
            m = row_max(yp, i)
            s = zero
            for j in range(C):
                e = fexp(yp[i, j] - m)
                pb[j] = e
                s += e
            inv_s = one / s
            for j in range(C):
                pb[j] = pb[j] * inv_s
                S += pb[j]
                n += _nonzero(lit(zero, yt[i, j]) * a + b)
        else:
            for j in range(C):
                S += yp[i, j]
                n += _nonzero(lit(zero, yt[i, j]) * a + b)
        # gamma == 2 and logits are constants of each loop: vectorized, an
        # if-converted branch would run both sides for every element
        nz = _sparse_labels(yt, i, a, b, S, idx, n)
        if nz >= 0:  # few nonzero labels (one-hot): their classes only
            p = pb if logits else yp[i]
            if sq:
                acc, dot = _cfocal_sparse(yt, p, grad, want_grad, i, S, a, b, eps, ome, alphas, gamma, idx, nz, True)
            else:
                acc, dot = _cfocal_sparse_pow(yt, p, grad, want_grad, i, S, a, b, eps, ome, alphas, gamma, idx, nz)
        elif sq and logits:
            acc, dot = _cfocal_terms(yt, yp, grad, want_grad, i, pb, S, True, a, b, eps, ome, alphas, gamma, True)
        elif sq:
            acc, dot = _cfocal_terms(yt, yp, grad, want_grad, i, pb, S, False, a, b, eps, ome, alphas, gamma, True)
        elif logits:
            acc, dot = _cfocal_terms(yt, yp, grad, want_grad, i, pb, S, True, a, b, eps, ome, alphas, gamma, False)
        else:
            acc, dot = _cfocal_terms(yt, yp, grad, want_grad, i, pb, S, False, a, b, eps, ome, alphas, gamma, False)
        loss[i] = acc
        tot += np.float64(acc) * np.float64(w[i * ws])
        if want_grad:
            sc = w[i * ws] * prm[F_SCALE]
            if logits:
                dotp = zero
                for j in range(C):
                    dp = (grad[i, j] - dot) / S
                    grad[i, j] = dp
                    dotp += dp * pb[j]
                for j in range(C):
                    grad[i, j] = pb[j] * (grad[i, j] - dotp) * sc
            else:
                r = sc / S
                for j in range(C):
                    grad[i, j] = (grad[i, j] - dot) * r
    return 0, -1, tot


@njit(**INLINE)
def _cfocal_cols_terms(Q, Y, G, S, nr, alphas, eps, ome, gamma, sq):
    """_cfocal_elem in columns: Q holds the probabilities (replaced by q =
    p / S), Y y' (replaced by the loss terms); G <- d term / dq. ``sq``:
    gamma == 2."""
    for j in range(Q.shape[0]):
        al = alphas[j]
        for i in range(nr):
            term, gq, q = _cfocal_elem(Y[j, i], Q[j, i], S[i], eps, ome, al, gamma, sq)
            Q[j, i] = q
            G[j, i] = gq
            Y[j, i] = term


@njit(**JIT)
def categorical_focal_cols(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """categorical_focal_rows for short rows (same arithmetic, columns layout)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    eps = prm[P_EPS]
    ome = prm[P_OME]
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    gamma = prm[P_GAMMA]
    logits = prm[P_FLAG] != zero
    astep = np.int64(prm[P_AVEC_STEP])
    alphas = np.empty(C, yp.dtype)
    for j in range(C):
        alphas[j] = prm[P_AVEC + j * astep]
    sq = gamma == lit(gamma, 2.0)
    rb, nb = _cols_scratch(C, lo, hi)
    Q = np.empty((C, nb), yp.dtype)  # p (or x), then q
    PB = np.empty((C, nb if logits else 0), yp.dtype)  # softmax(x)
    Y = np.empty((C, nb), yp.dtype)  # y', then the loss terms
    G = np.empty((C, nb), yp.dtype)  # d loss / dq, then the gradient
    S = np.empty(nb, yp.dtype)
    A = np.empty(nb, yp.dtype)
    D = np.empty(nb, yp.dtype)
    tot = 0.0
    r0 = lo
    while r0 < hi:
        nr = min(hi - r0, rb)
        cols_in(yp, r0, nr, Q)
        cols_in_labels(yt, r0, nr, Y, a, b)
        if logits:
            _cols_row_max(Q, nr, S)
            for j in range(C):
                for i in range(nr):
                    Q[j, i] = fexp(Q[j, i] - S[i])
            _cols_row_sums(Q, nr, A)
            for i in range(nr):
                A[i] = one / A[i]
            for j in range(C):
                for i in range(nr):
                    v = Q[j, i] * A[i]
                    Q[j, i] = v
                    PB[j, i] = v
        _cols_row_sums(Q, nr, S)
        # gamma == 2 is a constant of each loop: vectorized, an if-converted
        # branch would run the general power for every element
        if sq:
            _cfocal_cols_terms(Q, Y, G, S, nr, alphas, eps, ome, gamma, True)
        else:
            _cfocal_cols_terms(Q, Y, G, S, nr, alphas, eps, ome, gamma, False)
        _cols_row_sums(Y, nr, A)
        for i in range(nr):
            D[i] = G[0, i] * Q[0, i]
        for j in range(1, C):
            for i in range(nr):
                D[i] += G[j, i] * Q[j, i]
        for i in range(nr):
            li = A[i]
            loss[r0 + i] = li
            tot += np.float64(li) * np.float64(w[(r0 + i) * ws])
            A[i] = w[(r0 + i) * ws] * prm[F_SCALE]  # the row's scale
        if want_grad:
            if logits:
                # d/dp_j = (g_j - dot) / S, then through the softmax
                for j in range(C):
                    for i in range(nr):
                        G[j, i] = (G[j, i] - D[i]) / S[i]
                for i in range(nr):
                    D[i] = G[0, i] * PB[0, i]
                for j in range(1, C):
                    for i in range(nr):
                        D[i] += G[j, i] * PB[j, i]
                for j in range(C):
                    for i in range(nr):
                        G[j, i] = PB[j, i] * (G[j, i] - D[i]) * A[i]
            else:
                for i in range(nr):
                    S[i] = A[i] / S[i]
                for j in range(C):
                    for i in range(nr):
                        G[j, i] = (G[j, i] - D[i]) * S[i]
            cols_out(G, grad, r0, nr)
        r0 += nr
    return 0, -1, tot


# Parallel drivers (the chunk loop itself is _par, inlined into each).
@njit(**PJIT)
def bce_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(bce_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def bce_logits_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(bce_logits_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def binary_focal_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(binary_focal_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def binary_focal_logits_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(binary_focal_logits_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def sigmoid_focal_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(sigmoid_focal_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def sigmoid_focal_logits_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(sigmoid_focal_logits_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def kl_divergence_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(kl_divergence_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def poisson_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(poisson_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def cce_logits_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(cce_logits_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def cce_probs_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(cce_probs_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def categorical_focal_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(categorical_focal_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def scce_logits_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(scce_logits_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def scce_probs_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(scce_probs_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def cce_logits_cols_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(cce_logits_cols, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def cce_probs_cols_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(cce_probs_cols, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def scce_logits_cols_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(scce_logits_cols, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def scce_probs_cols_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(scce_probs_cols, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def categorical_focal_cols_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(categorical_focal_cols, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


# ----------------------------------------------------------------------------
# Registry entry points (the kernel contract): serial below the cut-over.
# ----------------------------------------------------------------------------




bce_probs = entry(bce_rows, bce_par, "bce_probs")
bce_logits = entry(bce_logits_rows, bce_logits_par, "bce_logits")
binary_focal = entry(binary_focal_rows, binary_focal_par, "binary_focal")
binary_focal_logits = entry(binary_focal_logits_rows, binary_focal_logits_par, "binary_focal_logits")
sigmoid_focal = entry(sigmoid_focal_rows, sigmoid_focal_par, "sigmoid_focal")
sigmoid_focal_logits = entry(sigmoid_focal_logits_rows, sigmoid_focal_logits_par, "sigmoid_focal_logits")
kl_divergence = entry(kl_divergence_rows, kl_divergence_par, "kl_divergence")
poisson = entry(poisson_rows, poisson_par, "poisson")
cce_logits = entry_cols(
    cce_logits_rows, cce_logits_par, cce_logits_cols, cce_logits_cols_par, COLS_MAX_K, COLS_MAX_K_F64_DENSE,
    "cce_logits",
)
cce_probs = entry_cols(
    cce_probs_rows, cce_probs_par, cce_probs_cols, cce_probs_cols_par, COLS_MAX_K, COLS_MAX_K_F64_DENSE,
    "cce_probs",
)
categorical_focal = entry_cols(
    categorical_focal_rows, categorical_focal_par, categorical_focal_cols, categorical_focal_cols_par,
    COLS_MAX_K, COLS_MAX_K_F64, "categorical_focal",
)
scce_logits = entry_cols(
    scce_logits_rows, scce_logits_par, scce_logits_cols, scce_logits_cols_par, SCCE_LOGITS_COLS_MAX_K,
    SCCE_LOGITS_COLS_MAX_K_F64, "scce_logits",
)
scce_probs = entry_cols(
    scce_probs_rows, scce_probs_par, scce_probs_cols, scce_probs_cols_par, COLS_MAX_K, COLS_MAX_K_F64,
    "scce_probs",
)


# ----------------------------------------------------------------------------
# Gradient and Hessian diagonal for gradient boosting (registry variants
# "gh"/"gh_logits"): kernel(yt, yp, prm, w, ws, grad, hess, nch) -> info, both
# outputs scaled by w[i*ws] * prm[F_SCALE] (and 1/K for the mean losses), see
# _common.elementwise_gh_rows. Hessians are the diagonal of d2 loss_i / d x2.
# ----------------------------------------------------------------------------

from ._common import elementwise_gh_rows, entry_gh, entry_gh_cols, par_gh  # noqa: E402


@njit(**INLINE)
def _gh_bce(y, p, eps, ome, alpha, gamma, flag):
    """d/dp, d2/dp2 of -(y log c + (1 - y) log(1 - c)), c = clip(p): 0 outside the clip."""
    zero = lit(p, 0.0)
    one = lit(p, 1.0)
    pc = clip(p, eps, ome)
    q = one - pc
    g = (pc - y) / (pc * q)
    h = y / (pc * pc) + (one - y) / (q * q)
    if p < eps:
        g = zero
        h = zero
    if p > ome:
        g = zero
        h = zero
    return g, h


@njit(**INLINE)
def _gh_bce_logits(y, x, eps, ome, alpha, gamma, flag):
    """g = sigmoid(x) - y, h = sigmoid(x) sigmoid(-x) (both factors accurate)."""
    s, t = _sigmoid_pair(x)
    return s - y, s * t


@njit(**INLINE)
def _gh_poisson(y, p, eps, ome, alpha, gamma, flag):
    """g = 1 - y / (p + eps), h = y / (p + eps)**2."""
    r = y / (p + eps)
    return lit(p, 1.0) - r, r / (p + eps)


@njit(**JIT)
def bce_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    wide_vectors()
    return elementwise_gh_rows(_gh_bce, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def bce_logits_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    wide_vectors()
    return elementwise_gh_rows(_gh_bce_logits, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def poisson_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    wide_vectors()
    return elementwise_gh_rows(_gh_poisson, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def cce_logits_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    """p = softmax(x): g = sum(y') p - y', h = sum(y') p (1 - p)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    rb = max(1, BLOCK // C)
    gflat = grad.reshape(R * C)
    r0 = lo
    while r0 < hi:
        r1 = min(hi, r0 + rb)
        for i in range(r0, r1):
            m = row_max(yp, i)
            for j in range(C):
                grad[i, j] = yp[i, j] - m
        exp_inplace(gflat[r0 * C : r1 * C])
        for i in range(r0, r1):
            s = zero
            sy = zero
            for j in range(C):
                s += grad[i, j]
                sy += lit(zero, yt[i, j]) * a + b
            sc = w[i * ws] * prm[F_SCALE]
            r = one / s
            for j in range(C):
                pj = grad[i, j] * r
                grad[i, j] = (sy * pj - (lit(zero, yt[i, j]) * a + b)) * sc
                hess[i, j] = sy * pj * (one - pj) * sc
        r0 = r1
    return 0, -1, 0.0


@njit(**JIT)
def scce_logits_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    """p = softmax(x): g = p - onehot(y), h = p (1 - p); ignore_class rows 0;
    invalid labels counted (rows zeroed) like scce_logits_rows."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    rb = max(1, BLOCK // C)
    krow = np.empty(min(hi - lo, rb), np.int64)
    gflat = grad.reshape(R * C)
    nbad = 0
    first = -1
    r0 = lo
    while r0 < hi:
        r1 = min(hi, r0 + rb)
        for i in range(r0, r1):
            k = _label(yt[i], C, ignore, has_ignore)
            krow[i - r0] = k
            if k == -1:
                nbad += 1
                if first < 0:
                    first = i
            m = row_max(yp, i)
            for j in range(C):
                grad[i, j] = yp[i, j] - m
        exp_inplace(gflat[r0 * C : r1 * C])
        for i in range(r0, r1):
            k = krow[i - r0]
            if k < 0:
                for j in range(C):
                    grad[i, j] = zero
                    hess[i, j] = zero
                continue
            s = zero
            for j in range(C):
                s += grad[i, j]
            sc = w[i * ws] * prm[F_SCALE]
            r = one / s
            for j in range(C):
                pj = grad[i, j] * r
                grad[i, j] = pj * sc
                hess[i, j] = pj * (one - pj) * sc
            grad[i, k] -= sc
        r0 = r1
    return nbad, first, 0.0


@njit(**JIT)
def cce_logits_gh_cols(yt, yp, prm, w, ws, grad, hess, lo, hi):
    """cce_logits_gh_rows for short rows (columns layout, as cce_logits_cols)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    a = prm[P_LS_A]
    b = prm[P_LS_B]
    rb, nb = _cols_scratch(C, lo, hi)
    P = np.empty((C, nb), yp.dtype)
    Y = np.empty((C, nb), yp.dtype)
    G = np.empty((C, nb), yp.dtype)
    H = np.empty((C, nb), yp.dtype)
    M = np.empty(nb, yp.dtype)
    S = np.empty(nb, yp.dtype)
    SY = np.empty(nb, yp.dtype)
    r0 = lo
    while r0 < hi:
        nr = min(hi - r0, rb)
        cols_in(yp, r0, nr, P)
        cols_in_labels(yt, r0, nr, Y, a, b)
        _cols_row_max(P, nr, M)
        for j in range(C):
            for i in range(nr):
                G[j, i] = fexp(P[j, i] - M[i])
        _cols_row_sums(G, nr, S)
        _cols_row_sums(Y, nr, SY)
        for i in range(nr):
            S[i] = one / S[i]
            M[i] = w[(r0 + i) * ws] * prm[F_SCALE]  # the row's scale
        for j in range(C):
            for i in range(nr):
                pj = G[j, i] * S[i]
                G[j, i] = (SY[i] * pj - Y[j, i]) * M[i]
                H[j, i] = SY[i] * pj * (one - pj) * M[i]
        cols_out(G, grad, r0, nr)
        cols_out(H, hess, r0, nr)
        r0 += nr
    return 0, -1, 0.0


@njit(**JIT)
def scce_logits_gh_cols(yt, yp, prm, w, ws, grad, hess, lo, hi):
    """scce_logits_gh_rows for short rows (columns layout, as scce_logits_cols)."""
    R, C = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    ignore = prm[P_IGNORE]
    has_ignore = prm[P_HAS_IGNORE] != zero
    rb, nb = _cols_scratch(C, lo, hi)
    P = np.empty((C, nb), yp.dtype)
    G = np.empty((C, nb), yp.dtype)
    H = np.empty((C, nb), yp.dtype)
    M = np.empty(nb, yp.dtype)
    S = np.empty(nb, yp.dtype)
    K = np.empty(nb, np.int64)
    nbad = 0
    first = -1
    r0 = lo
    while r0 < hi:
        nr = min(hi - r0, rb)
        cols_in(yp, r0, nr, P)
        _cols_row_max(P, nr, M)
        for j in range(C):
            for i in range(nr):
                G[j, i] = fexp(P[j, i] - M[i])
        _cols_row_sums(G, nr, S)
        for i in range(nr):
            k = _label(yt[r0 + i], C, ignore, has_ignore)
            K[i] = k
            if k == -1:
                nbad += 1
                if first < 0:
                    first = r0 + i
            S[i] = one / S[i]
            M[i] = w[(r0 + i) * ws] * prm[F_SCALE]  # the row's scale
        for j in range(C):
            for i in range(nr):
                pj = G[j, i] * S[i]
                G[j, i] = pj * M[i]
                H[j, i] = pj * (one - pj) * M[i]
        cols_out(G, grad, r0, nr)
        cols_out(H, hess, r0, nr)
        for i in range(nr):
            k = K[i]
            if k < 0:
                for j in range(C):
                    grad[r0 + i, j] = zero
                    hess[r0 + i, j] = zero
                continue
            grad[r0 + i, k] -= M[i]
        r0 += nr
    return nbad, first, 0.0


@njit(**PJIT)
def bce_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(bce_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def bce_logits_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(bce_logits_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def poisson_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(poisson_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def cce_logits_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(cce_logits_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def scce_logits_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(scce_logits_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def cce_logits_gh_cols_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(cce_logits_gh_cols, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def scce_logits_gh_cols_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(scce_logits_gh_cols, yt, yp, prm, w, ws, grad, hess, nch)


bce_gh = entry_gh(bce_gh_rows, bce_gh_par, "bce_gh")
bce_logits_gh = entry_gh(bce_logits_gh_rows, bce_logits_gh_par, "bce_logits_gh")
poisson_gh = entry_gh(poisson_gh_rows, poisson_gh_par, "poisson_gh")
cce_logits_gh = entry_gh_cols(
    cce_logits_gh_rows, cce_logits_gh_par, cce_logits_gh_cols, cce_logits_gh_cols_par, EXP_BLOCKED_COLS_MAX_K,
    GH_COLS_MAX_K_F64,
    "cce_logits_gh",
)
scce_logits_gh = entry_gh_cols(
    scce_logits_gh_rows, scce_logits_gh_par, scce_logits_gh_cols, scce_logits_gh_cols_par, EXP_BLOCKED_COLS_MAX_K,
    GH_COLS_MAX_K_F64,
    "scce_logits_gh",
)
