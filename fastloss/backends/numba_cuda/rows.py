"""Row losses on Numba CUDA: categorical cross-entropy on probabilities,
sparse categorical cross-entropy on probabilities, categorical focal
cross-entropy (probabilities or logits), cosine similarity and categorical
hinge. Each mirrors its Numba CPU twin (``numba_cpu/crossentropy.py``,
``numba_cpu/regression.py``: same clipping order, same gradient choices at
ties and clipped elements; the formulas are documented there).

One block per row (grid-stride over rows); the threads stride over the row
(coalesced) and the row's sums/maxima are combined by trees in shared memory,
so the kernels also run in the CUDA simulator. A row is read a few times
(statistics, loss, gradient); after the first pass it is in L2. The kernel
adds ``sum(loss_i w_i)`` into ``tot[0]`` (one atomic per block) and counts bad
labels into ``info`` as the cross-entropy kernels do.

First versions: correct (checked against the CPU backend in the simulator),
not yet tuned on a GPU (short rows leave most of a 32-thread block idle).
"""

import math

import numpy as np
from numba import cuda

from . import _streams
from ._launch import launch

from .crossentropy import _reset_info_tot, _skip_label_row, read_status, status
from .elementwise import _block_sum as _bsum
from .elementwise import _clip, _pow

TPB = 256  # threads per block (a power of two); tests shrink it
MAX_TPB = 1024
MAX_BLOCKS = 1 << 16


@cuda.jit(device=True, inline=True)
def _bmax(v, sh):
    """Block-wide max; a NaN anywhere gives NaN."""
    tid = cuda.threadIdx.x
    sh[tid] = v
    cuda.syncthreads()
    h = cuda.blockDim.x >> 1
    while h > 0:
        if tid < h:
            o = sh[tid + h]
            if o > sh[tid] or o != o:
                sh[tid] = o
        cuda.syncthreads()
        h >>= 1
    v = sh[0]
    cuda.syncthreads()
    return v


@cuda.jit(device=True, inline=True)
def _finish(i, li, wi, loss, part):
    if cuda.threadIdx.x == 0:
        loss[i] = li
        part += li * wi
    return part


@cuda.jit
def cce_probs(y, p, fac, eps, ome, a, b, alpha, gamma, flag, ignore, has_ignore, w, ws, loss, grad, want_grad, tot, info):
    """q = p / sum(p); c = clip(q); loss = -sum(y' log c);
    d/dp_j = (gq_j - sum_k gq_k q_k) / S, gq = -y'/c (0 where q was clipped)."""
    R, C = p.shape
    sh = cuda.shared.array(MAX_TPB, np.float64)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    part = 0.0
    for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        s = 0.0
        for j in range(t, C, nt):
            s += p[i, j]
        S = _bsum(s, sh)
        acc = 0.0
        dot = 0.0
        for j in range(t, C, nt):
            yy = y[i, j] * a + b
            q = p[i, j] / S
            qc = _clip(q, eps, ome)
            acc += yy * math.log(qc)
            if not (q < eps or q > ome):
                dot += -yy / qc * q
        acc = _bsum(acc, sh)
        wi = w[i * ws]
        part = _finish(i, -acc, wi, loss, part)
        if want_grad:
            dot = _bsum(dot, sh)
            r = wi * fac / S
            for j in range(t, C, nt):
                yy = y[i, j] * a + b
                q = p[i, j] / S
                gq = -yy / _clip(q, eps, ome)
                if q < eps or q > ome:
                    gq = 0.0
                grad[i, j] = (gq - dot) * r
    if t == 0:
        cuda.atomic.add(tot, 0, part)


@cuda.jit
def scce_probs(lab, p, fac, eps, ome, a, b, alpha, gamma, flag, ignore, has_ignore, w, ws, loss, grad, want_grad, tot, info):
    """TF: loss = log(sum(c)) - log(c_k), c = clip(p, eps, 1 - eps)."""
    R, C = p.shape
    sh = cuda.shared.array(MAX_TPB, np.float64)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    part = 0.0
    for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        if _skip_label_row(lab, i, C, ignore, has_ignore, t, nt, loss, grad, want_grad, info):
            continue
        k = lab[i]
        s = 0.0
        for j in range(t, C, nt):
            s += _clip(p[i, j], eps, ome)
        S = _bsum(s, sh)
        ck = _clip(p[i, k], eps, ome)
        wi = w[i * ws]
        part = _finish(i, math.log(S) - math.log(ck), wi, loss, part)
        if want_grad:
            sc = wi * fac
            r = sc / S
            for j in range(t, C, nt):
                v = p[i, j]
                g = r
                if v < eps or v > ome:
                    g = 0.0
                if j == k and not (v < eps or v > ome):
                    g -= sc / ck
                grad[i, j] = g
    if t == 0:
        cuda.atomic.add(tot, 0, part)


