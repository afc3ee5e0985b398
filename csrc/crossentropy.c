/* Cross-entropy family: the C twins of fastloss/backends/numba_cpu/crossentropy.py
 * (same formulas, same clipping, NaN/inf handling, finite-limit choices and
 * bad-label counting; read that module's docstrings for the math).
 *
 * This file includes itself twice (FL_PASS 1: float32, 2: float64); the
 * per-dtype prelude and the drivers are in fl_tmpl.h.
 */
#ifndef FL_PASS
#include "fastloss.h"
#define FL_PASS 1
#include "crossentropy.c"
#undef FL_PASS
#define FL_PASS 2
#include "crossentropy.c"
#undef FL_PASS
#else /* ---- one pass: T is float (FL_PASS 1) or double (FL_PASS 2) ---- */
#include "fl_tmpl.h"

/* (sigmoid(x), sigmoid(-x)), each accurate (no 1 - s cancellation). */
FL_INLINE void FN(sigmoid_pair)(T x, T *sp, T *sm) {
    T u = EXP(-ABS(x));
    T s = L(1.0) / (L(1.0) + u);
    T t = u * s;
    int pos = x >= L(0.0);
    *sp = pos ? s : t;
    *sm = pos ? t : s;
}

/* ---- elementwise losses ------------------------------------------------- */

/* Every label of a block is exactly 0 or 1, without label smoothing: checked
 * in vectorized pieces (soft labels stop at the first piece). */
FL_INLINE int FN(hard_labels)(const T *restrict y, int64_t n, FN(fl_par) P) {
    if (P.a != L(1.0) || P.b != L(0.0)) return 0;
    for (int64_t t0 = 0; t0 < n; t0 += 256) {
        int64_t e = n < t0 + 256 ? n : t0 + 256, bad = 0;
        FL_PRAGMA(omp simd reduction(+ : bad))
        for (int64_t t = t0; t < e; t++) bad += (y[t] != L(0.0)) & (y[t] != L(1.0));
        if (bad) return 0;
    }
    return 1;
}

/* FL_ELEMENTWISE_FLAT with a loop of its own for blocks of 0/1 labels
 * (hard_labels) where HARD_OK (an expression in P) allows: ELEM gets the raw
 * labels and bit 1 of sq set (one log). */
#define FL_ELEMENTWISE_FLAT_HARD(NAME, ELEM, LABEL, HARD_OK)                                        \
    FL_INLINE void FN(FL_CAT(flat_, NAME))(const T *restrict y_, const T *restrict p_,              \
                                           T *restrict gf, T *restrict lb, int64_t n,               \
                                           FN(fl_par) P, T sc) {                                    \
        int sq = P.gamma == L(2.0);                                                                 \
        if ((HARD_OK) && FN(hard_labels)(y_, n, P)) {                                               \
            if (sq) {                                                                               \
                FL_FLAT_LOOP(ELEM, FL_Y_RAW, 3)                                                     \
            } else {                                                                                \
                FL_FLAT_LOOP(ELEM, FL_Y_RAW, 2)                                                     \
            }                                                                                       \
        } else if (sq) {                                                                            \
            FL_FLAT_LOOP(ELEM, LABEL, 1)                                                            \
        } else {                                                                                    \
            FL_FLAT_LOOP(ELEM, LABEL, 0)                                                            \
        }                                                                                           \
    }


/* sq: bit 1 hard labels: y is exactly 0 or 1 (hard_labels), the loss is -log
 * of clip(p) or of 1 - clip(p), one log instead of two (the other term is 0
 * times a finite log), rounded once. */
FL_INLINE void FN(e_bce)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    T one = L(1.0);
    T pc = FN(fl_clip)(p, P.eps, P.ome);
    *l = (sq >> 1) ? -LOG(y != L(0.0) ? pc : one - pc) : -(y * LOG(pc) + (one - y) * LOG(one - pc));
    T gg = (pc - y) / (pc * (one - pc));
    if (p < P.eps) gg = L(0.0);
    if (p > P.ome) gg = L(0.0);
    *g = gg;
}

FL_INLINE void FN(e_bce_logits)(T y, T x, FN(fl_par) P, int sq, T *l, T *g) {
    (void)sq;
    (void)P;
    T zero = L(0.0), one = L(1.0);
    T u = EXP(-ABS(x));
    T relu = x > zero ? x : zero;
    *l = relu - x * y + LOG1P(u);
    T s = one / (one + u);
    T sig = x >= zero ? s : u * s;
    *g = sig - y;
}

/* max(x, 0) - x y + log1p(exp(-|x|)), sigmoid(x), sigmoid(-x) from one exp. */
FL_INLINE void FN(ce_logits_pq)(T y, T x, T *ce, T *p, T *q) {
    T zero = L(0.0), one = L(1.0);
    T u = EXP(-ABS(x));
    T relu = x > zero ? x : zero;
    *ce = relu - x * y + LOG1P(u);
    T s = one / (one + u);
    int pos = x >= zero;
    *p = pos ? s : u * s;
    *q = pos ? u * s : s;
}

/* (m**gamma, d/dm m**gamma); sq: gamma == 2, the branch-free square. Else
 * fl_pow(m, gamma) and gamma fl_pow(m, gamma - 1) with their log shared and
 * their special cases (m == 0; gamma 0 or 1) as selects after the exps. Two
 * fl_pow calls, or adding fl_pow's exponent-2 case for gamma = 3 (m * m),
 * made GCC's vectorized loop ~4x slower (categorical focal 16384x100 float32,
 * gamma 1.5: 46 -> 10 ms); so for gamma = 3 the derivative is exp(2 log m),
 * which differs from Numba's m * m by rounding. gz (a constant at each call
 * site): gamma == 0 gives the derivative 0 outright (TF Addons switches the
 * factor off), not 0 * m**-1 (NaN for m < 0, as Keras' binary focal has it);
 * as a select after the call the same rule kept GCC from vectorizing the loop
 * (sigmoid focal gamma 1.5, 1M float32: 44 ms; here 4.1 ms). */
FL_INLINE void FN(focal_pow_z)(T m, T gamma, int sq, int gz, T *f, T *df) {
    if (sq) {
        *f = m * m;
        *df = m + m;
    } else {
        T lm = LOG(m);
        T fv = EXP(gamma * lm);
        T dv = EXP((gamma - L(1.0)) * lm);
        if (m == L(0.0)) { fv = L(0.0); dv = L(0.0); }
        if (gamma == L(0.0)) fv = L(1.0);
        if (gz && gamma == L(0.0)) dv = L(0.0);
        if (gamma == L(1.0)) { fv = m; dv = L(1.0); }
        *f = fv;
        *df = gamma * dv;
    }
}

FL_INLINE void FN(focal_pow)(T m, T gamma, int sq, T *f, T *df) {
    FN(focal_pow_z)(m, gamma, sq, 0, f, df);
}

/* Keras' binary focal loss and d/dp for one element; q = 1 - p computed by
 * the caller without cancellation (sigmoid(-x) for logits). hard: y is exactly
 * 0 or 1 (hard_labels), the bce is one log. */
FL_INLINE void FN(binary_focal_core)(T y, T p, T q, FN(fl_par) P, int balance, int sq, int hard,
                                     T *l, T *g) {
    T zero = L(0.0), one = L(1.0);
    T pc = p, qc = q;
    if (p < P.eps) {
        pc = P.eps;
        qc = P.ome;
    }
    if (p > P.ome) {
        pc = P.ome;
        qc = one - P.ome;
    }
    T bce = hard ? -LOG(y != zero ? pc : qc) : -(y * LOG(pc) + (one - y) * LOG(qc));
    T dbce = ((one - y) * pc - y * qc) / (pc * qc);
    if (p < P.eps) dbce = zero;
    if (p > P.ome) dbce = zero;
    T m = y * q + (one - y) * p;
    T f, dfm;
    FN(focal_pow)(m, P.gamma, sq, &f, &dfm);
    T df = dfm * (one - y - y);
    T wb = one;
    if (balance) wb = y * P.alpha + (one - y) * (one - P.alpha);
    *l = wb * f * bce;
    *g = wb * (df * bce + f * dbce);
}

