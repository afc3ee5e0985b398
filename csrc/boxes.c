/* Bounding-box family: IoU, GIoU (TF Addons), DIoU, CIoU (torchvision's
 * values): the C twins of fastloss/backends/numba_cpu/boxes.py (same formulas,
 * same TF conventions for the gradient at ties and clamps, same NaN handling;
 * read that module's docstring for the math, steps (1)-(7) below).
 *
 * Kernel signature (boxes differ from the dense contract: either side may be
 * ONE box broadcast against all R rows, read in place):
 *
 *   fl_<name>_<dt>(yt, yp, prm, w, ws, loss, grad, want_grad, R, tbc, pbc, nch, info)
 *
 * yt / yp: (R, 4) boxes, or (1, 4) where tbc / pbc is set; loss (R,); grad
 * (R, 4), or where pbc is set (nch, 4): chunk c writes the sum of its rows'
 * gradients (float64 sums) into grad[c] and the caller adds the chunks.
 * prm[P_FLAG] is the box format code (0 yxyx, 1 xyxy, 2 xywh, 3 cxcywh),
 * prm[P_EPS] DIoU/CIoU's eps. info: one (0, -1, sum_i loss_i w_i) row per chunk.
 *
 * This file includes itself twice (FL_PASS 1: float32, 2: float64); the
 * per-dtype prelude is in fl_tmpl.h.
 */
#ifndef FL_PASS
#include "fastloss.h"
#define FL_PASS 1
#include "boxes.c"
#undef FL_PASS
#define FL_PASS 2
#include "boxes.c"
#undef FL_PASS
#else /* ---- one pass: T is float (FL_PASS 1) or double (FL_PASS 2) ---- */
#include "fl_tmpl.h"

#ifndef FL_BOXES_CONST
#define FL_BOXES_CONST
enum { BX_IOU = 0, BX_GIOU = 1, BX_DIOU = 2, BX_CIOU = 3 };
#define BX_FOUR_OVER_PI2 (4.0 / (3.141592653589793 * 3.141592653589793))
/* Rows per block: the scratch blocks (a broadcast box repeated, a weight
 * repeated, a gradient block thrown away or summed) stay in L1. */
#define BX_BLOCK 512
#endif

/* max(0, d), NaN kept. */
FL_INLINE T FN(bx_pos)(T d) { return d < L(0.0) ? L(0.0) : d; }

#if FL_PASS == 1
/* float32 atan2(y, x) for x, y >= 0 (box extents), in [0, pi/2], arithmetic
 * and selects only (the loop around it vectorizes): the twin of Numba's
 * _atan2_pos32 (same reduction, same polynomial). atan2(0, 0) = 0; NaN stays. */
FL_INLINE float bx_atan2_pos32(float y, float x) {
    int swap = y > x;
    float mx = swap ? y : x;
    float mn = swap ? x : y;
    float t = mn / (mx > 0.0f ? mx : 1.0f);
    int big = t > (float)0.41421356237309503;
    float u = big ? (t - 1.0f) / (t + 1.0f) : t;
    float z = u * u;
    float p = (float)0.07993926392536724;
    p = p * z + (float)-0.13854566186053255;
    p = p * z + (float)0.19974738193093208;
    p = p * z + (float)-0.3333280855833689;
    p = p * z + (float)0.999999982544071;
    float a = p * u + (big ? (float)(3.141592653589793 / 4) : 0.0f);
    a = swap ? (float)(3.141592653589793 / 2) - a : a;
    return mx != 0.0f ? a : 0.0f;
}
#define BX_ATAN2 bx_atan2_pos32
#else
#define BX_ATAN2 atan2
#endif

/* Loss of one pair of boxes (corners) and its gradient w.r.t. the predicted
 * corners; kind is a compile-time constant. Line by line Numba's _box_loss. */
