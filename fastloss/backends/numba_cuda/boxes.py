"""Bounding-box losses on Numba CUDA: IoU, GIoU (TF Addons), DIoU, CIoU
(torchvision's values); the twin of ``numba_cpu/boxes.py``, whose module
docstring numbers the formulas (1)-(7) and the gradient conventions (TF's
ties for max/min, clamps pass the gradient only where positive, a
``divide_no_nan`` with a zero divisor passes none, CIoU's alpha a constant,
``atan2(0, 0) = 0`` with gradient 0). Here every step is a device function
line for line, in float64 arithmetic (accurate to rounding of the float32
result too).

One thread per box pair, grid-stride over rows. ``y_true``/``y_pred`` have
``R`` rows or 1 (a single box broadcast against all rows, read in place).
The kernel writes the loss, the gradient already scaled by ``w[i*ws] *
factor`` and adds ``sum(loss_i w_i)`` into ``tot[0]``; where ``y_pred`` is one
broadcast box its gradient is the sum over rows: per-block trees in shared
memory, then one float64 atomic per block and component into ``gsum``.
"""

import math

import numpy as np
from numba import cuda

from . import _streams
from ._launch import launch

from .crossentropy import _scratch
from .elementwise import _block_sum as _bsum

TPB = 256  # threads per block (a power of two); tests shrink it
MAX_TPB = 1024
MAX_BLOCKS = 1 << 16
IOU, GIOU, DIOU, CIOU = 0, 1, 2, 3
KINDS = {"iou": IOU, "giou": GIOU, "diou": DIOU, "ciou": CIOU}
_FOUR_OVER_PI2 = 4.0 / (math.pi * math.pi)


@cuda.jit(device=True, inline=True)
def _pos(d):
    return 0.0 if d < 0.0 else d


@cuda.jit(device=True, inline=True)
def _fmt_coef(flag):
    """(p, q, r) of the format code: lo = (u0, u1) + p (u2, u3), hi = q (u0, u1) + r (u2, u3)."""
    if flag == 2.0:  # xywh
        return 0.0, 1.0, 1.0
    if flag == 3.0:  # cxcywh
        return -0.5, 1.0, 0.5
    return 0.0, 0.0, 1.0  # yxyx, xyxy


@cuda.jit(device=True, inline=True)
def _atan2_grad(y, x):
    r2 = x * x + y * y
    inv = 0.0 if r2 == 0.0 else 1.0 / r2
    return x * inv, -y * inv