/* sq: bit 0 gamma == 2, bit 1 hard labels (FL_ELEMENTWISE_FLAT_HARD) */
FL_INLINE void FN(e_bfocal)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    FN(binary_focal_core)(y, p, L(1.0) - p, P, P.flag != L(0.0), sq & 1, sq >> 1, l, g);
}

/* from_logits: Keras 3 on TensorFlow takes the cross-entropy from the logits
 * themselves (its sigmoid keeps them: no clip) and the focal factor from
 * sigmoid(x); d/dx = wb ((d/dx (1 - p_t)**gamma) ce + (1 - p_t)**gamma (p - y)). */
FL_INLINE void FN(e_bfocal_logits)(T y, T x, FN(fl_par) P, int sq, T *l, T *g) {
    T zero = L(0.0), one = L(1.0);
    T ce, p, q;
    FN(ce_logits_pq)(y, x, &ce, &p, &q);
    T m = y * q + (one - y) * p;
    T f, dfm;
    FN(focal_pow)(m, P.gamma, sq, &f, &dfm);
    T wb = one;
    if (P.flag != zero) wb = y * P.alpha + (one - y) * (one - P.alpha);
    *l = wb * f * ce;
    *g = wb * (dfm * (one - y - y) * (p * q) * ce + f * (p - y));
}

/* TF Addons' alpha factor, modulating factor and d(modulating)/d prob;
 * alpha == 0 or gamma == 0 switch their factor off (gamma == 0 inside
 * focal_pow_z: its power is then 1, its derivative 0). */
FL_INLINE void FN(tfa_factors)(T y, T prob, T qprob, T alpha, T gamma, int sq, T *af, T *mf,
                               T *dmf) {
    T zero = L(0.0), one = L(1.0);
    *af = one;
    if (alpha != zero) *af = y * alpha + (one - y) * (one - alpha);
    T m = y * qprob + (one - y) * prob;
    T f, dmm;
    FN(focal_pow_z)(m, gamma, sq, 1, &f, &dmm);
    T d = dmm * (one - y - y);
    *mf = f;
    *dmf = d;
}

/* sq: bit 0 gamma == 2, bit 1 hard labels (one log) */
FL_INLINE void FN(e_sfocal)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    T zero = L(0.0), one = L(1.0);
    int hard = sq >> 1;
    sq &= 1;
    T pc = FN(fl_clip)(p, P.eps, P.ome);
    T u = pc + P.eps; /* Keras 2 backend (what TF Addons calls): eps inside the logs */
    T v = one - pc + P.eps;
    T ce = hard ? -LOG(y != zero ? u : v) : -(y * LOG(u) + (one - y) * LOG(v));
    T dce = ((one - y) * u - y * v) / (u * v);
    if (p < P.eps) dce = zero;
    if (p > P.ome) dce = zero;
    T af, mf, dmf;
    FN(tfa_factors)(y, p, one - p, P.alpha, P.gamma, sq, &af, &mf, &dmf);
    *l = af * mf * ce;
    *g = af * (dmf * ce + mf * dce);
}

FL_INLINE void FN(e_sfocal_logits)(T y, T x, FN(fl_par) P, int sq, T *l, T *g) {
    T ce, p, q;
    FN(ce_logits_pq)(y, x, &ce, &p, &q);
    T af, mf, dmf;
    FN(tfa_factors)(y, p, q, P.alpha, P.gamma, sq, &af, &mf, &dmf);
    *l = af * mf * ce;
    *g = af * (dmf * (p * q) * ce + mf * (p - y));
}

FL_INLINE void FN(e_kld)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)sq;
    T zero = L(0.0), one = L(1.0);
    T yc = FN(fl_clip)(y, P.eps, one);
    T pc = FN(fl_clip)(p, P.eps, one);
    T gg = -yc / pc;
    if (p < P.eps) gg = zero;
    if (p > one) gg = zero;
    *l = yc * LOG(yc / pc);
    *g = gg;
}

FL_INLINE void FN(e_poisson)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)sq;
    *l = p - y * LOG(p + P.eps);
    *g = L(1.0) - y / (p + P.eps);
}

FL_ELEMENTWISE_FLAT_HARD(bce_probs, FN(e_bce), FL_Y_MAP, 1)
FL_ELEMENTWISE_ROWS(bce_probs, 1)
FL_ELEMENTWISE(bce_logits, FN(e_bce_logits), 1, FL_Y_MAP)
FL_ELEMENTWISE_FLAT_HARD(binary_focal, FN(e_bfocal), FL_Y_MAP, sq) /* gamma == 2 only */
FL_ELEMENTWISE_ROWS(binary_focal, 1)
FL_ELEMENTWISE(binary_focal_logits, FN(e_bfocal_logits), 1, FL_Y_MAP)
FL_ELEMENTWISE_FLAT_HARD(sigmoid_focal, FN(e_sfocal), FL_Y_RAW, sq) /* gamma == 2 only */
FL_ELEMENTWISE_ROWS(sigmoid_focal, 0)
FL_ELEMENTWISE(sigmoid_focal_logits, FN(e_sfocal_logits), 0, FL_Y_RAW)
FL_ELEMENTWISE(kl_divergence, FN(e_kld), 0, FL_Y_RAW)
FL_ELEMENTWISE(poisson, FN(e_poisson), 1, FL_Y_RAW)

FL_ENTRY(bce_probs, rows_bce_probs, T)
FL_ENTRY(bce_logits, rows_bce_logits, T)
FL_ENTRY(binary_focal, rows_binary_focal, T)
FL_ENTRY(binary_focal_logits, rows_binary_focal_logits, T)
FL_ENTRY(sigmoid_focal, rows_sigmoid_focal, T)
FL_ENTRY(sigmoid_focal_logits, rows_sigmoid_focal_logits, T)
FL_ENTRY(kl_divergence, rows_kl_divergence, T)
FL_ENTRY(poisson, rows_poisson, T)

/* CCE on probabilities, one class: y' log c (returned), d(-y' log c)/dq (0 where q is clipped). */
FL_INLINE T FN(cce_q_term)(T yy, T q, T eps, T ome, T *gq) {
    T qc = FN(fl_clip)(q, eps, ome);
    T d = -yy / qc;
    if (q < eps) d = L(0.0);
    if (q > ome) d = L(0.0);
    *gq = d;
    return yy * LOG(qc);
}

/* ---- short rows: the columns layout --------------------------------------- *
 * Rows of at most FL_COLS_MAX_K classes (float32; float64: the *_F64 cut-overs)
 * take the Numba backend's *_cols kernels (same arithmetic): a block of rows is
 * transposed into (class, row) scratch and every loop runs along the rows of
 * one class; per-row sums, maxima and logs are arrays over the block. On such
 * rows a row's own loops are too short to vectorize and their per-row cost set
 * the speed. The cut-overs are the Numba backend's (numba_cpu/_common.py
 * COLS_MAX_K, numba_cpu/crossentropy.py the others, with the timings). */
#ifndef FL_COLS_MAX_K
#define FL_COLS_MAX_K 15
/* SCCE on logits and the softmax grad/Hessian kernels: their row loops already run
 * the exp as one flat loop over a block; columns gain on them only below this */
#define FL_EXP_BLOCKED_COLS_MAX_K 6
/* float64 (half the lanes a vector): SCCE on probabilities and categorical
 * focal, CCE (dense labels, transposed too), SCCE on logits, the softmax
 * grad/Hessian kernels */
#define FL_COLS_MAX_K_F64 10
#define FL_COLS_MAX_K_F64_DENSE 6
#define FL_EXP_BLOCKED_COLS_MAX_K_F64 3
#define FL_GH_COLS_MAX_K_F64 2
#endif
/* the cut-over of this pass' dtype */
#define FL_CUT(F32, F64) (FL_PASS == 1 ? (F32) : (F64))

/* dst[j * nb + i] = src[i * K + j], i < nr (src: the block's first row). */
FL_INLINE void FN(cols_in)(const T *restrict src, int64_t K, int64_t nr, int64_t nb, T *restrict dst) {
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < K; j++) dst[j * nb + i] = src[i * K + j];
}