@cuda.jit(device=True, inline=True)
def _focal_gq(yy, q, eps, ome, alpha, gamma):
    """(element loss, d/dq) of alpha (1 - c)**gamma (-y' log c), c = clip(q)."""
    qc = _clip(q, eps, ome)
    lc = math.log(qc)
    f = _pow(1.0 - qc, gamma)
    l = alpha * f * (-yy * lc)
    df = -gamma * _pow(1.0 - qc, gamma - 1.0)
    gq = alpha * (df * (-yy * lc) + f * (-yy / qc))
    if q < eps or q > ome:
        gq = 0.0
    return l, gq


@cuda.jit
def categorical_focal(y, x, fac, eps, ome, a, b, alpha, gamma, flag, ignore, has_ignore, av, has_av, w, ws, loss, grad, want_grad, tot, info):
    """Keras: p = softmax(x) if logits (flag != 0) else x; q = p / sum(p);
    loss = sum_j alpha_j (1 - clip(q_j))**gamma (-y'_j log clip(q_j)), alpha_j
    = av[j] if has_av (per class) else alpha; the gradient goes back through
    the normalisation (and the softmax)."""
    R, C = x.shape
    sh = cuda.shared.array(MAX_TPB, np.float64)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    logits = flag != 0.0
    part = 0.0
    for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        m = 0.0
        inv_s = 1.0
        if logits:
            mm = -math.inf
            for j in range(t, C, nt):
                v = x[i, j]
                if v > mm or v != v:
                    mm = v
            m = _bmax(mm, sh)
            s = 0.0
            for j in range(t, C, nt):
                s += math.exp(x[i, j] - m)
            inv_s = 1.0 / _bsum(s, sh)
        s = 0.0
        for j in range(t, C, nt):
            s += math.exp(x[i, j] - m) * inv_s if logits else x[i, j]
        S = _bsum(s, sh)
        acc = 0.0
        dot = 0.0
        for j in range(t, C, nt):
            pj = math.exp(x[i, j] - m) * inv_s if logits else x[i, j]
            q = pj / S
            l, gq = _focal_gq(y[i, j] * a + b, q, eps, ome, av[j] if has_av else alpha, gamma)
            acc += l
            dot += gq * q
        acc = _bsum(acc, sh)
        wi = w[i * ws]
        part = _finish(i, acc, wi, loss, part)
        if want_grad:
            dot = _bsum(dot, sh)
            sc = wi * fac
            if logits:
                dp = 0.0
                for j in range(t, C, nt):
                    pj = math.exp(x[i, j] - m) * inv_s
                    l, gq = _focal_gq(y[i, j] * a + b, pj / S, eps, ome, av[j] if has_av else alpha, gamma)
                    dp += (gq - dot) / S * pj
                dotp = _bsum(dp, sh)
                for j in range(t, C, nt):
                    pj = math.exp(x[i, j] - m) * inv_s
                    l, gq = _focal_gq(y[i, j] * a + b, pj / S, eps, ome, av[j] if has_av else alpha, gamma)
                    grad[i, j] = pj * ((gq - dot) / S - dotp) * sc
            else:
                r = sc / S
                for j in range(t, C, nt):
                    l, gq = _focal_gq(y[i, j] * a + b, x[i, j] / S, eps, ome, av[j] if has_av else alpha, gamma)
                    grad[i, j] = (gq - dot) * r
    if t == 0:
        cuda.atomic.add(tot, 0, part)


@cuda.jit
def cosine_similarity(y, p, fac, eps, ome, a, b, alpha, gamma, flag, ignore, has_ignore, w, ws, loss, grad, want_grad, tot, info):
    """Keras: -sum(l2n(y) l2n(p)), l2n(v) = v min(rsqrt(sum v**2), 1/eps)."""
    R, K = p.shape
    sh = cuda.shared.array(MAX_TPB, np.float64)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    inv_eps = 1.0 / eps
    eps2 = eps * eps
    part = 0.0
    for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        syy = 0.0
        spp = 0.0
        syp = 0.0
        for j in range(t, K, nt):
            yy = y[i, j]
            pp = p[i, j]
            syy += yy * yy
            spp += pp * pp
            syp += yy * pp
        syy = _bsum(syy, sh)
        spp = _bsum(spp, sh)
        syp = _bsum(syp, sh)
        r = inv_eps if syy < eps2 else 1.0 / math.sqrt(syy)
        small = spp < eps2
        an = inv_eps if small else 1.0 / math.sqrt(spp)
        c = (an * r) * syp
        wi = w[i * ws]
        part = _finish(i, -c, wi, loss, part)
        if want_grad:
            sc = wi * fac * an
            kk = 0.0 if small else c * an
            for j in range(t, K, nt):
                grad[i, j] = kk * sc * p[i, j] - r * sc * y[i, j]
    if t == 0:
        cuda.atomic.add(tot, 0, part)


@cuda.jit(device=True, inline=True)
def _hinge_q(yy, pp):
    """``(1 - y) p``, exactly 0 where ``y = 1`` (its limit for any score: no 0 * inf NaN)."""
    return (1.0 - yy) * pp if yy != 1.0 else 0.0


