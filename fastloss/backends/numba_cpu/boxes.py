"""Bounding-box losses on the Numba CPU backend: IoU, GIoU (TF Addons),
DIoU, CIoU (torchvision's values).

Kernel contract (every family)::

    kernel(y_true, y_pred, prm, w, ws, loss, grad, want_grad, nch) -> info

``y_true`` ``(Rt, 4)`` and ``y_pred`` ``(Rp, 4)`` hold one box per row; ``Rt``
and ``Rp`` are each either ``R = loss.shape[0]`` or 1 (a single box broadcast
against all R rows, read in place, never copied). ``grad`` has y_pred's rows:
``(R, 4)``, or, where y_pred is one broadcast box, ``(nch, 4)``: chunk ``c``
writes the sum of its rows' gradients into ``grad[c]`` (float64 sums), the
caller adds the chunks. ``prm[P_FLAG]`` is the box format code (below),
``prm[P_EPS]`` the eps of DIoU/CIoU (1e-7). ``info``: one
``(0, -1, sum_i loss_i w_i)`` row per chunk (float64 total).

The math lives in small inline helpers (``_corners``, ``_box_loss``,
``_back``) that the CUDA and C twins can mirror line by line. Per row, with
the predicted box's corners ``(a0, b0, a1, b1)`` and the true box's
``(A0, B0, A1, B1)`` (``a`` is the first coordinate axis: y for TFA's
``yxyx``, x for the other formats; the losses are symmetric in the two axes
except CIoU's angle at point boxes, which is why CIoU is told which is x):

(1) extents   ``wa = max(0, a1 - a0)``, ``wb = max(0, b1 - b0)`` (TFA clamps; so
              do DIoU/CIoU here); areas ``wa wb``, ``Wa Wb``
(2) inter     ``I = max(0, min(a1, A1) - max(a0, A0)) * max(0, min(b1, B1) - max(b0, B0))``
(3) union     ``U = wa wb + Wa Wb - I``
(4) enclosure ``ea = max(0, max(a1, A1) - min(a0, A0))``, ``eb`` alike; ``C = ea eb``
(5) IoU       TFA: ``iou = I / U`` (0 where U == 0);  DIoU/CIoU (torchvision):
              ``iou = I / (U + eps)``
(6) losses    iou  ``1 - iou``;  giou ``1 - iou + (C - U) / C`` (the last term 0
              where C == 0);  diou ``1 - iou + rho2 / c2`` with
              ``rho2 = ((a0 + a1 - A0 - A1)**2 + (b0 + b1 - B0 - B1)**2) / 4``
              (squared distance of the centres) and ``c2 = dea**2 + deb**2 + eps``,
              ``dea = max(a1, A1) - min(a0, A0)`` unclamped (torchvision's diagonal);
              ciou ``diou + alpha v``, ``v = 4/pi**2 (atan2(W, H) - atan2(w, h))**2``
              (w, h: the clamped x and y extents, torchvision's atan(w / h)),
              ``alpha = v / (1 - iou + v + eps)``
(7) gradient  d loss / d y_pred by reverse mode through (1)-(6) with TF's
              conventions: ``max(x, y)`` passes the gradient to ``x`` where
              ``x >= y`` and ``min`` where ``x <= y`` (the predicted box is the
              first argument, as in TFA's code), ``max(0, d)`` passes it to ``d``
              only where ``d > 0``, a ``divide_no_nan`` whose divisor is 0 passes
              none. CIoU's ``alpha`` is a constant (torchvision computes it under
              ``no_grad``); ``atan2(0, 0)`` is 0 with gradient 0. float32
              atan2 is a vectorizable polynomial (``_atan2_pos32``, ~1 ulp);
              float64 calls libm.

A NaN coordinate makes its row's area NaN (the clamps are written
``0 if d < 0 else d``, which keep NaN), hence its loss; other rows are
untouched. Limit: boxes so small that an area (or the enclosure's area) is a
subnormal number -- extents below about 1e-19 in float32, 1e-154 in float64 --
overflow the reciprocals ``1 / U``, ``1 / C`` and can give inf/NaN.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from ..._config import FASTMATH
from ._common import F_SCALE, INLINE, JIT, P_EPS, P_FLAG, PJIT, chunk
from ._math import lit

# Box formats: prm[P_FLAG] is the index in fastloss._validate.BOX_FORMATS
# ("yxyx", "xyxy", "xywh", "cxcywh"). Each maps the four numbers u0..u3 of a
# row to the corners lo = (u0, u1) + p (u2, u3), hi = q (u0, u1) + r (u2, u3).

IOU, GIOU, DIOU, CIOU = 0, 1, 2, 3

_FOUR_OVER_PI2 = 4.0 / (math.pi * math.pi)


@njit(**INLINE)
def _pos(d):
    """max(0, d), NaN kept."""
    z = lit(d, 0.0)
    return z if d < z else d


@njit(**INLINE)
def _fmt_coef(flag):
    """(p, q, r) of the format code ``flag`` (a float in prm)."""
    z = flag - flag
    p = z
    q = z
    r = z + lit(flag, 1.0)
    if flag == lit(flag, 2.0):  # xywh
        q = z + lit(flag, 1.0)
    if flag == lit(flag, 3.0):  # cxcywh
        p = lit(flag, -0.5)
        q = z + lit(flag, 1.0)
        r = lit(flag, 0.5)
    return p, q, r


@njit(**INLINE)
def _corners(u0, u1, u2, u3, p, q, r):
    """(lo_a, lo_b, hi_a, hi_b) of a row in the format (p, q, r)."""
    return u0 + p * u2, u1 + p * u3, q * u0 + r * u2, q * u1 + r * u3


# atan(u) / u ~ sum c_k u**(2k) on |u| <= tan(pi/8): a polynomial fitted here
# (least squares on Chebyshev nodes, reweighted toward minimax; max relative
# error 1.9e-8 in float64 arithmetic, 1.2e-7 = about 1 ulp in float32).
_ATAN_C = (0.999999982544071, -0.3333280855833689, 0.19974738193093208, -0.13854566186053255, 0.07993926392536724)
_TAN_PI_8 = 0.41421356237309503
_F32 = np.float32


@njit(**INLINE)
def _atan2_pos32(y, x):
    """float32 ``atan2(y, x)`` for ``x, y >= 0`` (box extents), in [0, pi/2],
    with arithmetic and selects only, so that the loop around it vectorizes
    (Numba has no vector atan2). ``t = min/max`` in [0, 1]; above tan(pi/8)
    ``u = (t - 1) / (t + 1)`` and pi/4 is added; ``atan(u) = u P(u**2)``;
    ``pi/2 - a`` where y > x. ``atan2(0, 0) = 0``; NaN stays NaN."""
    zero = _F32(0.0)
    swap = y > x
    mx = y if swap else x
    mn = x if swap else y
    t = mn / (mx if mx > zero else _F32(1.0))
    big = t > _F32(_TAN_PI_8)
    u = (t - _F32(1.0)) / (t + _F32(1.0)) if big else t
    z = u * u
    p = _F32(_ATAN_C[4])
    p = p * z + _F32(_ATAN_C[3])
    p = p * z + _F32(_ATAN_C[2])
    p = p * z + _F32(_ATAN_C[1])
    p = p * z + _F32(_ATAN_C[0])
    a = p * u + (_F32(math.pi / 4) if big else zero)
    a = _F32(math.pi / 2) - a if swap else a
    return a if mx != zero else zero


def _atan2(y, x):
    return math.atan2(y, x)


@overload(_atan2, inline="always", jit_options={"fastmath": FASTMATH, "error_model": "numpy"})
def _ov_atan2(y, x):
    """float32: the vectorizable ``_atan2_pos32``; float64: libm's atan2 (the accuracy path)."""
    if y == types.float32:
        return lambda y, x: _atan2_pos32(y, x)
    return lambda y, x: math.atan2(y, x)