/* cols_in of dense labels, smoothed: y' = y a + b. */
FL_INLINE void FN(cols_in_labels)(const T *restrict src, int64_t K, int64_t nr, int64_t nb, T *restrict dst,
                                  T a, T b) {
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < K; j++) dst[j * nb + i] = src[i * K + j] * a + b;
}

/* The inverse of cols_in. */
FL_INLINE void FN(cols_out)(const T *restrict src, int64_t K, int64_t nr, int64_t nb, T *restrict dst) {
    for (int64_t i = 0; i < nr; i++)
        for (int64_t j = 0; j < K; j++) dst[i * K + j] = src[j * nb + i];
}

/* S[i] = sum_j X[j, i], classes added in order. */
FL_INLINE void FN(cols_row_sums)(const T *restrict X, int64_t K, int64_t nr, int64_t nb, T *restrict S) {
    for (int64_t i = 0; i < nr; i++) S[i] = X[i];
    for (int64_t j = 1; j < K; j++) {
        const T *restrict x = X + j * nb;
        for (int64_t i = 0; i < nr; i++) S[i] += x[i];
    }
}

/* D[i] = sum_j X[j, i] Z[j, i]. */
FL_INLINE void FN(cols_row_dots)(const T *restrict X, const T *restrict Z, int64_t K, int64_t nr, int64_t nb,
                                 T *restrict D) {
    for (int64_t i = 0; i < nr; i++) D[i] = X[i] * Z[i];
    for (int64_t j = 1; j < K; j++) {
        const T *restrict x = X + j * nb;
        const T *restrict z = Z + j * nb;
        for (int64_t i = 0; i < nr; i++) D[i] += x[i] * z[i];
    }
}

/* M[i] = max_j X[j, i]; a NaN is passed over (its exp carries it into the sum). */
FL_INLINE void FN(cols_row_max)(const T *restrict X, int64_t K, int64_t nr, int64_t nb, T *restrict M) {
    for (int64_t i = 0; i < nr; i++) M[i] = X[i];
    for (int64_t j = 1; j < K; j++) {
        const T *restrict x = X + j * nb;
        for (int64_t i = 0; i < nr; i++) M[i] = x[i] > M[i] ? x[i] : M[i];
    }
}

/* Rows per block, and the block scratch's row count. */
FL_INLINE int64_t FN(cols_block)(int64_t C, int64_t lo, int64_t hi, int64_t *nb) {
    int64_t rb = FL_BLOCK / C;
    *nb = hi - lo < rb ? hi - lo : rb;
    if (*nb < 1) *nb = 1;
    return rb;
}

/* rows_cce_probs in columns. */
FL_CLONES static int FN(cols_cce_probs)(FL_ROWS_ARGS(T)) {
    (void)R;
    int64_t C = K, nb;
    T eps = prm[P_EPS], ome = prm[P_OME], a = prm[P_LS_A], b = prm[P_LS_B];
    int64_t rb = FN(cols_block)(C, lo, hi, &nb);
    T *buf = (T *)malloc(sizeof(T) * (size_t)(nb * (3 * C + 3)));
    if (!buf) return FL_ENOMEM;
    T *Q = buf, *Y = Q + C * nb, *G = Y + C * nb, *S = G + C * nb, *A = S + nb, *D = A + nb;
    double tot = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t nr = hi - r0 < rb ? hi - r0 : rb;
        FN(cols_in)(yp + r0 * C, C, nr, nb, Q);
        FN(cols_in_labels)(yt + r0 * C, C, nr, nb, Y, a, b);
        FN(cols_row_sums)(Q, C, nr, nb, S);
        for (int64_t j = 0; j < C; j++) {
            T *restrict q = Q + j * nb;
            T *restrict y = Y + j * nb;
            T *restrict g = G + j * nb;
            for (int64_t i = 0; i < nr; i++) {
                T qq = q[i] / S[i], gq;
                y[i] = FN(cce_q_term)(y[i], qq, eps, ome, &gq);
                q[i] = qq;
                g[i] = gq;
            }
        }
        FN(cols_row_sums)(Y, C, nr, nb, A);
        FN(cols_row_dots)(G, Q, C, nr, nb, D);
        for (int64_t i = 0; i < nr; i++) {
            T li = -A[i];
            loss[r0 + i] = li;
            tot += (double)li * (double)w[(r0 + i) * ws];
            S[i] = w[(r0 + i) * ws] * prm[F_SCALE] / S[i];
        }
        if (want_grad) {
            for (int64_t j = 0; j < C; j++) {
                T *restrict g = G + j * nb;
                for (int64_t i = 0; i < nr; i++) g[i] = (g[i] - D[i]) * S[i];
            }
            FN(cols_out)(G, C, nr, nb, grad + r0 * C);
        }
    }
    free(buf);
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}

/* rows_cce_logits in columns. */
FL_CLONES static int FN(cols_cce_logits)(FL_ROWS_ARGS(T)) {
    (void)R;
    int64_t C = K, nb;
    T a = prm[P_LS_A], b = prm[P_LS_B];
    int64_t rb = FN(cols_block)(C, lo, hi, &nb);
    T *buf = (T *)malloc(sizeof(T) * (size_t)(nb * (3 * C + 4)));
    if (!buf) return FL_ENOMEM;
    T *P = buf, *Y = P + C * nb, *G = Y + C * nb, *M = G + C * nb, *S = M + nb, *SY = S + nb, *LS = SY + nb;
    double tot = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t nr = hi - r0 < rb ? hi - r0 : rb;
        FN(cols_in)(yp + r0 * C, C, nr, nb, P);
        FN(cols_in_labels)(yt + r0 * C, C, nr, nb, Y, a, b);
        FN(cols_row_max)(P, C, nr, nb, M);
        for (int64_t j = 0; j < C; j++) {
            T *restrict x = P + j * nb;
            const T *restrict y = Y + j * nb;
            T *restrict g = G + j * nb;
            for (int64_t i = 0; i < nr; i++) {
                T v = x[i] - M[i];
                g[i] = EXP(v);
                x[i] = y[i] * v;
            }
        }
        FN(cols_row_sums)(G, C, nr, nb, S);
        FN(cols_row_sums)(Y, C, nr, nb, SY);
        FN(cols_row_sums)(P, C, nr, nb, M); /* sum y' (x - max) */
        for (int64_t i = 0; i < nr; i++) LS[i] = LOG(S[i]);
        for (int64_t i = 0; i < nr; i++) {
            T li = SY[i] * LS[i] - M[i];
            loss[r0 + i] = li;
            tot += (double)li * (double)w[(r0 + i) * ws];
            T sc = w[(r0 + i) * ws] * prm[F_SCALE];
            LS[i] = sc;
            S[i] = sc * SY[i] / S[i];
        }
        if (want_grad) {
            for (int64_t j = 0; j < C; j++) {
                T *restrict g = G + j * nb;
                const T *restrict y = Y + j * nb;
                for (int64_t i = 0; i < nr; i++) g[i] = g[i] * S[i] - y[i] * LS[i];
            }
            FN(cols_out)(G, C, nr, nb, grad + r0 * C);
        }
    }
    free(buf);
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}

