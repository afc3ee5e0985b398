"""Regression, similarity and hinge losses on the Numba CPU backend.

Loss kernels follow the contract of ``crossentropy.py`` (see its module
docstring)::

    kernel(y_true, y_pred, prm, w, ws, loss, grad, want_grad, nch) -> info

Elementwise losses (mean over the last axis) use the shared blocked driver
``elementwise_rows`` of ``_common.py``; ``CosineSimilarity`` and
``CategoricalHinge`` are row kernels (``*_rows`` over a row range, 2-D
indexing, a ``*_par`` prange driver).

Per element, ``e = y_pred - y_true``, ``eps = prm[P_EPS]`` (1e-7), K the row
length (the mean's 1/K is applied by the driver):

(1) MSE       ``e**2``;                               d/dp ``2 e``
(2) MAE       ``|e|``;                                d/dp ``sign(e)``, ``sign(0) = 0`` (TF's abs gradient)
(3) MAPE      ``100 |e| / max(|y|, eps)``;            d/dp ``100 sign(e) / max(|y|, eps)``
(4) MSLE      ``(log1p(max(p, eps)) - log1p(max(y, eps)))**2``;
              d/dp ``2 d / (1 + max(p, eps))``, 0 where ``p < eps`` (TF's maximum
              sends the gradient to ``p`` on a tie ``p == eps``)
(5) Huber     ``e**2 / 2`` if ``|e| <= delta`` else ``delta |e| - delta**2 / 2``
              (``delta = prm[P_ALPHA]``); d/dp ``clip(e, -delta, delta)``
(6) LogCosh   Keras' ``e + softplus(-2 e) - log 2``, evaluated as
              ``|e| + log1p(exp(-2|e|)) - log 2`` (no overflow for any ``e``), and
              for ``|e| < 0.625`` as ``-log1p(-tanh(e)**2) / 2`` (no cancellation);
              d/dp ``tanh(e) = -sign(e) m / (2 + m)``, ``m = expm1(-2|e|)``
(7) Hinge     ``max(1 - y p, 0)``;                    d/dp ``-y`` where ``1 - y p >= 0`` (TF's
              maximum gives the tie to its first argument), else 0
(8) SquaredHinge ``max(1 - y p, 0)**2``;              d/dp ``-2 y max(1 - y p, 0)``

Hinge labels: when every ``y_true`` of the batch is 0 or 1 they are mapped to
``2 y - 1`` (Keras' ``convert_binary_labels_to_hinge``, a batch-wide decision);
the kernels scan ``y_true`` first and pass the map as ``y * a + b`` through
``prm[P_LS_A]``/``prm[P_LS_B]`` of a private copy of ``prm``.

A ``max(v, 0)`` is written ``v if not v < 0`` so that a NaN stays NaN.

grad_hess kernels (gradient boosting), one per elementwise loss, on
``_common.py``'s ``elementwise_gh_rows``/``par_gh``/``entry_gh``::

    x_gh(yt, yp, prm, w, ws, grad, hess, nch) -> info

write, per element, the gradient and the Hessian diagonal of
``sum_i w_i loss_i`` with respect to ``y_pred`` (``loss_i`` the per-sample
loss, so 1/K included), times ``prm[F_SCALE]`` (1 from ``_core.grad_hess``);
serial for ``nch == 1``, row chunks in prange otherwise. The Hessian is the second derivative where it exists, and at the
kinks the value of the side TF's gradient takes: MAE, MAPE, Hinge: 0; Huber:
1 for ``|e| <= delta``, 0 outside; SquaredHinge: ``2 y**2`` where
``1 - y p >= 0``, 0 outside; MSLE: ``2 (1 - d) / (1 + p)**2``, 0 where
``p < eps`` (negative where ``d > 1``: the true second derivative);
LogCosh: ``1 - tanh(e)**2 = 4 u / (1 + u)**2``.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..._config import FASTMATH

from ._common import (
    F_SCALE,
    INLINE,
    JIT,
    P_EPS,
    P_LS_A,
    P_LS_B,
    PJIT,
    chunk,
    elementwise_gh_rows,
    elementwise_rows,
    entry,
    entry_gh,
    par,
    par_gh,
)
from ._math import (
    _exp2_parts,
    _scale_half,
    exp_reduce64,
    expm1_poly64,
    fkey,
    flog1p,
    flog1p_small,
    funkey,
    lit,
    wide_vectors,
)

_F32 = np.float32
_F64 = np.float64

# ----------------------------------------------------------------------------
# Element functions: (y, p, eps, ome, alpha, gamma, flag) -> (loss, dloss/dp)
# ----------------------------------------------------------------------------


@njit(**INLINE)
def _sign(e):
    """sign(e) with sign(0) = 0 and sign(NaN) = NaN (TF's Sign)."""
    s = lit(e, 0.0)
    if e > lit(e, 0.0):
        s = lit(e, 1.0)
    if e < lit(e, 0.0):
        s = lit(e, -1.0)
    if e != e:
        s = e
    return s


@njit(**INLINE)
def _e_mse(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    return e * e, e + e


@njit(**INLINE)
def _e_mae(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    return abs(e), _sign(e)


@njit(**INLINE)
def _mape_scale(y, eps):
    m = abs(y)
    if m < eps:
        m = eps
    return lit(y, 100.0) / m


@njit(**INLINE)
def _e_mape(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    r = _mape_scale(y, eps)
    return abs(e) * r, _sign(e) * r


@njit(**INLINE)
def _msle_parts(y, p, eps):
    """(d, 1 / (1 + max(p, eps)), p < eps)."""
    pc = p
    if p < eps:
        pc = eps
    yc = y
    if y < eps:
        yc = eps
    d = flog1p(pc) - flog1p(yc)
    return d, lit(p, 1.0) / (lit(p, 1.0) + pc), p < eps


@njit(**INLINE)
def _e_msle(y, p, eps, ome, alpha, gamma, flag):
    d, r, clipped = _msle_parts(y, p, eps)
    g = (d + d) * r
    if clipped:
        g = lit(p, 0.0)
    return d * d, g


@njit(**INLINE)
def _e_huber(y, p, eps, ome, alpha, gamma, flag):
    half = lit(p, 0.5)
    e = p - y
    ae = abs(e)
    l = half * e * e
    if ae > alpha:
        l = alpha * ae - half * alpha * alpha
    g = e
    if e > alpha:
        g = alpha
    if e < -alpha:
        g = -alpha
    return l, g


@njit(**INLINE)
def _expm1_exp32(z):
    """float32 ``(expm1(z), exp(z))`` for ``z <= 0`` from ONE reduced-argument
    evaluation (vectorizable; the reduction of ``_math.exp32``):
    ``z = k ln2 + r``, ``|r| <= ln2/2``, ``q = expm1(r)`` by its degree-7 Taylor
    polynomial (truncation < 2e-8 relative), then ``exp(z) = 2**k (1 + q)`` and
    ``expm1(z) = 2**k q + (2**k - 1)`` (k = 0: q itself, full relative precision;
    k <= -1: |expm1(z)| >= 0.29, no cancellation)."""
    zc = z
    if zc < _F32(-104.0):
        zc = _F32(-104.0)
    kf, s1, s2 = _exp2_parts(zc * _F32(1.4426950408889634) + _F32(12582912.0))
    r = zc - kf * _F32(0.693145751953125)  # (folded into one step: see _math.exp32)
    r = r - kf * _F32(1.428606765330187e-06)
    q = _F32(1.0 / 5040.0)
    q = q * r + _F32(1.0 / 720.0)
    q = q * r + _F32(1.0 / 120.0)
    q = q * r + _F32(1.0 / 24.0)
    q = q * r + _F32(1.0 / 6.0)
    q = q * r + _F32(0.5)
    q = q * r + _F32(1.0)
    q = q * r
    u = (s1 * (q + _F32(1.0))) * s2  # two halves of 2**k: subnormal results come out right
    s = s1 * s2
    em = s * q + (s - _F32(1.0))
    return em, u


@njit(**INLINE)
def _expm1_exp64(z):
    """float64 ``_expm1_exp32``: the reduction of ``_math.exp64``, ``q =
    expm1(r)`` by its Taylor polynomial through ``r**13`` (truncation < 5e-18
    relative), ``exp(z) = 2**k (1 + q)``, ``expm1(z) = 2**k q + (2**k - 1)``."""
    zc = z
    if zc < _F64(-746.0):
        zc = _F64(-746.0)
    t, r, s1, s2 = exp_reduce64(zc)
    q = expm1_poly64(r)
    u = _scale_half(q + _F64(1.0), t) * s2
    s = s1 * s2  # 2**k (0 below 2**-1074: expm1 is -1 there)
    em = s * q + (s - _F64(1.0))
    return em, u


def _expm1_exp(z):
    return math.expm1(z), math.exp(z)


@overload(_expm1_exp, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_expm1_exp(z):
    if z == types.float32:
        return lambda z: _expm1_exp32(z)
    if z == types.float64:
        return lambda z: _expm1_exp64(z)
    return lambda z: (math.expm1(z), math.exp(z))


@njit(**INLINE)
def _logcosh_parts(e):
    """(|e|, u = exp(-2|e|), tanh(e)), tanh = -expm1(-2|e|) / (2 + expm1(-2|e|))
    (full relative precision for small |e|, where 1 - u would cancel)."""
    ae = abs(e)
    em, u = _expm1_exp(lit(e, -2.0) * ae)
    t = -em / (lit(e, 2.0) + em)
    if e < lit(e, 0.0):
        t = -t
    return ae, u, t


@njit(**INLINE)
def _e_log_cosh(y, p, eps, ome, alpha, gamma, flag):
    """Keras' value |e| + log1p(u) - log 2 for |e| >= 0.625; below, the same
    function as -log1p(-tanh(e)**2) / 2, which keeps full relative precision
    where the first form cancels (one log1p either way)."""
    ae, u, t = _logcosh_parts(p - y)
    small = ae < lit(p, 0.625)
    arg = u
    if small:
        arg = -(t * t)
    lg = flog1p_small(arg)  # arg in [-tanh(0.625)**2, exp(-1.25)]
    l = ae + lg - lit(p, 0.6931471805599453)
    if small:
        l = lit(p, -0.5) * lg
    return l, t


@njit(**INLINE)
def _e_hinge(y, p, eps, ome, alpha, gamma, flag):
    m = lit(p, 1.0) - y * p
    l = m
    if m < lit(p, 0.0):
        l = lit(p, 0.0)
    g = -y
    if not m >= lit(p, 0.0):
        g = lit(p, 0.0)
    return l, g


@njit(**INLINE)
def _e_squared_hinge(y, p, eps, ome, alpha, gamma, flag):
    m = lit(p, 1.0) - y * p
    mc = m
    if m < lit(p, 0.0):
        mc = lit(p, 0.0)
    g = lit(p, -2.0) * y * mc
    if not m >= lit(p, 0.0):  # TF: no gradient through max(NaN, 0)
        g = lit(p, 0.0)
    return mc * mc, g


# Flat loops (one per loss; see crossentropy.py): element losses into lbuf,
# gradients times sc into gf. Hinge losses apply the label map y * a + b.
@njit(**INLINE)
def _flat_mse(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_mse(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_mae(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_mae(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_mape(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_mape(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_msle(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_msle(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_huber(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_huber(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_log_cosh(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_log_cosh(yt[t], yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_hinge(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_hinge(yt[t] * a + b, yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**INLINE)
def _flat_squared_hinge(yt, yp, gf, lbuf, a, b, eps, ome, alpha, gamma, flag, sc):
    for t in range(yp.shape[0]):
        lbuf[t], g = _e_squared_hinge(yt[t] * a + b, yp[t], eps, ome, alpha, gamma, flag)
        gf[t] = g * sc


@njit(**JIT)
def mse_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return elementwise_rows(_flat_mse, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def mae_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return elementwise_rows(_flat_mae, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def mape_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return elementwise_rows(_flat_mape, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def msle_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()  # exp/log per element: see crossentropy.bce_rows
    return elementwise_rows(_flat_msle, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def huber_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return elementwise_rows(_flat_huber, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def log_cosh_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    wide_vectors()  # exp/log per element: see crossentropy.bce_rows
    return elementwise_rows(_flat_log_cosh, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def hinge_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return elementwise_rows(_flat_hinge, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def squared_hinge_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return elementwise_rows(_flat_squared_hinge, True, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


# ----------------------------------------------------------------------------
# Hinge label map: a batch-wide scan of y_true (Keras converts {0, 1} labels to
# {-1, 1} only when EVERY label of the batch is 0 or 1).
# ----------------------------------------------------------------------------


@njit(**INLINE)
def _count_nonbinary(ytf, lo, hi):
    """Number of values in ytf[lo:hi] that are neither 0 nor 1 (blocks of 4096
    vectorized, stopping at the first block that has one)."""
    zero = lit(ytf[0], 0.0)
    one = lit(ytf[0], 1.0)
    s0 = lo
    while s0 < hi:
        s1 = min(hi, s0 + 4096)
        v = ytf[s0:s1]
        n = 0
        for t in range(v.shape[0]):
            x = v[t]
            if x != zero and x != one:
                n += 1
        if n:
            return n
        s0 = s1
    return 0


@njit(**INLINE)
def _hinge_prm(prm, binary):
    p2 = prm.copy()
    if binary:
        p2[P_LS_A] = lit(prm[0], 2.0)
        p2[P_LS_B] = lit(prm[0], -1.0)
    else:
        p2[P_LS_A] = lit(prm[0], 1.0)
        p2[P_LS_B] = lit(prm[0], 0.0)
    return p2


@njit(**INLINE)
def _hinge_prm_par(yt, prm, nch):
    ytf = yt.reshape(yt.size)
    n = ytf.shape[0]
    bad = np.zeros(nch, np.int64)
    for c in prange(nch):
        lo, hi = chunk(c, nch, n)
        bad[c] = _count_nonbinary(ytf, lo, hi)
    return _hinge_prm(prm, bad.sum() == 0)


@njit(**JIT)
def hinge_serial(yt, yp, prm, w, ws, loss, grad, want_grad):
    p2 = _hinge_prm(prm, _count_nonbinary(yt.reshape(yt.size), 0, yt.size) == 0)
    return hinge_rows(yt, yp, p2, w, ws, loss, grad, want_grad, 0, yp.shape[0])


@njit(**PJIT)
def hinge_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    p2 = _hinge_prm_par(yt, prm, nch)
    return par(hinge_rows, yt, yp, p2, w, ws, loss, grad, want_grad, nch)


@njit(**JIT)
def squared_hinge_serial(yt, yp, prm, w, ws, loss, grad, want_grad):
    p2 = _hinge_prm(prm, _count_nonbinary(yt.reshape(yt.size), 0, yt.size) == 0)
    return squared_hinge_rows(yt, yp, p2, w, ws, loss, grad, want_grad, 0, yp.shape[0])


@njit(**PJIT)
def squared_hinge_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    p2 = _hinge_prm_par(yt, prm, nch)
    return par(squared_hinge_rows, yt, yp, p2, w, ws, loss, grad, want_grad, nch)


# ----------------------------------------------------------------------------
# Row losses
# ----------------------------------------------------------------------------


@njit(**JIT)
def cosine_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """Keras: ``-sum(l2n(y) l2n(p))``, ``l2n(x) = x min(rsqrt(sum x**2), 1/eps)``.

    With ``a = min(rsqrt(sum p**2), 1/eps)``, ``r = min(rsqrt(sum y**2), 1/eps)``,
    ``c = a r sum(y p)`` (the cosine): loss = ``-c``;
    d/dp_j = ``a (c a p_j - r y_j)`` where ``rsqrt(sum p**2) <= 1/eps``, and
    ``-a r y_j`` where the norm is below eps (``a`` is then the constant 1/eps,
    TF's gradient there, a zero vector included).
    """
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    inv_eps = one / prm[P_EPS]
    eps2 = prm[P_EPS] * prm[P_EPS]
    tot = 0.0
    for i in range(lo, hi):
        syy = zero
        spp = zero
        syp = zero
        for j in range(K):
            y = yt[i, j]
            p = yp[i, j]
            syy += y * y
            spp += p * p
            syp += y * p
        # min(rsqrt(s), 1/eps) as "s < eps**2": 1/sqrt(0) may be computed as a
        # refined rsqrt (afn), which gives NaN, not inf, at 0
        r = one / np.sqrt(syy)
        if syy < eps2:
            r = inv_eps
        a = one / np.sqrt(spp)
        small = spp < eps2
        if small:
            a = inv_eps
        c = (a * r) * syp
        loss[i] = -c
        tot += np.float64(-c) * np.float64(w[i * ws])
        if want_grad:
            sc = w[i * ws] * prm[F_SCALE] * a
            k = c * a
            if small:
                k = zero
            ks = k * sc
            rs = r * sc
            for j in range(K):
                grad[i, j] = ks * yp[i, j] - rs * yt[i, j]
    return 0, -1, tot


@njit(**INLINE)
def _hinge_pq(y, p, one, zero):
    """Row terms of the categorical hinge: ``y p`` and ``q = (1 - y) p``, each
    exactly 0 where its factor is (``y = 0``, ``y = 1``), as its limit is for
    any score: an infinite score on a class makes no ``0 * inf`` NaN (Keras'
    formula does). A NaN ``q`` (a NaN input) gets its sign bit cleared so that
    the key max below keeps it."""
    yp = y * p if y != zero else zero
    q = _hinge_q(y, p, one, zero)
    q = q if q == q else abs(q)
    return yp, q


@njit(**INLINE)
def _hinge_q(y, p, one, zero):
    """``q`` of ``_hinge_pq`` as it is, where only its equality to the max matters."""
    return (one - y) * p if y != one else zero


@njit(**JIT)
def categorical_hinge_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """Keras: ``max(neg - pos + 1, 0)``, ``pos = sum(y p)``, ``neg = max((1 - y) p)``.

    TF's gradient: where ``neg - pos + 1 >= 0`` (ties go to the first argument
    of maximum), ``d/dp_j = (1 - y_j) [q_j == neg] / n_ties - y_j`` with
    ``q = (1 - y) p`` (reduce_max splits its gradient evenly between ties).
    The max is an integer reduction on order-preserving keys (vectorizes).
    Terms whose factor is 0 are 0 (``_hinge_pq``): the limits at infinite
    scores (a true class at -inf: +inf; a wrong one at -inf: no effect).
    """
    R, K = yp.shape
    zero = prm[0] - prm[0]
    one = zero + lit(zero, 1.0)
    tot = 0.0
    for i in range(lo, hi):
        pos = zero
        m = fkey(_hinge_pq(yt[i, 0], yp[i, 0], one, zero)[1])
        for j in range(K):
            a, q = _hinge_pq(yt[i, j], yp[i, j], one, zero)
            pos += a
            v = fkey(q)
            m = v if v > m else m
        neg = funkey(m, zero)
        d = neg - pos + one
        li = d
        if d < zero:
            li = zero
        loss[i] = li
        tot += np.float64(li) * np.float64(w[i * ws])
        if want_grad:
            sc = w[i * ws] * prm[F_SCALE]
            if d >= zero:
                cnt = zero
                for j in range(K):
                    q = _hinge_q(yt[i, j], yp[i, j], one, zero)
                    cnt += one if q == neg else zero
                r = sc / cnt
                for j in range(K):
                    y = yt[i, j]
                    q = _hinge_q(y, yp[i, j], one, zero)
                    gj = -y * sc
                    if q == neg:
                        gj += (one - y) * r
                    grad[i, j] = gj
            else:
                for j in range(K):
                    grad[i, j] = zero
    return 0, -1, tot


# ----------------------------------------------------------------------------
# Parallel drivers and registry entry points
# ----------------------------------------------------------------------------


@njit(**PJIT)
def mse_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(mse_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def mae_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(mae_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def mape_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(mape_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def msle_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(msle_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def huber_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(huber_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def log_cosh_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(log_cosh_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def cosine_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(cosine_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def categorical_hinge_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return par(categorical_hinge_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


def _entry_scan(serial, parallel, name):
    """Entry point of the hinge losses (the label scan happens inside)."""

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        if nch == 1:
            return (serial(yt, yp, prm, w, ws, loss, grad, want_grad),)
        return parallel(yt, yp, prm, w, ws, loss, grad, want_grad, nch)

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


mse = entry(mse_rows, mse_par, "mse")
mae = entry(mae_rows, mae_par, "mae")
mape = entry(mape_rows, mape_par, "mape")
msle = entry(msle_rows, msle_par, "msle")
huber = entry(huber_rows, huber_par, "huber")
log_cosh = entry(log_cosh_rows, log_cosh_par, "log_cosh")
hinge = _entry_scan(hinge_serial, hinge_par, "hinge")
squared_hinge = _entry_scan(squared_hinge_serial, squared_hinge_par, "squared_hinge")
cosine_similarity = entry(cosine_rows, cosine_par, "cosine_similarity")
categorical_hinge = entry(categorical_hinge_rows, categorical_hinge_par, "categorical_hinge")


# ----------------------------------------------------------------------------
# grad_hess kernels on _common.py's elementwise_gh_rows: element functions
# (y, p, eps, ome, alpha, gamma, flag) -> (dl/dp, d2l/dp2) of the element loss;
# the driver scales by w_i * prm[F_SCALE] / K (F_SCALE is 1 from _core.grad_hess).
# ----------------------------------------------------------------------------


@njit(**INLINE)
def _gh_mse(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    return e + e, lit(p, 2.0)


@njit(**INLINE)
def _gh_mae(y, p, eps, ome, alpha, gamma, flag):
    return _sign(p - y), lit(p, 0.0)


@njit(**INLINE)
def _gh_mape(y, p, eps, ome, alpha, gamma, flag):
    return _sign(p - y) * _mape_scale(y, eps), lit(p, 0.0)


@njit(**INLINE)
def _gh_msle(y, p, eps, ome, alpha, gamma, flag):
    d, r, clipped = _msle_parts(y, p, eps)
    g = (d + d) * r
    h = lit(p, 2.0) * (lit(p, 1.0) - d) * (r * r)
    if clipped:
        g = lit(p, 0.0)
        h = lit(p, 0.0)
    return g, h


@njit(**INLINE)
def _gh_huber(y, p, eps, ome, alpha, gamma, flag):
    e = p - y
    g = e
    h = lit(p, 1.0)
    if e > alpha:
        g = alpha
        h = lit(p, 0.0)
    if e < -alpha:
        g = -alpha
        h = lit(p, 0.0)
    return g, h


@njit(**INLINE)
def _gh_log_cosh(y, p, eps, ome, alpha, gamma, flag):
    ae, u, t = _logcosh_parts(p - y)
    v = lit(p, 1.0) + u
    return t, lit(p, 4.0) * u / (v * v)


@njit(**INLINE)
def _gh_hinge(y, p, eps, ome, alpha, gamma, flag):
    m = lit(p, 1.0) - y * p
    g = -y
    if not m >= lit(p, 0.0):
        g = lit(p, 0.0)
    return g, lit(p, 0.0)


@njit(**INLINE)
def _gh_squared_hinge(y, p, eps, ome, alpha, gamma, flag):
    m = lit(p, 1.0) - y * p
    g = lit(p, -2.0) * y * m
    h = lit(p, 2.0) * y * y
    if not m >= lit(p, 0.0):
        g = lit(p, 0.0)
        h = lit(p, 0.0)
    return g, h


@njit(**JIT)
def mse_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    return elementwise_gh_rows(_gh_mse, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def mae_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    return elementwise_gh_rows(_gh_mae, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def mape_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    return elementwise_gh_rows(_gh_mape, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def msle_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    wide_vectors()  # exp/log per element: see crossentropy.bce_rows
    return elementwise_gh_rows(_gh_msle, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def huber_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    return elementwise_gh_rows(_gh_huber, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def log_cosh_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    wide_vectors()  # exp/log per element: see crossentropy.bce_rows
    return elementwise_gh_rows(_gh_log_cosh, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def hinge_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    return elementwise_gh_rows(_gh_hinge, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**JIT)
def squared_hinge_gh_rows(yt, yp, prm, w, ws, grad, hess, lo, hi):
    return elementwise_gh_rows(_gh_squared_hinge, True, yt, yp, prm, w, ws, grad, hess, lo, hi)


@njit(**PJIT)
def mse_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(mse_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def mae_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(mae_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def mape_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(mape_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def msle_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(msle_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def huber_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(huber_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


@njit(**PJIT)
def log_cosh_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    return par_gh(log_cosh_gh_rows, yt, yp, prm, w, ws, grad, hess, nch)


# Hinge: the batch-wide label scan first, then the rows with the label map.
@njit(**JIT)
def hinge_gh_serial(yt, yp, prm, w, ws, grad, hess):
    p2 = _hinge_prm(prm, _count_nonbinary(yt.reshape(yt.size), 0, yt.size) == 0)
    return hinge_gh_rows(yt, yp, p2, w, ws, grad, hess, 0, yp.shape[0])


@njit(**PJIT)
def hinge_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    p2 = _hinge_prm_par(yt, prm, nch)
    return par_gh(hinge_gh_rows, yt, yp, p2, w, ws, grad, hess, nch)


@njit(**JIT)
def squared_hinge_gh_serial(yt, yp, prm, w, ws, grad, hess):
    p2 = _hinge_prm(prm, _count_nonbinary(yt.reshape(yt.size), 0, yt.size) == 0)
    return squared_hinge_gh_rows(yt, yp, p2, w, ws, grad, hess, 0, yp.shape[0])


@njit(**PJIT)
def squared_hinge_gh_par(yt, yp, prm, w, ws, grad, hess, nch):
    p2 = _hinge_prm_par(yt, prm, nch)
    return par_gh(squared_hinge_gh_rows, yt, yp, p2, w, ws, grad, hess, nch)


def _entry_gh_scan(serial, parallel, name):
    def kernel(yt, yp, prm, w, ws, grad, hess, nch):
        if nch == 1:
            return (serial(yt, yp, prm, w, ws, grad, hess),)
        return parallel(yt, yp, prm, w, ws, grad, hess, nch)

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


mse_gh = entry_gh(mse_gh_rows, mse_gh_par, "mse_gh")
mae_gh = entry_gh(mae_gh_rows, mae_gh_par, "mae_gh")
mape_gh = entry_gh(mape_gh_rows, mape_gh_par, "mape_gh")
msle_gh = entry_gh(msle_gh_rows, msle_gh_par, "msle_gh")
huber_gh = entry_gh(huber_gh_rows, huber_gh_par, "huber_gh")
log_cosh_gh = entry_gh(log_cosh_gh_rows, log_cosh_gh_par, "log_cosh_gh")
hinge_gh = _entry_gh_scan(hinge_gh_serial, hinge_gh_par, "hinge_gh")
squared_hinge_gh = _entry_gh_scan(squared_hinge_gh_serial, squared_hinge_gh_par, "squared_hinge_gh")