@njit(**INLINE)
def _atan2_grad(y, x):
    """d atan2(y, x) / dy, / dx: (x, -y) / (x**2 + y**2); 0 at the origin."""
    r2 = x * x + y * y
    z = lit(x, 0.0)
    inv = z if r2 == z else lit(x, 1.0) / r2
    return x * inv, -y * inv


@njit(**INLINE)
def _box_loss(kind, a0, b0, a1, b1, A0, B0, A1, B1, eps, xfirst):
    """Loss of one pair of boxes (corners) and its gradient w.r.t. the
    predicted corners: ``(loss, d/da0, d/db0, d/da1, d/db1)``. ``kind`` is a
    compile-time constant (IOU, GIOU, DIOU, CIOU); ``xfirst``: the ``a`` axis
    is x (every format but yxyx), which only CIoU's angle ``atan2(w, h)``
    needs (``atan2(0, 0) = 0`` breaks its symmetry between the axes)."""
    z = lit(a0, 0.0)
    one = lit(a0, 1.0)
    # (1) extents and areas
    da = a1 - a0
    db = b1 - b0
    wa = _pos(da)
    wb = _pos(db)
    Wa = _pos(A1 - A0)
    Wb = _pos(B1 - B0)
    # (2) intersection; k*: does the predicted corner win the max/min (TF ties)
    ka0 = a0 >= A0
    kb0 = b0 >= B0
    ka1 = a1 <= A1
    kb1 = b1 <= B1
    dia = (a1 if ka1 else A1) - (a0 if ka0 else A0)
    dib = (b1 if kb1 else B1) - (b0 if kb0 else B0)
    iwa = _pos(dia)
    iwb = _pos(dib)
    inter = iwa * iwb
    # (3) union
    union = wa * wb + Wa * Wb - inter
    # (4) enclosure
    ca0 = a0 <= A0
    cb0 = b0 <= B0
    ca1 = a1 >= A1
    cb1 = b1 >= B1
    dea = (a1 if ca1 else A1) - (a0 if ca0 else A0)
    deb = (b1 if cb1 else B1) - (b0 if cb0 else B0)
    ewa = _pos(dea)
    ewb = _pos(deb)
    # (5) IoU and the adjoints dL/dinter, dL/dunion, dL/d(ea), dL/d(eb)
    if kind == IOU or kind == GIOU:
        ru = z if union == z else one / union
    else:
        ru = one / (union + eps)
    iou = inter * ru
    loss = one - iou
    g_inter = -ru
    g_union = inter * ru * ru
    g_ea = z
    g_eb = z
    g_dea = z
    g_deb = z
    g_wa = z
    g_wb = z
    g_sa = z
    g_sb = z
    sa = z
    sb = z
    if kind == GIOU:
        encl = ewa * ewb
        re = z if encl == z else one / encl
        loss = loss + (encl - union) * re
        g_union = g_union - re
        g_encl = union * re * re
        g_ea = g_encl * ewb
        g_eb = g_encl * ewa
    if kind == DIOU or kind == CIOU:
        sa = (a0 + a1) - (A0 + A1)
        sb = (b0 + b1) - (B0 + B1)
        rho2 = lit(a0, 0.25) * (sa * sa + sb * sb)
        # torchvision's diagonal: the enclosure's extents unclamped (squared)
        rc = one / (dea * dea + deb * deb + eps)
        t = rho2 * rc
        loss = loss + t
        g_c2 = -t * rc
        g_dea = lit(a0, 2.0) * dea * g_c2
        g_deb = lit(a0, 2.0) * deb * g_c2
        g_sa = lit(a0, 0.5) * sa * rc  # d(rho2/c2)/d a0 = d/d a1
        g_sb = lit(a0, 0.5) * sb * rc
    if kind == CIOU:
        # atan(w / h): w the x extent, h the y extent
        tw = Wa if xfirst else Wb
        th = Wb if xfirst else Wa
        pw = wa if xfirst else wb
        ph = wb if xfirst else wa
        d_phi = _atan2(tw, th) - _atan2(pw, ph)
        v = lit(a0, _FOUR_OVER_PI2) * d_phi * d_phi
        alpha = v / (one - iou + v + eps)
        loss = loss + alpha * v
        # dL/dphi_pred = alpha dv/dphi_pred = -2 alpha 4/pi**2 d_phi
        g_phi = lit(a0, -2.0 * _FOUR_OVER_PI2) * alpha * d_phi
        dpw, dph = _atan2_grad(pw, ph)
        g_wa = g_phi * (dpw if xfirst else dph)
        g_wb = g_phi * (dph if xfirst else dpw)
    # area_pred = wa wb enters the union; inter enters it with a minus
    g_wa = g_wa + g_union * wb
    g_wb = g_wb + g_union * wa
    g_inter = g_inter - g_union
    g_ia = g_inter * iwb
    g_ib = g_inter * iwa
    # clamps: d > 0 passes the gradient
    g_wa = g_wa if da > z else z
    g_wb = g_wb if db > z else z
    g_ia = g_ia if dia > z else z
    g_ib = g_ib if dib > z else z
    g_ea = (g_ea if dea > z else z) + g_dea
    g_eb = (g_eb if deb > z else z) + g_deb
    # to the corners: extent (a1 - a0), intersection (min - max), enclosure (max - min)
    ga0 = -g_wa + g_sa - (g_ia if ka0 else z) - (g_ea if ca0 else z)
    ga1 = g_wa + g_sa + (g_ia if ka1 else z) + (g_ea if ca1 else z)
    gb0 = -g_wb + g_sb - (g_ib if kb0 else z) - (g_eb if cb0 else z)
    gb1 = g_wb + g_sb + (g_ib if kb1 else z) + (g_eb if cb1 else z)
    return loss, ga0, gb0, ga1, gb1