/* rows_scce_probs in columns. */
FL_CLONES static int FN(cols_scce_probs)(FL_ROWS_ARGS(int64_t)) {
    (void)R;
    int64_t C = K, nb;
    T zero = L(0.0), one = L(1.0);
    T eps = prm[P_EPS], ome = prm[P_OME];
    T ignore = prm[P_IGNORE];
    int has_ignore = prm[P_HAS_IGNORE] != zero;
    int64_t rb = FN(cols_block)(C, lo, hi, &nb);
    T *buf = (T *)malloc(sizeof(T) * (size_t)(nb * (2 * C + 3)));
    int64_t *krow = (int64_t *)malloc(sizeof(int64_t) * (size_t)nb);
    if (!buf || !krow) {
        free(buf);
        free(krow);
        return FL_ENOMEM;
    }
    T *P = buf, *G = P + C * nb, *S = G + C * nb, *LS = S + nb, *LC = LS + nb;
    int64_t nbad = 0, first = -1;
    double tot = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t nr = hi - r0 < rb ? hi - r0 : rb;
        FN(cols_in)(yp + r0 * C, C, nr, nb, P);
        for (int64_t j = 0; j < C; j++) {
            const T *restrict x = P + j * nb;
            T *restrict g = G + j * nb;
            for (int64_t i = 0; i < nr; i++) g[i] = FN(fl_clip)(x[i], eps, ome);
        }
        FN(cols_row_sums)(G, C, nr, nb, S);
        for (int64_t i = 0; i < nr; i++) {
            int64_t k = FN(fl_label)(yt[r0 + i], C, ignore, has_ignore);
            krow[i] = k;
            if (k == -1) {
                nbad++;
                if (first < 0) first = r0 + i;
            }
            LC[i] = k >= 0 ? G[k * nb + i] : one;
        }
        for (int64_t i = 0; i < nr; i++) {
            LS[i] = LOG(S[i]);
            LC[i] = LOG(LC[i]);
        }
        for (int64_t i = 0; i < nr; i++) {
            if (krow[i] < 0) {
                loss[r0 + i] = zero;
                S[i] = zero;
                continue;
            }
            T li = LS[i] - LC[i];
            loss[r0 + i] = li;
            tot += (double)li * (double)w[(r0 + i) * ws];
            LS[i] = w[(r0 + i) * ws] * prm[F_SCALE]; /* the row's scale */
            S[i] = LS[i] / S[i];
        }
        if (want_grad) {
            for (int64_t j = 0; j < C; j++) {
                const T *restrict x = P + j * nb;
                T *restrict g = G + j * nb;
                for (int64_t i = 0; i < nr; i++) {
                    T v = S[i];
                    if (x[i] < eps) v = zero;
                    if (x[i] > ome) v = zero;
                    g[i] = v;
                }
            }
            FN(cols_out)(G, C, nr, nb, grad + r0 * C);
            for (int64_t i = 0; i < nr; i++) {
                int64_t k = krow[i];
                T *g = grad + (r0 + i) * C;
                if (k < 0) {
                    for (int64_t j = 0; j < C; j++) g[j] = zero;
                    continue;
                }
                T pk = P[k * nb + i];
                if (!(pk < eps || pk > ome)) g[k] -= LS[i] / FN(fl_clip)(pk, eps, ome);
            }
        }
    }
    free(buf);
    free(krow);
    info[0] = (double)nbad;
    info[1] = (double)first;
    info[2] = tot;
    return FL_OK;
}

/* rows_scce_logits in columns. */
FL_CLONES static int FN(cols_scce_logits)(FL_ROWS_ARGS(int64_t)) {
    (void)R;
    int64_t C = K, nb;
    T zero = L(0.0);
    T ignore = prm[P_IGNORE];
    int has_ignore = prm[P_HAS_IGNORE] != zero;
    int64_t rb = FN(cols_block)(C, lo, hi, &nb);
    T *buf = (T *)malloc(sizeof(T) * (size_t)(nb * (2 * C + 3)));
    int64_t *krow = (int64_t *)malloc(sizeof(int64_t) * (size_t)nb);
    if (!buf || !krow) {
        free(buf);
        free(krow);
        return FL_ENOMEM;
    }
    T *P = buf, *G = P + C * nb, *M = G + C * nb, *S = M + nb, *LS = S + nb;
    int64_t nbad = 0, first = -1;
    double tot = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t nr = hi - r0 < rb ? hi - r0 : rb;
        FN(cols_in)(yp + r0 * C, C, nr, nb, P);
        FN(cols_row_max)(P, C, nr, nb, M);
        for (int64_t j = 0; j < C; j++) {
            const T *restrict x = P + j * nb;
            T *restrict g = G + j * nb;
            for (int64_t i = 0; i < nr; i++) g[i] = EXP(x[i] - M[i]);
        }
        FN(cols_row_sums)(G, C, nr, nb, S);
        for (int64_t i = 0; i < nr; i++) LS[i] = LOG(S[i]);
        for (int64_t i = 0; i < nr; i++) {
            int64_t k = FN(fl_label)(yt[r0 + i], C, ignore, has_ignore);
            krow[i] = k;
            if (k < 0) {
                if (k == -1) {
                    nbad++;
                    if (first < 0) first = r0 + i;
                }
                loss[r0 + i] = zero;
                S[i] = zero;
                continue;
            }
            T li = LS[i] - (P[k * nb + i] - M[i]);
            loss[r0 + i] = li;
            tot += (double)li * (double)w[(r0 + i) * ws];
            LS[i] = w[(r0 + i) * ws] * prm[F_SCALE]; /* the row's scale */
            S[i] = LS[i] / S[i];
        }
        if (want_grad) {
            for (int64_t j = 0; j < C; j++) {
                T *restrict g = G + j * nb;
                for (int64_t i = 0; i < nr; i++) g[i] = g[i] * S[i];
            }
            FN(cols_out)(G, C, nr, nb, grad + r0 * C);
            for (int64_t i = 0; i < nr; i++) {
                int64_t k = krow[i];
                T *g = grad + (r0 + i) * C;
                if (k < 0) {
                    for (int64_t j = 0; j < C; j++) g[j] = zero;
                    continue;
                }
                g[k] -= LS[i];
            }
        }
    }
    free(buf);
    free(krow);
    info[0] = (double)nbad;
    info[1] = (double)first;
    info[2] = tot;
    return FL_OK;
}


/* ---- softmax family ------------------------------------------------------ *
 * exp(x - max) of a block of rows is written into the gradient rows (or a
 * scratch block) and exponentiated by one flat loop, so that short rows
 * (C = 10) vectorize as well as long ones. */

/* loss = sum(y') logsumexp(x) - sum(y' x); grad = sum(y') softmax(x) - y'. */
FL_CLONES static int FN(rows_cce_logits)(FL_ROWS_ARGS(T)) {
    if (K <= FL_CUT(FL_COLS_MAX_K, FL_COLS_MAX_K_F64_DENSE)) return FN(cols_cce_logits)(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, lo, hi, info);
    int64_t C = K;
    T zero = L(0.0);
    T a = prm[P_LS_A], b = prm[P_LS_B];
    int64_t rb = C >= FL_BLOCK ? 1 : FL_BLOCK / C;
    int64_t nb = hi - lo < rb ? hi - lo : rb;
    T *mrow = (T *)malloc(sizeof(T) * (size_t)nb);
    T *scratch = want_grad ? NULL : (T *)malloc(sizeof(T) * (size_t)(nb * C));
    if (!mrow || (!want_grad && !scratch)) {
        free(mrow);
        free(scratch);
        return FL_ENOMEM;
    }
    double tot = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t r1 = hi < r0 + rb ? hi : r0 + rb;
        T *bb = want_grad ? grad + r0 * C : scratch;
        for (int64_t i = r0; i < r1; i++) {
            const T *x = yp + i * C;
            T m = FN(fl_row_max)(x, C);
            mrow[i - r0] = m;
            T *o = bb + (i - r0) * C;
            for (int64_t j = 0; j < C; j++) o[j] = x[j] - m;
        }
        FN(fl_exp_inplace)(bb, (r1 - r0) * C);
        for (int64_t i = r0; i < r1; i++) {
            T *o = bb + (i - r0) * C;
            const T *x = yp + i * C;
            const T *y = yt + i * C;
            T m = mrow[i - r0];
            T s = zero, sy = zero, syx = zero;
            FL_PRAGMA(omp simd reduction(+ : s, sy, syx))
            for (int64_t j = 0; j < C; j++) {
                s += o[j];
                T yy = y[j] * a + b;
                sy += yy;
                syx += yy * (x[j] - m);
            }
            T li = sy * LOG(s) - syx;
            loss[i] = li;
            tot += (double)li * (double)w[i * ws];
            if (want_grad) {
                T sc = w[i * ws] * prm[F_SCALE];
                T r = sc * sy / s;
                for (int64_t j = 0; j < C; j++) o[j] = o[j] * r - (y[j] * a + b) * sc;
            }
        }
    }
    free(mrow);
    free(scratch);
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}
FL_ENTRY(cce_logits, rows_cce_logits, T)