FL_INLINE T FN(bx_loss)(int kind, T a0, T b0, T a1, T b1, T A0, T B0, T A1, T B1, T eps, int xfirst,
                        T *o_ga0, T *o_gb0, T *o_ga1, T *o_gb1) {
    const T z = L(0.0), one = L(1.0);
    /* (1) extents and areas */
    T da = a1 - a0;
    T db = b1 - b0;
    T wa = FN(bx_pos)(da);
    T wb = FN(bx_pos)(db);
    T Wa = FN(bx_pos)(A1 - A0);
    T Wb = FN(bx_pos)(B1 - B0);
    /* (2) intersection; k*: the predicted corner wins the max/min (TF ties) */
    int ka0 = a0 >= A0;
    int kb0 = b0 >= B0;
    int ka1 = a1 <= A1;
    int kb1 = b1 <= B1;
    T dia = (ka1 ? a1 : A1) - (ka0 ? a0 : A0);
    T dib = (kb1 ? b1 : B1) - (kb0 ? b0 : B0);
    T iwa = FN(bx_pos)(dia);
    T iwb = FN(bx_pos)(dib);
    T inter = iwa * iwb;
    /* (3) union */
    T uni = wa * wb + Wa * Wb - inter;
    /* (4) enclosure */
    int ca0 = a0 <= A0;
    int cb0 = b0 <= B0;
    int ca1 = a1 >= A1;
    int cb1 = b1 >= B1;
    T dea = (ca1 ? a1 : A1) - (ca0 ? a0 : A0);
    T deb = (cb1 ? b1 : B1) - (cb0 ? b0 : B0);
    T ewa = FN(bx_pos)(dea);
    T ewb = FN(bx_pos)(deb);
    /* (5) IoU and the adjoints */
    T ru;
    if (kind == BX_IOU || kind == BX_GIOU) {
        ru = one / uni;
        ru = uni == z ? z : ru; /* divide_no_nan */
    } else {
        ru = one / (uni + eps);
    }
    T iou = inter * ru;
    T loss = one - iou;
    T g_inter = -ru;
    T g_union = inter * ru * ru;
    T g_ea = z, g_eb = z, g_dea = z, g_deb = z, g_wa = z, g_wb = z, g_sa = z, g_sb = z;
    if (kind == BX_GIOU) {
        T encl = ewa * ewb;
        T re = one / encl;
        re = encl == z ? z : re;
        loss = loss + (encl - uni) * re;
        g_union = g_union - re;
        T g_encl = uni * re * re;
        g_ea = g_encl * ewb;
        g_eb = g_encl * ewa;
    }
    if (kind == BX_DIOU || kind == BX_CIOU) {
        T sa = (a0 + a1) - (A0 + A1);
        T sb = (b0 + b1) - (B0 + B1);
        T rho2 = L(0.25) * (sa * sa + sb * sb);
        /* torchvision's diagonal: the enclosure's extents unclamped (squared) */
        T rc = one / (dea * dea + deb * deb + eps);
        T t = rho2 * rc;
        loss = loss + t;
        T g_c2 = -t * rc;
        g_dea = L(2.0) * dea * g_c2;
        g_deb = L(2.0) * deb * g_c2;
        g_sa = L(0.5) * sa * rc; /* d(rho2/c2)/d a0 = d/d a1 */
        g_sb = L(0.5) * sb * rc;
    }
    if (kind == BX_CIOU) {
        /* torchvision's atan(w / h): w the x extent, h the y extent (xfirst: the
         * a axis is x, every format but yxyx) */
        T tw = xfirst ? Wa : Wb, th = xfirst ? Wb : Wa;
        T pw = xfirst ? wa : wb, ph = xfirst ? wb : wa;
        T d_phi = BX_ATAN2(tw, th) - BX_ATAN2(pw, ph);
        T v = L(BX_FOUR_OVER_PI2) * d_phi * d_phi;
        T alpha = v / (one - iou + v + eps); /* a constant for the gradient (torchvision) */
        loss = loss + alpha * v;
        T g_phi = L(-2.0 * BX_FOUR_OVER_PI2) * alpha * d_phi;
        /* d atan2(pw, ph) = (ph, -pw) / (pw**2 + ph**2); 0 at the origin */
        T r2 = pw * pw + ph * ph;
        T inv = one / r2;
        inv = r2 == z ? z : inv;
        T dpw = ph * inv, dph = -pw * inv;
        g_wa = g_phi * (xfirst ? dpw : dph);
        g_wb = g_phi * (xfirst ? dph : dpw);
    }
    /* area_pred = wa wb enters the union; inter enters it with a minus */
    g_wa = g_wa + g_union * wb;
    g_wb = g_wb + g_union * wa;
    g_inter = g_inter - g_union;
    T g_ia = g_inter * iwb;
    T g_ib = g_inter * iwa;
    /* clamps: d > 0 passes the gradient */
    g_wa = da > z ? g_wa : z;
    g_wb = db > z ? g_wb : z;
    g_ia = dia > z ? g_ia : z;
    g_ib = dib > z ? g_ib : z;
    g_ea = (dea > z ? g_ea : z) + g_dea;
    g_eb = (deb > z ? g_eb : z) + g_deb;
    /* to the corners: extent (a1 - a0), intersection (min - max), enclosure (max - min) */
    *o_ga0 = -g_wa + g_sa - (ka0 ? g_ia : z) - (ca0 ? g_ea : z);
    *o_ga1 = g_wa + g_sa + (ka1 ? g_ia : z) + (ca1 ? g_ea : z);
    *o_gb0 = -g_wb + g_sb - (kb0 ? g_ib : z) - (cb0 ? g_eb : z);
    *o_gb1 = g_wb + g_sb + (kb1 ? g_ib : z) + (cb1 ? g_eb : z);
    return loss;
}