@njit(**INLINE)
def _back(ga0, gb0, ga1, gb1, p, q, r):
    """Corner gradients -> gradients of the row's four numbers (format p, q, r)."""
    return ga0 + q * ga1, gb0 + q * gb1, p * ga0 + r * ga1, p * gb0 + r * gb1


@njit(**INLINE)
def _row(kind, yt, i, yp, j, p, q, r, eps, xfirst):
    """Loss and the four input-order gradients of the true box at flat offset
    ``i`` and the predicted box at ``j`` (flat arrays: a constant stride of 4
    lets LLVM vectorize the loads; 2-D indexing multiplies by a run-time row
    length and does not)."""
    A0, B0, A1, B1 = _corners(yt[i], yt[i + 1], yt[i + 2], yt[i + 3], p, q, r)
    a0, b0, a1, b1 = _corners(yp[j], yp[j + 1], yp[j + 2], yp[j + 3], p, q, r)
    l, ga0, gb0, ga1, gb1 = _box_loss(kind, a0, b0, a1, b1, A0, B0, A1, B1, eps, xfirst)
    g0, g1, g2, g3 = _back(ga0, gb0, ga1, gb1, p, q, r)
    return l, g0, g1, g2, g3


@njit(**INLINE)
def _fast(kind, ys, ps, gs, ls, wr, sc, p, q, r, eps, xfirst):
    """Rows of one block: contiguous true/pred boxes, per-row weights, gradient
    rows; the one loop of each kernel (LLVM vectorizes it)."""
    yf = ys.reshape(ys.size)
    pf = ps.reshape(ps.size)
    gf = gs.reshape(gs.size)
    tot = 0.0
    for i in range(ls.shape[0]):
        k = 4 * i
        l, g0, g1, g2, g3 = _row(kind, yf, k, pf, k, p, q, r, eps, xfirst)
        ls[i] = l
        wi = wr[i]
        tot += np.float64(l) * np.float64(wi)
        s = sc * wi
        gf[k] = g0 * s
        gf[k + 1] = g1 * s
        gf[k + 2] = g2 * s
        gf[k + 3] = g3 * s
    return tot