/* loss = logsumexp(x) - x[y]; grad = softmax(x) - onehot(y). */
FL_CLONES static int FN(rows_scce_logits)(FL_ROWS_ARGS(int64_t)) {
    if (K <= FL_CUT(FL_EXP_BLOCKED_COLS_MAX_K, FL_EXP_BLOCKED_COLS_MAX_K_F64))
        return FN(cols_scce_logits)(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, lo, hi, info);
    int64_t C = K;
    T zero = L(0.0);
    T ignore = prm[P_IGNORE];
    int has_ignore = prm[P_HAS_IGNORE] != zero;
    int64_t rb = C >= FL_BLOCK ? 1 : FL_BLOCK / C;
    int64_t nb = hi - lo < rb ? hi - lo : rb;
    T *rowbuf = (T *)malloc(sizeof(T) * (size_t)nb * 3);
    int64_t *krow = (int64_t *)malloc(sizeof(int64_t) * (size_t)nb);
    T *scratch = want_grad ? NULL : (T *)malloc(sizeof(T) * (size_t)(nb * C));
    if (!rowbuf || !krow || (!want_grad && !scratch)) {
        free(rowbuf);
        free(krow);
        free(scratch);
        return FL_ENOMEM;
    }
    T *mrow = rowbuf, *srow = rowbuf + nb, *lrow = rowbuf + 2 * nb;
    int64_t nbad = 0, first = -1;
    double tot = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t r1 = hi < r0 + rb ? hi : r0 + rb, nr = r1 - r0;
        T *bb = want_grad ? grad + r0 * C : scratch;
        for (int64_t i = r0; i < r1; i++) {
            int64_t k = FN(fl_label)(yt[i], C, ignore, has_ignore);
            krow[i - r0] = k;
            if (k == -1) {
                nbad++;
                if (first < 0) first = i;
            }
            const T *x = yp + i * C;
            T m = FN(fl_row_max)(x, C);
            mrow[i - r0] = m;
            T *o = bb + (i - r0) * C;
            for (int64_t j = 0; j < C; j++) o[j] = x[j] - m;
        }
        FN(fl_exp_inplace)(bb, nr * C);
        for (int64_t i = 0; i < nr; i++) {
            T s = FN(fl_sum)(bb + i * C, C);
            srow[i] = s;
            lrow[i] = s;
        }
        FN(fl_log_inplace)(lrow, nr); /* log of the row sums, one vector loop */
        for (int64_t i = r0; i < r1; i++) {
            int64_t k = krow[i - r0];
            T *o = bb + (i - r0) * C;
            if (k < 0) {
                loss[i] = zero;
                for (int64_t j = 0; j < C; j++) o[j] = zero;
                continue;
            }
            T li = lrow[i - r0] - (yp[i * C + k] - mrow[i - r0]);
            loss[i] = li;
            tot += (double)li * (double)w[i * ws];
            if (want_grad) {
                T sc = w[i * ws] * prm[F_SCALE];
                T r = sc / srow[i - r0];
                for (int64_t j = 0; j < C; j++) o[j] = o[j] * r;
                o[k] -= sc;
            }
        }
    }
    free(rowbuf);
    free(krow);
    free(scratch);
    info[0] = (double)nbad;
    info[1] = (double)first;
    info[2] = tot;
    return FL_OK;
}
FL_ENTRY(scce_logits, rows_scce_logits, int64_t)

/* TF backend: loss = log(sum(c)) - log(c_y), c = clip(p, eps, 1 - eps). */
FL_CLONES static int FN(rows_scce_probs)(FL_ROWS_ARGS(int64_t)) {
    if (K <= FL_CUT(FL_COLS_MAX_K, FL_COLS_MAX_K_F64)) return FN(cols_scce_probs)(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, lo, hi, info);
    (void)R;
    int64_t C = K;
    T zero = L(0.0);
    T eps = prm[P_EPS], ome = prm[P_OME];
    T ignore = prm[P_IGNORE];
    int has_ignore = prm[P_HAS_IGNORE] != zero;
    int64_t nbad = 0, first = -1;
    double tot = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        int64_t k = FN(fl_label)(yt[i], C, ignore, has_ignore);
        const T *x = yp + i * C;
        T *g = grad + i * C;
        if (k < 0) {
            if (k == -1) {
                nbad++;
                if (first < 0) first = i;
            }
            loss[i] = zero;
            if (want_grad)
                for (int64_t j = 0; j < C; j++) g[j] = zero;
            continue;
        }
        T S = zero;
        FL_PRAGMA(omp simd reduction(+ : S))
        for (int64_t j = 0; j < C; j++) S += FN(fl_clip)(x[j], eps, ome);
        T ck = FN(fl_clip)(x[k], eps, ome);
        T li = LOG(S) - LOG(ck);
        loss[i] = li;
        tot += (double)li * (double)w[i * ws];
        if (want_grad) {
            T sc = w[i * ws] * prm[F_SCALE];
            T r = sc / S;
            for (int64_t j = 0; j < C; j++) {
                T p = x[j];
                T v = r;
                if (p < eps) v = zero;
                if (p > ome) v = zero;
                g[j] = v;
            }
            T pk = x[k];
            if (!(pk < eps || pk > ome)) g[k] -= sc / ck;
        }
    }
    info[0] = (double)nbad;
    info[1] = (double)first;
    info[2] = tot;
    return FL_OK;
}
FL_ENTRY(scce_probs, rows_scce_probs, int64_t)

/* A row has n classes j with y'_j = y_j a + b != 0 (counted by the caller's
 * sum loop): their indices in idx[0..n) and n, when they are few (4 n <= C)
 * and S (the row's sum of probabilities) is finite; else -1 (the dense loop).
 * Every other class's term and d/dq are exactly 0 (0 times a finite log), so
 * only these need the log/pow/divisions. A non-finite S (NaN/inf in the row)
 * must reach every element's term, as in Keras, and takes the dense loop. */
FL_INLINE int64_t FN(sparse_labels)(const T *restrict y, int64_t C, T a, T b, T S, int64_t *restrict idx,
                                    int64_t n) {
    if (b != L(0.0) || !(ABS(S) < (T)INFINITY) || 4 * n > C) return -1;
    n = 0;
    for (int64_t j = 0; j < C; j++)
        if (y[j] * a + b != L(0.0)) idx[n++] = j;
    return n;
}

/* Keras: q = p / sum(p); c = clip(q, eps, 1 - eps); loss = -sum(y' log c).
 * Rows with few nonzero labels (one-hot) take the terms of those classes only. */
FL_CLONES static int FN(rows_cce_probs)(FL_ROWS_ARGS(T)) {
    if (K <= FL_CUT(FL_COLS_MAX_K, FL_COLS_MAX_K_F64_DENSE)) return FN(cols_cce_probs)(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, lo, hi, info);
    (void)R;
    int64_t C = K;
    T zero = L(0.0);
    T eps = prm[P_EPS], ome = prm[P_OME];
    T a = prm[P_LS_A], b = prm[P_LS_B];
    int64_t *idx = (int64_t *)malloc(sizeof(int64_t) * (size_t)C);
    if (!idx) return FL_ENOMEM;
    double tot = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        const T *x = yp + i * C;
        const T *y = yt + i * C;
        T *g = grad + i * C;
        T S = zero;
        int64_t n = 0; /* nonzero labels, for sparse_labels */
        FL_PRAGMA(omp simd reduction(+ : S, n))
        for (int64_t j = 0; j < C; j++) {
            S += x[j];
            n += (y[j] * a + b != zero);
        }
        T acc = zero, dot = zero;
        int64_t nz = FN(sparse_labels)(y, C, a, b, S, idx, n);
        if (nz >= 0) {
            if (want_grad)
                for (int64_t j = 0; j < C; j++) g[j] = zero;
            for (int64_t t = 0; t < nz; t++) {
                int64_t j = idx[t];
                T q = x[j] / S, gq;
                acc += FN(cce_q_term)(y[j] * a + b, q, eps, ome, &gq);
                if (want_grad) {
                    g[j] = gq;
                    dot += gq * q;
                }
            }
        } else if (want_grad) {
            FL_PRAGMA(omp simd reduction(+ : acc, dot))
            for (int64_t j = 0; j < C; j++) {
                T yy = y[j] * a + b;
                T q = x[j] / S;
                T qc = FN(fl_clip)(q, eps, ome);
                acc += yy * LOG(qc);
                T gq = -yy / qc;
                if (q < eps) gq = zero;
                if (q > ome) gq = zero;
                g[j] = gq;
                dot += gq * q;
            }
        } else {
            FL_PRAGMA(omp simd reduction(+ : acc))
            for (int64_t j = 0; j < C; j++) {
                T yy = y[j] * a + b;
                T qc = FN(fl_clip)(x[j] / S, eps, ome);
                acc += yy * LOG(qc);
            }
        }
        loss[i] = -acc;
        tot += (double)(-acc) * (double)w[i * ws];
        if (want_grad) {
            T r = w[i * ws] * prm[F_SCALE] / S;
            for (int64_t j = 0; j < C; j++) g[j] = (g[j] - dot) * r;
        }
    }
    free(idx);
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}
FL_ENTRY(cce_probs, rows_cce_probs, T)