@cuda.jit(device=True, inline=True)
def _box_loss(kind, a0, b0, a1, b1, A0, B0, A1, B1, eps, xfirst):
    """(loss, d/da0, d/db0, d/da1, d/db1) of one pair of boxes (corners);
    ``xfirst``: the ``a`` axis is x (every format but yxyx), for CIoU's
    angle ``atan2(w, h)`` (torchvision's ``atan(w / h)``)."""
    da = a1 - a0
    db = b1 - b0
    wa = _pos(da)
    wb = _pos(db)
    Wa = _pos(A1 - A0)
    Wb = _pos(B1 - B0)
    ka0 = a0 >= A0
    kb0 = b0 >= B0
    ka1 = a1 <= A1
    kb1 = b1 <= B1
    dia = (a1 if ka1 else A1) - (a0 if ka0 else A0)
    dib = (b1 if kb1 else B1) - (b0 if kb0 else B0)
    iwa = _pos(dia)
    iwb = _pos(dib)
    inter = iwa * iwb
    union = wa * wb + Wa * Wb - inter
    ca0 = a0 <= A0
    cb0 = b0 <= B0
    ca1 = a1 >= A1
    cb1 = b1 >= B1
    dea = (a1 if ca1 else A1) - (a0 if ca0 else A0)
    deb = (b1 if cb1 else B1) - (b0 if cb0 else B0)
    ewa = _pos(dea)
    ewb = _pos(deb)
    if kind == IOU or kind == GIOU:
        ru = 0.0 if union == 0.0 else 1.0 / union
    else:
        ru = 1.0 / (union + eps)
    iou = inter * ru
    loss = 1.0 - iou
    g_inter = -ru
    g_union = inter * ru * ru
    g_ea = 0.0
    g_eb = 0.0
    g_dea = 0.0
    g_deb = 0.0
    g_wa = 0.0
    g_wb = 0.0
    g_sa = 0.0
    g_sb = 0.0
    if kind == GIOU:
        encl = ewa * ewb
        re = 0.0 if encl == 0.0 else 1.0 / encl
        loss = loss + (encl - union) * re
        g_union = g_union - re
        g_encl = union * re * re
        g_ea = g_encl * ewb
        g_eb = g_encl * ewa
    if kind == DIOU or kind == CIOU:
        sa = (a0 + a1) - (A0 + A1)
        sb = (b0 + b1) - (B0 + B1)
        rho2 = 0.25 * (sa * sa + sb * sb)
        rc = 1.0 / (dea * dea + deb * deb + eps)
        t = rho2 * rc
        loss = loss + t
        g_c2 = -t * rc
        g_dea = 2.0 * dea * g_c2
        g_deb = 2.0 * deb * g_c2
        g_sa = 0.5 * sa * rc
        g_sb = 0.5 * sb * rc
    if kind == CIOU:
        tw = Wa if xfirst else Wb
        th = Wb if xfirst else Wa
        pw = wa if xfirst else wb
        ph = wb if xfirst else wa
        d_phi = math.atan2(tw, th) - math.atan2(pw, ph)
        v = _FOUR_OVER_PI2 * d_phi * d_phi
        alpha = v / (1.0 - iou + v + eps)
        loss = loss + alpha * v
        g_phi = -2.0 * _FOUR_OVER_PI2 * alpha * d_phi
        dpw, dph = _atan2_grad(pw, ph)
        g_wa = g_phi * (dpw if xfirst else dph)
        g_wb = g_phi * (dph if xfirst else dpw)
    g_wa = g_wa + g_union * wb
    g_wb = g_wb + g_union * wa
    g_inter = g_inter - g_union
    g_ia = g_inter * iwb
    g_ib = g_inter * iwa
    g_wa = g_wa if da > 0.0 else 0.0
    g_wb = g_wb if db > 0.0 else 0.0
    g_ia = g_ia if dia > 0.0 else 0.0
    g_ib = g_ib if dib > 0.0 else 0.0
    g_ea = (g_ea if dea > 0.0 else 0.0) + g_dea
    g_eb = (g_eb if deb > 0.0 else 0.0) + g_deb
    ga0 = -g_wa + g_sa - (g_ia if ka0 else 0.0) - (g_ea if ca0 else 0.0)
    ga1 = g_wa + g_sa + (g_ia if ka1 else 0.0) + (g_ea if ca1 else 0.0)
    gb0 = -g_wb + g_sb - (g_ib if kb0 else 0.0) - (g_eb if cb0 else 0.0)
    gb1 = g_wb + g_sb + (g_ib if kb1 else 0.0) + (g_eb if cb1 else 0.0)
    return loss, ga0, gb0, ga1, gb1