/* One block of n rows: contiguous true/pred boxes, per-row weights, gradient
 * rows (the one loop of each kernel; gcc vectorizes it). Box format: the four
 * numbers u0..u3 of a row map to the corners lo = (u0, u1) + p (u2, u3),
 * hi = q (u0, u1) + r (u2, u3); the corner gradients map back likewise. */
FL_INLINE double FN(bx_block)(int kind, const T *restrict ys, const T *restrict ps, T *restrict gs,
                              T *restrict ls, const T *restrict wr, T sc, int64_t n, T p, T q, T r,
                              T eps, int xfirst) {
    double tot = 0.0;
    FL_PRAGMA(omp simd reduction(+ : tot))
    for (int64_t i = 0; i < n; i++) {
        const T *y = ys + 4 * i;
        const T *x = ps + 4 * i;
        T A0 = y[0] + p * y[2], B0 = y[1] + p * y[3], A1 = q * y[0] + r * y[2], B1 = q * y[1] + r * y[3];
        T a0 = x[0] + p * x[2], b0 = x[1] + p * x[3], a1 = q * x[0] + r * x[2], b1 = q * x[1] + r * x[3];
        T ga0, gb0, ga1, gb1;
        T l = FN(bx_loss)(kind, a0, b0, a1, b1, A0, B0, A1, B1, eps, xfirst, &ga0, &gb0, &ga1, &gb1);
        ls[i] = l;
        T wi = wr[i];
        tot += (double)l * (double)wi;
        T s = sc * wi;
        T *g = gs + 4 * i;
        g[0] = (ga0 + q * ga1) * s;
        g[1] = (gb0 + q * gb1) * s;
        g[2] = (p * ga0 + r * ga1) * s;
        g[3] = (p * gb0 + r * gb1) * s;
    }
    return tot;
}

/* Rows [lo, hi) of loss kind. A broadcast box (tbc / pbc) is repeated into a
 * scratch block, a single weight (ws == 0) likewise; without want_grad (or
 * with a broadcast y_pred, whose gradient is summed into grad[0..3] here) the
 * gradient goes to a scratch block: one loop serves every case. */