/* Keras CategoricalFocalCrossentropy; prm[P_FLAG] != 0 means logits.
 * p = softmax(x) (logits) -> q = p / sum(p) -> c = clip(q) ->
 * loss = sum_j alpha_j (1 - c_j)**gamma (-y'_j log c_j), alpha_j =
 * prm[P_AVEC + j * prm[P_AVEC_STEP]] (one alpha, or one per class; av holds
 * them contiguous). sq: gamma == 2, and logits: constants of each body (a
 * vectorized loop computes both sides of a branch). Logits: the row's softmax
 * is computed once into pb (one exp per element, not five). Rows with few
 * nonzero labels (one-hot) take the terms of those classes only. */
FL_INLINE T FN(cfocal_term)(T yy, T q, T eps, T ome, T al, T gamma, int sq, T *gq) {
    /* one class: its loss term (returned) and d term/dq (0 where q is clipped) */
    T qc = FN(fl_clip)(q, eps, ome);
    T lc = LOG(qc);
    T f, dfm;
    FN(focal_pow)(L(1.0) - qc, gamma, sq, &f, &dfm);
    T d = al * (-dfm * (-yy * lc) + f * (-yy / qc));
    if (q < eps) d = L(0.0);
    if (q > ome) d = L(0.0);
    *gq = d;
    return al * f * (-yy * lc);
}

FL_INLINE void FN(categorical_focal_body)(const T *restrict yt, const T *restrict yp,
                                          const T *restrict prm, const T *restrict w, int64_t ws,
                                          T *restrict loss, T *restrict grad, int want_grad,
                                          int64_t C, int64_t lo, int64_t hi, const T *restrict av,
                                          T *restrict pb, int64_t *restrict idx, int sq, int logits,
                                          double *tot_out) {
    T zero = L(0.0), one = L(1.0);
    T eps = prm[P_EPS], ome = prm[P_OME];
    T a = prm[P_LS_A], b = prm[P_LS_B];
    T gamma = prm[P_GAMMA];
    double tot = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        const T *x = yp + i * C;
        const T *y = yt + i * C;
        T *g = grad + i * C;
        const T *p = x; /* the probabilities: y_pred, or softmax(x) in pb */
        if (logits) {
            T m = FN(fl_row_max)(x, C);
            T s = zero;
            FL_PRAGMA(omp simd reduction(+ : s))
            for (int64_t j = 0; j < C; j++) {
                T e = EXP(x[j] - m);
                pb[j] = e;
                s += e;
            }
            T inv_s = one / s;
            for (int64_t j = 0; j < C; j++) pb[j] = pb[j] * inv_s;
            p = pb;
        }
        T S = zero;
        int64_t n = 0; /* nonzero labels, for sparse_labels */
        FL_PRAGMA(omp simd reduction(+ : S, n))
        for (int64_t j = 0; j < C; j++) {
            S += p[j];
            n += (y[j] * a + b != zero);
        }
        T acc = zero, dot = zero;
        int64_t nz = FN(sparse_labels)(y, C, a, b, S, idx, n);
        if (nz >= 0) { /* few nonzero labels (one-hot): their classes only */
            if (want_grad)
                for (int64_t j = 0; j < C; j++) g[j] = zero;
            for (int64_t t = 0; t < nz; t++) {
                int64_t j = idx[t];
                T q = p[j] / S, gq;
                acc += FN(cfocal_term)(y[j] * a + b, q, eps, ome, av[j], gamma, sq, &gq);
                if (want_grad) {
                    g[j] = gq;
                    dot += gq * q;
                }
            }
        } else {
            FL_PRAGMA(omp simd reduction(+ : acc, dot))
            for (int64_t j = 0; j < C; j++) {
                T q = p[j] / S, gq;
                acc += FN(cfocal_term)(y[j] * a + b, q, eps, ome, av[j], gamma, sq, &gq);
                if (want_grad) {
                    g[j] = gq;
                    dot += gq * q;
                }
            }
        }
        loss[i] = acc;
        tot += (double)acc * (double)w[i * ws];
        if (want_grad) {
            T sc = w[i * ws] * prm[F_SCALE];
            if (logits) {
                T dotp = zero;
                FL_PRAGMA(omp simd reduction(+ : dotp))
                for (int64_t j = 0; j < C; j++) {
                    T dp = (g[j] - dot) / S;
                    g[j] = dp;
                    dotp += dp * p[j];
                }
                for (int64_t j = 0; j < C; j++) g[j] = p[j] * (g[j] - dotp) * sc;
            } else {
                T r = sc / S;
                for (int64_t j = 0; j < C; j++) g[j] = (g[j] - dot) * r;
            }
        }
    }
    *tot_out = tot;
}

/* categorical_focal_body's terms in columns: Q holds q, Y y' (replaced by the
 * loss terms); G <- d term / dq, 0 where q is clipped. sq: gamma == 2 (a
 * constant of each inlined copy). */
FL_INLINE void FN(cols_cfocal_terms)(T *restrict Q, T *restrict Y, T *restrict G, int64_t C, int64_t nr,
                                     int64_t nb, const T *restrict av, T eps, T ome, T gamma, int sq) {
    for (int64_t j = 0; j < C; j++) {
        const T *restrict q = Q + j * nb;
        T *restrict y = Y + j * nb;
        T *restrict g = G + j * nb;
        T al = av[j];
        for (int64_t i = 0; i < nr; i++) {
            T gq;
            y[i] = FN(cfocal_term)(y[i], q[i], eps, ome, al, gamma, sq, &gq);
            g[i] = gq;
        }
    }
}