@cuda.jit
def categorical_hinge(y, p, fac, eps, ome, a, b, alpha, gamma, flag, ignore, has_ignore, w, ws, loss, grad, want_grad, tot, info):
    """Keras: max(neg - pos + 1, 0), pos = sum(y p), neg = max((1 - y) p); TF's
    reduce_max gradient is split evenly between ties. Terms whose factor is 0
    are 0 (y = 0 in pos, y = 1 in neg), as on the CPU: the limits at infinite
    scores."""
    R, K = p.shape
    sh = cuda.shared.array(MAX_TPB, np.float64)
    t = cuda.threadIdx.x
    nt = cuda.blockDim.x
    part = 0.0
    for i in range(cuda.blockIdx.x, R, cuda.gridDim.x):
        pos = 0.0
        mm = -math.inf
        for j in range(t, K, nt):
            yy = y[i, j]
            pp = p[i, j]
            if yy != 0.0:
                pos += yy * pp
            q = _hinge_q(yy, pp)
            if q > mm or q != q:
                mm = q
        pos = _bsum(pos, sh)
        neg = _bmax(mm, sh)
        d = neg - pos + 1.0
        wi = w[i * ws]
        part = _finish(i, 0.0 if d < 0.0 else d, wi, loss, part)
        if want_grad:
            sc = wi * fac
            if d >= 0.0:
                cnt = 0.0
                for j in range(t, K, nt):
                    if _hinge_q(y[i, j], p[i, j]) == neg:
                        cnt += 1.0
                r = sc / _bsum(cnt, sh)
                for j in range(t, K, nt):
                    yy = y[i, j]
                    g = -yy * sc
                    if _hinge_q(yy, p[i, j]) == neg:
                        g += (1.0 - yy) * r
                    grad[i, j] = g
            else:
                for j in range(t, K, nt):
                    grad[i, j] = 0.0
    if t == 0:
        cuda.atomic.add(tot, 0, part)


KINDS = ("cce_probs", "scce_probs", "categorical_focal", "cosine_similarity", "categorical_hinge")


def run(kind, yt, yp, prm, w, ws, loss, grad, want_grad, stream=0):
    """Launch row loss ``kind`` on device arrays (``prm``: the host parameter
    vector). Returns ``(buf, info, tot)``: the ``crossentropy.status`` buffer
    and its views ``[n_bad, first_bad]`` and ``[sum(loss_i w_i)]``."""
    if kind not in KINDS:
        raise ValueError(f"no CUDA row kernel {kind!r}; known: {list(KINDS)}")
    buf, info, tot = status(stream)
    launch(_reset_info_tot, 1, 1, stream, info, tot)
    R, C = yp.shape
    if R == 0:
        return buf, info, tot
    tpb = TPB
    while tpb > 32 and tpb // 2 >= C:  # no idle half-blocks on short rows
        tpb //= 2
    p = [float(v) for v in prm[:10]]
    args = (yt, yp, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9] != 0.0)
    if kind == "categorical_focal":
        args += _class_alpha(prm, C, stream)
    launch(globals()[kind], max(1, min(R, MAX_BLOCKS)), tpb, stream, *args, w, ws, loss, grad, want_grad, tot, info)
    return buf, info, tot


def _class_alpha(prm, C, stream):
    """``(av, has_av)`` for categorical focal: its per-class alphas (prm's tail,
    in the compute dtype as on the CPU) in a per-stream device buffer, or an
    unused one-element buffer when alpha is one number."""
    if len(prm) > 10 and prm[10] != 0:  # P_AVEC_STEP (numba_cpu/_common.py)
        av = _streams.scratch("class_alpha", C, np.float64, stream)
        av.copy_to_device(np.ascontiguousarray(prm[11 : 11 + C], dtype=np.float64), stream=stream)
        return av, True
    return _streams.scratch("class_alpha", 1, np.float64, stream), False


def _host_entry(kind):
    """The registry's kernel contract for NumPy inputs under use_backend("cuda")."""

    def kernel(yt, yp, prm, w, ws, loss, grad, want_grad, nch):
        st, d_yt, d_yp, d_w, d_loss, d_grad = _streams.stage(yt, yp, w, loss, grad, want_grad)
        buf = run(kind, d_yt, d_yp, prm, d_w, ws, d_loss, d_grad, want_grad, st)[0]
        d_loss.copy_to_host(loss, stream=st)
        if want_grad:
            d_grad.copy_to_host(grad, stream=st)
        n_bad, first, total = read_status(buf, st)
        _streams.sync(st)
        return ((float(n_bad), float(first) if n_bad else -1.0, total),)

    kernel.__name__ = kernel.__qualname__ = f"{kind}_host"
    return kernel


# registry entries: "<kind>_host" (the names without the suffix are the kernels)
for _k in KINDS:
    globals()[f"{_k}_host"] = _host_entry(_k)
del _k