FL_INLINE int FN(bx_rows)(int kind, const T *restrict yt, const T *restrict yp, const T *restrict prm,
                          const T *restrict w, int64_t ws, T *restrict loss, T *restrict grad,
                          int want_grad, int tbc, int pbc, int64_t lo, int64_t hi,
                          double *restrict info) {
    T flag = prm[P_FLAG];
    T p = L(0.0), q = L(0.0), r = L(1.0);
    if (flag == L(2.0)) q = L(1.0); /* xywh */
    if (flag == L(3.0)) {           /* cxcywh */
        p = L(-0.5);
        q = L(1.0);
        r = L(0.5);
    }
    int xfirst = flag != L(0.0); /* every format but yxyx starts with x */
    T eps = prm[P_EPS];
    T sc = prm[F_SCALE];
    int64_t nb = hi - lo < BX_BLOCK ? (hi - lo > 1 ? hi - lo : 1) : BX_BLOCK;
    T tbuf[4 * BX_BLOCK], pbuf[4 * BX_BLOCK], gbuf[4 * BX_BLOCK], wbuf[BX_BLOCK];
    if (tbc)
        for (int64_t i = 0; i < nb; i++)
            for (int j = 0; j < 4; j++) tbuf[4 * i + j] = yt[j];
    if (pbc)
        for (int64_t i = 0; i < nb; i++)
            for (int j = 0; j < 4; j++) pbuf[4 * i + j] = yp[j];
    if (ws == 0)
        for (int64_t i = 0; i < nb; i++) wbuf[i] = w[0];
    int direct = want_grad && !pbc;
    double tot = 0.0, s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += nb) {
        int64_t r1 = hi < r0 + nb ? hi : r0 + nb;
        int64_t n = r1 - r0;
        const T *ys = tbc ? tbuf : yt + 4 * r0;
        const T *ps = pbc ? pbuf : yp + 4 * r0;
        T *gs = direct ? grad + 4 * r0 : gbuf;
        const T *wr = ws != 0 ? w + r0 : wbuf;
        tot += FN(bx_block)(kind, ys, ps, gs, loss + r0, wr, sc, n, p, q, r, eps, xfirst);
        if (want_grad && pbc) {
            for (int64_t i = 0; i < n; i++) {
                s0 += (double)gs[4 * i];
                s1 += (double)gs[4 * i + 1];
                s2 += (double)gs[4 * i + 2];
                s3 += (double)gs[4 * i + 3];
            }
        }
    }
    if (want_grad && pbc) {
        grad[0] = (T)s0;
        grad[1] = (T)s1;
        grad[2] = (T)s2;
        grad[3] = (T)s3;
    }
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}

#ifndef FL_BOXES_MACROS
#define FL_BOXES_MACROS
#define BX_ROWS_ARGS                                                                               \
    const T *restrict yt, const T *restrict yp, const T *restrict prm, const T *restrict w,      \
        int64_t ws, T *restrict loss, T *restrict grad, int want_grad, int tbc, int pbc,          \
        int64_t lo, int64_t hi, double *restrict info
/* The row kernel of one kind (multiversioned) and its exported entry: serial
 * for nch == 1, else nch OpenMP chunks (Numba's chunk(c, nch, R) bounds); a
 * broadcast y_pred's chunk c writes its gradient sum into grad[c]. */
#define BX_KERNEL(NAME, KIND)                                                                      \
    FL_CLONES static int FN(FL_CAT(bxrows_, NAME))(BX_ROWS_ARGS) {                                 \
        return FN(bx_rows)(KIND, yt, yp, prm, w, ws, loss, grad, want_grad, tbc, pbc, lo, hi,     \
                           info);                                                                  \
    }                                                                                              \
    int FN(FL_CAT(fl_, NAME))(const T *yt, const T *yp, const T *prm, const T *w, int64_t ws,     \
                              T *loss, T *grad, int want_grad, int64_t R, int tbc, int pbc,       \
                              int nch, double *info) {                                             \
        if (nch <= 1)                                                                              \
            return FN(FL_CAT(bxrows_, NAME))(yt, yp, prm, w, ws, loss, grad, want_grad, tbc, pbc, \
                                             0, R, info);                                          \
        int st = 0;                                                                                \
        int per_chunk = want_grad && pbc;                                                          \
        FL_PRAGMA(omp parallel for num_threads(nch) schedule(static, 1) reduction(| : st))        \
        for (int c = 0; c < nch; c++)                                                              \
            st |= FN(FL_CAT(bxrows_, NAME))(yt, yp, prm, w, ws, loss,                              \
                                            per_chunk ? grad + 4 * (int64_t)c : grad, want_grad,   \
                                            tbc, pbc, (int64_t)c * R / nch,                        \
                                            (int64_t)(c + 1) * R / nch, info + 3 * c);            \
        return st;                                                                                 \
    }
#endif

BX_KERNEL(iou, BX_IOU)
BX_KERNEL(giou, BX_GIOU)
BX_KERNEL(diou, BX_DIOU)
BX_KERNEL(ciou, BX_CIOU)

#undef BX_ATAN2
#endif /* FL_PASS */