def _make(kind):
    @cuda.jit
    def k(yt, yp, fac, eps, flag, w, ws, loss, grad, want_grad, tot, gsum):
        R = loss.shape[0]
        sh = cuda.shared.array(MAX_TPB, np.float64)
        p, q, r = _fmt_coef(flag)
        xfirst = flag != 0.0  # every format but yxyx starts with x
        tbc = yt.shape[0] != R
        pbc = yp.shape[0] != R
        part = 0.0
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for i in range(cuda.grid(1), R, cuda.gridsize(1)):
            it = 0 if tbc else i
            ip = 0 if pbc else i
            u0 = yt[it, 0]
            u1 = yt[it, 1]
            u2 = yt[it, 2]
            u3 = yt[it, 3]
            A0 = u0 + p * u2
            B0 = u1 + p * u3
            A1 = q * u0 + r * u2
            B1 = q * u1 + r * u3
            v0 = yp[ip, 0]
            v1 = yp[ip, 1]
            v2 = yp[ip, 2]
            v3 = yp[ip, 3]
            a0 = v0 + p * v2
            b0 = v1 + p * v3
            a1 = q * v0 + r * v2
            b1 = q * v1 + r * v3
            l, ga0, gb0, ga1, gb1 = _box_loss(kind, a0, b0, a1, b1, A0, B0, A1, B1, eps, xfirst)
            loss[i] = l
            wi = w[i * ws]
            part += l * wi
            if want_grad:
                s = wi * fac
                g0 = (ga0 + q * ga1) * s
                g1 = (gb0 + q * gb1) * s
                g2 = (p * ga0 + r * ga1) * s
                g3 = (p * gb0 + r * gb1) * s
                if pbc:
                    s0 += g0
                    s1 += g1
                    s2 += g2
                    s3 += g3
                else:
                    grad[i, 0] = g0
                    grad[i, 1] = g1
                    grad[i, 2] = g2
                    grad[i, 3] = g3
        part = _bsum(part, sh)
        if cuda.threadIdx.x == 0:
            cuda.atomic.add(tot, 0, part)
        if want_grad and pbc:
            s0 = _bsum(s0, sh)
            s1 = _bsum(s1, sh)
            s2 = _bsum(s2, sh)
            s3 = _bsum(s3, sh)
            if cuda.threadIdx.x == 0:
                cuda.atomic.add(gsum, 0, s0)
                cuda.atomic.add(gsum, 1, s1)
                cuda.atomic.add(gsum, 2, s2)
                cuda.atomic.add(gsum, 3, s3)

    return k


_KERNELS = {name: _make(code) for name, code in KINDS.items()}


@cuda.jit
def _reset(tot, gsum):
    tot[0] = 0.0
    for j in range(4):
        gsum[j] = 0.0


@cuda.jit
def _write_gsum(gsum, grad):
    for j in range(4):
        grad[0, j] = gsum[j]


def run(kind, yt, yp, prm, w, ws, loss, grad, want_grad, stream=0):
    """Launch box loss ``kind`` ("iou", "giou", "diou", "ciou") on device arrays.
    ``grad`` has y_pred's rows (one row where y_pred is broadcast). Returns
    the device array ``tot`` (``[sum(loss_i w_i)]``)."""
    try:
        kern = _KERNELS[kind]
    except KeyError:
        raise ValueError(f"no CUDA box kernel {kind!r}; known: {sorted(KINDS)}") from None
    tot = _scratch("tot", 1, np.float64, stream)
    gsum = _scratch("gsum", 4, np.float64, stream)
    launch(_reset, 1, 1, stream, tot, gsum)
    R = loss.shape[0]
    if R == 0:
        return tot
    tpb = TPB
    launch(kern, max(1, min((R + tpb - 1) // tpb, MAX_BLOCKS)), tpb, stream,
        yt, yp, float(prm[0]), float(prm[1]), float(prm[7]), w, ws, loss, grad, want_grad, tot, gsum
    )
    if want_grad and yp.shape[0] != R:
        launch(_write_gsum, 1, 1, stream, gsum, grad)
    return tot


def _host_entry(kind):
    """The registry's kernel contract for NumPy inputs under use_backend("cuda")."""

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        st, d_yt, d_yp, d_w, d_loss, d_grad = _streams.stage(yt, yp, w, loss, grad, want_grad)
        tot = run(kind, d_yt, d_yp, prm, d_w, ws, d_loss, d_grad, want_grad, st).copy_to_host(stream=st)
        d_loss.copy_to_host(loss, stream=st)
        if want_grad:
            if grad.shape[0] != yp.shape[0]:  # per-chunk rows of a broadcast y_pred: one chunk here
                grad[:] = 0.0
                grad[:1] = d_grad.copy_to_host(stream=st)[:1]
            else:
                d_grad.copy_to_host(grad, stream=st)
        _streams.sync(st)
        return ((0.0, -1.0, float(tot[0])),)

    kernel.__name__ = kernel.__qualname__ = f"{kind}_host"
    return kernel


for _k in KINDS:
    globals()[f"{_k}_host"] = _host_entry(_k)
del _k