/* rows_categorical_focal in columns. */
FL_CLONES static int FN(cols_categorical_focal)(FL_ROWS_ARGS(T)) {
    (void)R;
    int64_t C = K, nb;
    T one = L(1.0);
    T eps = prm[P_EPS], ome = prm[P_OME], a = prm[P_LS_A], b = prm[P_LS_B];
    T gamma = prm[P_GAMMA];
    int sq = gamma == L(2.0), logits = prm[P_FLAG] != L(0.0);
    int64_t astep = prm[P_AVEC_STEP] != L(0.0);
    int64_t rb = FN(cols_block)(C, lo, hi, &nb);
    T *buf = (T *)malloc(sizeof(T) * (size_t)(nb * (4 * C + 3) + C));
    if (!buf) return FL_ENOMEM;
    T *Q = buf, *PB = Q + C * nb, *Y = PB + C * nb, *G = Y + C * nb, *S = G + C * nb, *A = S + nb, *D = A + nb;
    T *av = D + nb;
    for (int64_t j = 0; j < C; j++) av[j] = prm[P_AVEC + j * astep];
    double tot = 0.0;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t nr = hi - r0 < rb ? hi - r0 : rb;
        FN(cols_in)(yp + r0 * C, C, nr, nb, Q);
        FN(cols_in_labels)(yt + r0 * C, C, nr, nb, Y, a, b);
        if (logits) { /* p = softmax(x), kept in PB */
            FN(cols_row_max)(Q, C, nr, nb, S);
            for (int64_t j = 0; j < C; j++) {
                T *restrict q = Q + j * nb;
                for (int64_t i = 0; i < nr; i++) q[i] = EXP(q[i] - S[i]);
            }
            FN(cols_row_sums)(Q, C, nr, nb, A);
            for (int64_t i = 0; i < nr; i++) A[i] = one / A[i];
            for (int64_t j = 0; j < C; j++) {
                T *restrict q = Q + j * nb;
                T *restrict pb = PB + j * nb;
                for (int64_t i = 0; i < nr; i++) {
                    T v = q[i] * A[i];
                    q[i] = v;
                    pb[i] = v;
                }
            }
        }
        FN(cols_row_sums)(Q, C, nr, nb, S);
        for (int64_t j = 0; j < C; j++) {
            T *restrict q = Q + j * nb;
            for (int64_t i = 0; i < nr; i++) q[i] = q[i] / S[i];
        }
        if (sq)
            FN(cols_cfocal_terms)(Q, Y, G, C, nr, nb, av, eps, ome, gamma, 1);
        else
            FN(cols_cfocal_terms)(Q, Y, G, C, nr, nb, av, eps, ome, gamma, 0);
        FN(cols_row_sums)(Y, C, nr, nb, A);
        FN(cols_row_dots)(G, Q, C, nr, nb, D);
        for (int64_t i = 0; i < nr; i++) {
            T li = A[i];
            loss[r0 + i] = li;
            tot += (double)li * (double)w[(r0 + i) * ws];
            A[i] = w[(r0 + i) * ws] * prm[F_SCALE]; /* the row's scale */
        }
        if (want_grad) {
            if (logits) { /* d/dp_j = (g_j - dot) / S, then through the softmax */
                for (int64_t j = 0; j < C; j++) {
                    T *restrict g = G + j * nb;
                    for (int64_t i = 0; i < nr; i++) g[i] = (g[i] - D[i]) / S[i];
                }
                FN(cols_row_dots)(G, PB, C, nr, nb, D);
                for (int64_t j = 0; j < C; j++) {
                    T *restrict g = G + j * nb;
                    const T *restrict pb = PB + j * nb;
                    for (int64_t i = 0; i < nr; i++) g[i] = pb[i] * (g[i] - D[i]) * A[i];
                }
            } else {
                for (int64_t i = 0; i < nr; i++) S[i] = A[i] / S[i];
                for (int64_t j = 0; j < C; j++) {
                    T *restrict g = G + j * nb;
                    for (int64_t i = 0; i < nr; i++) g[i] = (g[i] - D[i]) * S[i];
                }
            }
            FN(cols_out)(G, C, nr, nb, grad + r0 * C);
        }
    }
    free(buf);
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}


FL_CLONES static int FN(rows_categorical_focal)(FL_ROWS_ARGS(T)) {
    if (K <= FL_CUT(FL_COLS_MAX_K, FL_COLS_MAX_K_F64))
        return FN(cols_categorical_focal)(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, lo, hi, info);
    (void)R;
    int64_t C = K;
    int64_t astep = prm[P_AVEC_STEP] != L(0.0);
    T *av = (T *)malloc(sizeof(T) * (size_t)C * 2); /* alphas, then a softmax row */
    int64_t *idx = (int64_t *)malloc(sizeof(int64_t) * (size_t)C); /* a row's nonzero labels */
    if (!av || !idx) {
        free(av);
        free(idx);
        return FL_ENOMEM;
    }
    T *pb = av + C;
    for (int64_t j = 0; j < C; j++) av[j] = prm[P_AVEC + j * astep];
    double tot = 0.0;
    int sq = prm[P_GAMMA] == L(2.0), logits = prm[P_FLAG] != L(0.0);
    if (sq && logits)
        FN(categorical_focal_body)(yt, yp, prm, w, ws, loss, grad, want_grad, C, lo, hi, av, pb, idx, 1, 1, &tot);
    else if (sq)
        FN(categorical_focal_body)(yt, yp, prm, w, ws, loss, grad, want_grad, C, lo, hi, av, pb, idx, 1, 0, &tot);
    else if (logits)
        FN(categorical_focal_body)(yt, yp, prm, w, ws, loss, grad, want_grad, C, lo, hi, av, pb, idx, 0, 1, &tot);
    else
        FN(categorical_focal_body)(yt, yp, prm, w, ws, loss, grad, want_grad, C, lo, hi, av, pb, idx, 0, 0, &tot);
    free(av);
    free(idx);
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}
FL_ENTRY(categorical_focal, rows_categorical_focal, T)

/* ---- gradient + Hessian diagonal (boosting) ------------------------------ */

/* d/dp, d2/dp2 of -(y log c + (1 - y) log(1 - c)), c = clip(p): 0 outside. */
FL_INLINE void FN(gh_bce)(T y, T p, FN(fl_par) P, T *g, T *h) {
    T zero = L(0.0), one = L(1.0);
    T pc = FN(fl_clip)(p, P.eps, P.ome);
    T q = one - pc;
    T gg = (pc - y) / (pc * q);
    T hh = y / (pc * pc) + (one - y) / (q * q);
    if (p < P.eps) {
        gg = zero;
        hh = zero;
    }
    if (p > P.ome) {
        gg = zero;
        hh = zero;
    }
    *g = gg;
    *h = hh;
}

/* g = sigmoid(x) - y, h = sigmoid(x) sigmoid(-x). */
FL_INLINE void FN(gh_bce_logits)(T y, T x, FN(fl_par) P, T *g, T *h) {
    (void)P;
    T s, t;
    FN(sigmoid_pair)(x, &s, &t);
    *g = s - y;
    *h = s * t;
}

/* g = 1 - y / (p + eps), h = y / (p + eps)**2. */
FL_INLINE void FN(gh_poisson)(T y, T p, FN(fl_par) P, T *g, T *h) {
    T r = y / (p + P.eps);
    *g = L(1.0) - r;
    *h = r / (p + P.eps);
}

FL_ELEMENTWISE_GH(bce_gh, FN(gh_bce), 1)
FL_ELEMENTWISE_GH(bce_logits_gh, FN(gh_bce_logits), 1)
FL_ELEMENTWISE_GH(poisson_gh, FN(gh_poisson), 1)
FL_GH_ENTRY(bce_gh, ghrows_bce_gh, T)
FL_GH_ENTRY(bce_logits_gh, ghrows_bce_logits_gh, T)
FL_GH_ENTRY(poisson_gh, ghrows_poisson_gh, T)

/* ghrows_cce_logits_gh in columns (short rows, as cols_cce_logits). */
FL_CLONES static int FN(ghcols_cce_logits_gh)(FL_GH_ROWS_ARGS(T)) {
    (void)R;
    int64_t C = K, nb;
    T one = L(1.0);
    T a = prm[P_LS_A], b = prm[P_LS_B];
    int64_t rb = FN(cols_block)(C, lo, hi, &nb);
    T *buf = (T *)malloc(sizeof(T) * (size_t)(nb * (4 * C + 3)));
    if (!buf) return FL_ENOMEM;
    T *P = buf, *Y = P + C * nb, *G = Y + C * nb, *H = G + C * nb, *M = H + C * nb, *S = M + nb, *SY = S + nb;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t nr = hi - r0 < rb ? hi - r0 : rb;
        FN(cols_in)(yp + r0 * C, C, nr, nb, P);
        FN(cols_in_labels)(yt + r0 * C, C, nr, nb, Y, a, b);
        FN(cols_row_max)(P, C, nr, nb, M);
        for (int64_t j = 0; j < C; j++) {
            const T *restrict x = P + j * nb;
            T *restrict g = G + j * nb;
            for (int64_t i = 0; i < nr; i++) g[i] = EXP(x[i] - M[i]);
        }
        FN(cols_row_sums)(G, C, nr, nb, S);
        FN(cols_row_sums)(Y, C, nr, nb, SY);
        for (int64_t i = 0; i < nr; i++) {
            S[i] = one / S[i];
            M[i] = w[(r0 + i) * ws] * prm[F_SCALE]; /* the row's scale */
        }
        for (int64_t j = 0; j < C; j++) {
            const T *restrict y = Y + j * nb;
            T *restrict g = G + j * nb;
            T *restrict h = H + j * nb;
            for (int64_t i = 0; i < nr; i++) {
                T pj = g[i] * S[i];
                g[i] = (SY[i] * pj - y[i]) * M[i];
                h[i] = SY[i] * pj * (one - pj) * M[i];
            }
        }
        FN(cols_out)(G, C, nr, nb, grad + r0 * C);
        FN(cols_out)(H, C, nr, nb, hess + r0 * C);
    }
    free(buf);
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = 0.0;
    return FL_OK;
}