# Rows per block: the scratch buffers (a broadcast box repeated, a unit weight
# repeated, a gradient block that is thrown away or summed) stay in L1.
BLOCK_ROWS = 512


@njit(**INLINE)
def box_rows(kind, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    """Rows [lo, hi) of loss ``kind``; see the module docstring for shapes.

    Every case runs the same vectorized block loop ``_fast``: a broadcast box
    (y_true or y_pred with one row) is repeated into an L1-sized scratch block,
    a single weight likewise; without ``want_grad`` (or with a broadcast
    y_pred, whose gradient is the sum over rows) the gradient goes to a
    scratch block. Only one copy of the loop is compiled per kernel.
    """
    R = loss.shape[0]
    p, q, r = _fmt_coef(prm[P_FLAG])
    xfirst = prm[P_FLAG] != lit(prm[0], 0.0)  # every format but yxyx starts with x
    eps = prm[P_EPS]
    sc = prm[F_SCALE]
    tbc = yt.shape[0] != R
    pbc = yp.shape[0] != R
    nb = min(BLOCK_ROWS, max(hi - lo, 1))
    tbuf = np.empty((nb, 4), yp.dtype)
    pbuf = np.empty((nb, 4), yp.dtype)
    gbuf = np.empty((nb, 4), yp.dtype)
    wbuf = np.empty(nb, yp.dtype)
    if tbc:
        for i in range(nb):
            for j in range(4):
                tbuf[i, j] = yt[0, j]
    if pbc:
        for i in range(nb):
            for j in range(4):
                pbuf[i, j] = yp[0, j]
    if ws == 0:
        for i in range(nb):
            wbuf[i] = w[0]
    direct = want_grad and not pbc
    tot = 0.0
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    r0 = lo
    while r0 < hi:
        r1 = min(hi, r0 + nb)
        n = r1 - r0
        ys = tbuf[:n] if tbc else yt[r0:r1]
        ps = pbuf[:n] if pbc else yp[r0:r1]
        gs = grad[r0:r1] if direct else gbuf[:n]
        wr = w[r0:r1] if ws != 0 else wbuf[:n]
        tot += _fast(kind, ys, ps, gs, loss[r0:r1], wr, sc, p, q, r, eps, xfirst)
        if want_grad and pbc:
            for i in range(n):
                s0 += np.float64(gs[i, 0])
                s1 += np.float64(gs[i, 1])
                s2 += np.float64(gs[i, 2])
                s3 += np.float64(gs[i, 3])
        r0 = r1
    if want_grad and pbc:
        grad[0, 0] = s0
        grad[0, 1] = s1
        grad[0, 2] = s2
        grad[0, 3] = s3
    return 0, -1, tot


@njit(**INLINE)
def box_par(rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    """Chunks of rows in prange; a broadcast y_pred's chunk c sums into grad[c]."""
    info = np.zeros((nch, 3))
    R = loss.shape[0]
    pbc = yp.shape[0] != R
    for c in prange(nch):
        lo, hi = chunk(c, nch, R)
        g = grad[c : c + 1] if (pbc and want_grad) else grad[0 : grad.shape[0]]
        info[c, 0], info[c, 1], info[c, 2] = rows(yt, yp, prm, w, ws, loss, g, want_grad, lo, hi)
    return info


@njit(**JIT)
def iou_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return box_rows(IOU, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def giou_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return box_rows(GIOU, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def diou_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return box_rows(DIOU, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**JIT)
def ciou_rows(yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi):
    return box_rows(CIOU, yt, yp, prm, w, ws, loss, grad, want_grad, lo, hi)


@njit(**PJIT)
def iou_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return box_par(iou_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def giou_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return box_par(giou_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def diou_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return box_par(diou_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


@njit(**PJIT)
def ciou_par(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
    return box_par(ciou_rows, yt, yp, prm, w, ws, loss, grad, want_grad, nch)


def _entry(rows, par, name):
    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        if nch == 1:
            return (rows(yt, yp, prm, w, ws, loss, grad, want_grad, 0, loss.shape[0]),)
        return par(yt, yp, prm, w, ws, loss, grad, want_grad, nch)

    kernel.__name__ = kernel.__qualname__ = name
    return kernel


iou = _entry(iou_rows, iou_par, "iou")
giou = _entry(giou_rows, giou_par, "giou")
diou = _entry(diou_rows, diou_par, "diou")
ciou = _entry(ciou_rows, ciou_par, "ciou")