/* ghrows_scce_logits_gh in columns. */
FL_CLONES static int FN(ghcols_scce_logits_gh)(FL_GH_ROWS_ARGS(int64_t)) {
    (void)R;
    int64_t C = K, nb;
    T zero = L(0.0), one = L(1.0);
    T ignore = prm[P_IGNORE];
    int has_ignore = prm[P_HAS_IGNORE] != zero;
    int64_t rb = FN(cols_block)(C, lo, hi, &nb);
    T *buf = (T *)malloc(sizeof(T) * (size_t)(nb * (3 * C + 2)));
    int64_t *krow = (int64_t *)malloc(sizeof(int64_t) * (size_t)nb);
    if (!buf || !krow) {
        free(buf);
        free(krow);
        return FL_ENOMEM;
    }
    T *P = buf, *G = P + C * nb, *H = G + C * nb, *M = H + C * nb, *S = M + nb;
    int64_t nbad = 0, first = -1;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t nr = hi - r0 < rb ? hi - r0 : rb;
        FN(cols_in)(yp + r0 * C, C, nr, nb, P);
        FN(cols_row_max)(P, C, nr, nb, M);
        for (int64_t j = 0; j < C; j++) {
            const T *restrict x = P + j * nb;
            T *restrict g = G + j * nb;
            for (int64_t i = 0; i < nr; i++) g[i] = EXP(x[i] - M[i]);
        }
        FN(cols_row_sums)(G, C, nr, nb, S);
        for (int64_t i = 0; i < nr; i++) {
            int64_t k = FN(fl_label)(yt[r0 + i], C, ignore, has_ignore);
            krow[i] = k;
            if (k == -1) {
                nbad++;
                if (first < 0) first = r0 + i;
            }
            S[i] = one / S[i];
            M[i] = w[(r0 + i) * ws] * prm[F_SCALE]; /* the row's scale */
        }
        for (int64_t j = 0; j < C; j++) {
            T *restrict g = G + j * nb;
            T *restrict h = H + j * nb;
            for (int64_t i = 0; i < nr; i++) {
                T pj = g[i] * S[i];
                g[i] = pj * M[i];
                h[i] = pj * (one - pj) * M[i];
            }
        }
        FN(cols_out)(G, C, nr, nb, grad + r0 * C);
        FN(cols_out)(H, C, nr, nb, hess + r0 * C);
        for (int64_t i = 0; i < nr; i++) {
            int64_t k = krow[i];
            T *g = grad + (r0 + i) * C;
            T *h = hess + (r0 + i) * C;
            if (k < 0) {
                for (int64_t j = 0; j < C; j++) {
                    g[j] = zero;
                    h[j] = zero;
                }
                continue;
            }
            g[k] -= M[i];
        }
    }
    free(buf);
    free(krow);
    info[0] = (double)nbad;
    info[1] = (double)first;
    info[2] = 0.0;
    return FL_OK;
}

/* p = softmax(x): g = sum(y') p - y', h = sum(y') p (1 - p). */
FL_CLONES static int FN(ghrows_cce_logits_gh)(FL_GH_ROWS_ARGS(T)) {
    if (K <= FL_CUT(FL_EXP_BLOCKED_COLS_MAX_K, FL_GH_COLS_MAX_K_F64)) return FN(ghcols_cce_logits_gh)(yt, yp, prm, w, ws, grad, hess, R, K, lo, hi, info);
    (void)R;
    int64_t C = K;
    T zero = L(0.0), one = L(1.0);
    T a = prm[P_LS_A], b = prm[P_LS_B];
    int64_t rb = C >= FL_BLOCK ? 1 : FL_BLOCK / C;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t r1 = hi < r0 + rb ? hi : r0 + rb;
        for (int64_t i = r0; i < r1; i++) {
            const T *x = yp + i * C;
            T m = FN(fl_row_max)(x, C);
            T *o = grad + i * C;
            for (int64_t j = 0; j < C; j++) o[j] = x[j] - m;
        }
        FN(fl_exp_inplace)(grad + r0 * C, (r1 - r0) * C);
        for (int64_t i = r0; i < r1; i++) {
            T *o = grad + i * C;
            T *hh = hess + i * C;
            const T *y = yt + i * C;
            T s = zero, sy = zero;
            FL_PRAGMA(omp simd reduction(+ : s, sy))
            for (int64_t j = 0; j < C; j++) {
                s += o[j];
                sy += y[j] * a + b;
            }
            T sc = w[i * ws] * prm[F_SCALE];
            T r = one / s;
            for (int64_t j = 0; j < C; j++) {
                T pj = o[j] * r;
                o[j] = (sy * pj - (y[j] * a + b)) * sc;
                hh[j] = sy * pj * (one - pj) * sc;
            }
        }
    }
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = 0.0;
    return FL_OK;
}
FL_GH_ENTRY(cce_logits_gh, ghrows_cce_logits_gh, T)

/* p = softmax(x): g = p - onehot(y), h = p (1 - p); ignored rows 0; invalid
 * labels counted (rows zeroed). */
FL_CLONES static int FN(ghrows_scce_logits_gh)(FL_GH_ROWS_ARGS(int64_t)) {
    if (K <= FL_CUT(FL_EXP_BLOCKED_COLS_MAX_K, FL_GH_COLS_MAX_K_F64)) return FN(ghcols_scce_logits_gh)(yt, yp, prm, w, ws, grad, hess, R, K, lo, hi, info);
    (void)R;
    int64_t C = K;
    T zero = L(0.0), one = L(1.0);
    T ignore = prm[P_IGNORE];
    int has_ignore = prm[P_HAS_IGNORE] != zero;
    int64_t rb = C >= FL_BLOCK ? 1 : FL_BLOCK / C;
    int64_t nb = hi - lo < rb ? hi - lo : rb;
    int64_t *krow = (int64_t *)malloc(sizeof(int64_t) * (size_t)(nb > 0 ? nb : 1));
    if (!krow) return FL_ENOMEM;
    int64_t nbad = 0, first = -1;
    for (int64_t r0 = lo; r0 < hi; r0 += rb) {
        int64_t r1 = hi < r0 + rb ? hi : r0 + rb;
        for (int64_t i = r0; i < r1; i++) {
            int64_t k = FN(fl_label)(yt[i], C, ignore, has_ignore);
            krow[i - r0] = k;
            if (k == -1) {
                nbad++;
                if (first < 0) first = i;
            }
            const T *x = yp + i * C;
            T m = FN(fl_row_max)(x, C);
            T *o = grad + i * C;
            for (int64_t j = 0; j < C; j++) o[j] = x[j] - m;
        }
        FN(fl_exp_inplace)(grad + r0 * C, (r1 - r0) * C);
        for (int64_t i = r0; i < r1; i++) {
            int64_t k = krow[i - r0];
            T *o = grad + i * C;
            T *hh = hess + i * C;
            if (k < 0) {
                for (int64_t j = 0; j < C; j++) {
                    o[j] = zero;
                    hh[j] = zero;
                }
                continue;
            }
            T s = FN(fl_sum)(o, C);
            T sc = w[i * ws] * prm[F_SCALE];
            T r = one / s;
            for (int64_t j = 0; j < C; j++) {
                T pj = o[j] * r;
                o[j] = pj * sc;
                hh[j] = pj * (one - pj) * sc;
            }
            o[k] -= sc;
        }
    }
    free(krow);
    info[0] = (double)nbad;
    info[1] = (double)first;
    info[2] = 0.0;
    return FL_OK;
}
FL_GH_ENTRY(scce_logits_gh, ghrows_scce_logits_gh, int64_t)

#endif /* FL_PASS */
