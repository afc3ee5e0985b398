/* Regression, similarity and hinge family: the C twins of
 * fastloss/backends/numba_cpu/regression.py (same formulas, kink choices,
 * NaN handling; read that module's docstring for the math).
 *
 * This file includes itself twice (FL_PASS 1: float32, 2: float64); the
 * per-dtype prelude and the drivers are in fl_tmpl.h.
 */
#ifndef FL_PASS
#include "fastloss.h"
#define FL_PASS 1
#include "regression.c"
#undef FL_PASS
#define FL_PASS 2
#include "regression.c"
#undef FL_PASS
#else /* ---- one pass: T is float (FL_PASS 1) or double (FL_PASS 2) ---- */
#include "fl_tmpl.h"

/* sign(e) with sign(0) = 0 and sign(NaN) = NaN (TF's Sign). */
FL_INLINE T FN(sign)(T e) {
    T s = L(0.0);
    if (e > L(0.0)) s = L(1.0);
    if (e < L(0.0)) s = L(-1.0);
    if (e != e) s = e;
    return s;
}

FL_INLINE void FN(e_mse)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)P;
    (void)sq;
    T e = p - y;
    *l = e * e;
    *g = e + e;
}

FL_INLINE void FN(e_mae)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)P;
    (void)sq;
    T e = p - y;
    *l = ABS(e);
    *g = FN(sign)(e);
}

FL_INLINE T FN(mape_scale)(T y, T eps) {
    T m = ABS(y);
    if (m < eps) m = eps;
    return L(100.0) / m;
}

FL_INLINE void FN(e_mape)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)sq;
    T e = p - y;
    T r = FN(mape_scale)(y, P.eps);
    *l = ABS(e) * r;
    *g = FN(sign)(e) * r;
}

/* (d, 1 / (1 + max(p, eps)), p < eps). */
FL_INLINE void FN(msle_parts)(T y, T p, T eps, T *d, T *r, int *clipped) {
    T pc = p;
    if (p < eps) pc = eps;
    T yc = y;
    if (y < eps) yc = eps;
    *d = LOG1P(pc) - LOG1P(yc);
    *r = L(1.0) / (L(1.0) + pc);
    *clipped = p < eps;
}

FL_INLINE void FN(e_msle)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)sq;
    T d, r;
    int clipped;
    FN(msle_parts)(y, p, P.eps, &d, &r, &clipped);
    T gg = (d + d) * r;
    if (clipped) gg = L(0.0);
    *l = d * d;
    *g = gg;
}

FL_INLINE void FN(e_huber)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)sq;
    T half = L(0.5), alpha = P.alpha;
    T e = p - y;
    T ae = ABS(e);
    T ll = half * e * e;
    if (ae > alpha) ll = alpha * ae - half * alpha * alpha;
    T gg = e;
    if (e > alpha) gg = alpha;
    if (e < -alpha) gg = -alpha;
    *l = ll;
    *g = gg;
}

/* (|e|, u = exp(-2|e|), tanh(e)), tanh = -expm1(-2|e|) / (2 + expm1(-2|e|)). */
FL_INLINE void FN(logcosh_parts)(T e, T *ae, T *u, T *t) {
    *ae = ABS(e);
    T em;
    EXPM1_EXP(L(-2.0) * *ae, &em, u);
    T tt = -em / (L(2.0) + em);
    if (e < L(0.0)) tt = -tt;
    *t = tt;
}

/* |e| + log1p(u) - log 2 for |e| >= 0.625; below, -log1p(-tanh(e)**2) / 2. */
FL_INLINE void FN(e_log_cosh)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)P;
    (void)sq;
    T ae, u, t;
    FN(logcosh_parts)(p - y, &ae, &u, &t);
    int small = ae < L(0.625);
    T arg = small ? -(t * t) : u;
    T lg = LOG1P_SMALL(arg);
    T ll = ae + lg - L(0.6931471805599453);
    if (small) ll = L(-0.5) * lg;
    *l = ll;
    *g = t;
}

FL_INLINE void FN(e_hinge)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)P;
    (void)sq;
    T m = L(1.0) - y * p;
    T ll = m;
    if (m < L(0.0)) ll = L(0.0);
    T gg = -y;
    if (!(m >= L(0.0))) gg = L(0.0);
    *l = ll;
    *g = gg;
}

FL_INLINE void FN(e_squared_hinge)(T y, T p, FN(fl_par) P, int sq, T *l, T *g) {
    (void)P;
    (void)sq;
    T m = L(1.0) - y * p;
    T mc = m;
    if (m < L(0.0)) mc = L(0.0);
    T gg = L(-2.0) * y * mc;
    if (!(m >= L(0.0))) gg = L(0.0); /* TF: no gradient through max(NaN, 0) */
    *l = mc * mc;
    *g = gg;
}

FL_ELEMENTWISE(mse, FN(e_mse), 1, FL_Y_RAW)
FL_ELEMENTWISE(mae, FN(e_mae), 1, FL_Y_RAW)
FL_ELEMENTWISE(mape, FN(e_mape), 1, FL_Y_RAW)
FL_ELEMENTWISE(msle, FN(e_msle), 1, FL_Y_RAW)
FL_ELEMENTWISE(huber, FN(e_huber), 1, FL_Y_RAW)
FL_ELEMENTWISE(log_cosh, FN(e_log_cosh), 1, FL_Y_RAW)
FL_ELEMENTWISE(hinge, FN(e_hinge), 1, FL_Y_MAP)
FL_ELEMENTWISE(squared_hinge, FN(e_squared_hinge), 1, FL_Y_MAP)

FL_ENTRY(mse, rows_mse, T)
FL_ENTRY(mae, rows_mae, T)
FL_ENTRY(mape, rows_mape, T)
FL_ENTRY(msle, rows_msle, T)
FL_ENTRY(huber, rows_huber, T)
FL_ENTRY(log_cosh, rows_log_cosh, T)

/* Hinge label map: Keras converts {0, 1} labels to {-1, 1} only when EVERY
 * label of the batch is 0 or 1; the scan runs first, the map goes into a
 * private copy of prm as y * a + b. */
FL_CLONES static int64_t FN(count_nonbinary)(const T *y, int64_t lo, int64_t hi) {
    for (int64_t s0 = lo; s0 < hi; s0 += FL_BLOCK) {
        int64_t s1 = hi < s0 + FL_BLOCK ? hi : s0 + FL_BLOCK;
        int64_t n = 0;
        for (int64_t t = s0; t < s1; t++) n += (y[t] != L(0.0) && y[t] != L(1.0));
        if (n) return n;
    }
    return 0;
}

static void FN(hinge_prm)(const T *yt, const T *prm, int64_t n, int nch, T *p2) {
    int64_t bad = 0;
    if (nch <= 1) {
        bad = FN(count_nonbinary)(yt, 0, n);
    } else {
        FL_PRAGMA(omp parallel for num_threads(nch) schedule(static, 1) reduction(+ : bad))
        for (int c = 0; c < nch; c++)
            bad += FN(count_nonbinary)(yt, (int64_t)c * n / nch, (int64_t)(c + 1) * n / nch);
    }
    memcpy(p2, prm, sizeof(T) * FL_NPRM);
    p2[P_LS_A] = bad == 0 ? L(2.0) : L(1.0);
    p2[P_LS_B] = bad == 0 ? L(-1.0) : L(0.0);
}

#define FL_HINGE_PREP                                                                             \
    T p2_[FL_NPRM];                                                                               \
    FN(hinge_prm)(yt, prm, R * K, nch, p2_);                                                      \
    prm = p2_
FL_ENTRY_PREP(hinge, rows_hinge, T, FL_HINGE_PREP)
FL_ENTRY_PREP(squared_hinge, rows_squared_hinge, T, FL_HINGE_PREP)

/* ---- row losses ----------------------------------------------------------- */

/* Keras: -sum(l2n(y) l2n(p)), l2n(x) = x min(rsqrt(sum x**2), 1/eps). */
FL_CLONES static int FN(rows_cosine_similarity)(FL_ROWS_ARGS(T)) {
    (void)R;
    T zero = L(0.0), one = L(1.0);
    T inv_eps = one / prm[P_EPS];
    T eps2 = prm[P_EPS] * prm[P_EPS];
    double tot = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        const T *y = yt + i * K;
        const T *x = yp + i * K;
        T syy = zero, spp = zero, syp = zero;
        /* short rows: simd lanes would cost more than they save. Two copies of the loop:
         * `omp simd if(simd: K >= 16)` measured 1.29x Numba here against 0.75x for these */
        if (K < 16) {
            for (int64_t j = 0; j < K; j++) {
                syy += y[j] * y[j];
                spp += x[j] * x[j];
                syp += y[j] * x[j];
            }
        } else {
            FL_PRAGMA(omp simd reduction(+ : syy, spp, syp))
            for (int64_t j = 0; j < K; j++) {
                syy += y[j] * y[j];
                spp += x[j] * x[j];
                syp += y[j] * x[j];
            }
        }
        T r = one / SQRT(syy);
        if (syy < eps2) r = inv_eps;
        T a = one / SQRT(spp);
        int small = spp < eps2;
        if (small) a = inv_eps;
        T c = (a * r) * syp;
        loss[i] = -c;
        tot += (double)(-c) * (double)w[i * ws];
        if (want_grad) {
            T sc = w[i * ws] * prm[F_SCALE] * a;
            T k = c * a;
            if (small) k = zero;
            T ks = k * sc, rs = r * sc;
            T *g = grad + i * K;
            for (int64_t j = 0; j < K; j++) g[j] = ks * x[j] - rs * y[j];
        }
    }
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}
FL_ENTRY(cosine_similarity, rows_cosine_similarity, T)

/* Keras: max(neg - pos + 1, 0), pos = sum(y p), neg = max((1 - y) p); TF's
 * gradient splits reduce_max's gradient evenly between ties. Each term is
 * exactly 0 where its factor is (y = 0 in pos, y = 1 in neg): the limits at
 * infinite scores, no 0 * inf NaN. A NaN q (a NaN input) gets its sign bit
 * cleared so that the key max keeps it. */
FL_INLINE T FN(hinge_q)(T y, T x) {
    return y != L(1.0) ? (L(1.0) - y) * x : L(0.0);
}

FL_CLONES static int FN(rows_categorical_hinge)(FL_ROWS_ARGS(T)) {
    (void)R;
    T zero = L(0.0), one = L(1.0);
    double tot = 0.0;
    for (int64_t i = lo; i < hi; i++) {
        const T *y = yt + i * K;
        const T *x = yp + i * K;
        T pos = zero;
        T q0 = FN(hinge_q)(y[0], x[0]);
        KEY_T m = FKEY(q0 == q0 ? q0 : ABS(q0));
        for (int64_t j = 0; j < K; j++) {
            pos += y[j] != zero ? y[j] * x[j] : zero;
            T q = FN(hinge_q)(y[j], x[j]);
            KEY_T v = FKEY(q == q ? q : ABS(q));
            m = v > m ? v : m;
        }
        T neg = FUNKEY(m);
        T d = neg - pos + one;
        T li = d;
        if (d < zero) li = zero;
        loss[i] = li;
        tot += (double)li * (double)w[i * ws];
        if (want_grad) {
            T sc = w[i * ws] * prm[F_SCALE];
            T *g = grad + i * K;
            if (d >= zero) {
                T cnt = zero;
                for (int64_t j = 0; j < K; j++) cnt += (FN(hinge_q)(y[j], x[j]) == neg) ? one : zero;
                T r = sc / cnt;
                for (int64_t j = 0; j < K; j++) {
                    T gj = -y[j] * sc;
                    if (FN(hinge_q)(y[j], x[j]) == neg) gj += (one - y[j]) * r;
                    g[j] = gj;
                }
            } else {
                for (int64_t j = 0; j < K; j++) g[j] = zero;
            }
        }
    }
    info[0] = 0.0;
    info[1] = -1.0;
    info[2] = tot;
    return FL_OK;
}
FL_ENTRY(categorical_hinge, rows_categorical_hinge, T)

/* ---- gradient + Hessian diagonal (boosting) ------------------------------ */

FL_INLINE void FN(gh_mse)(T y, T p, FN(fl_par) P, T *g, T *h) {
    (void)P;
    T e = p - y;
    *g = e + e;
    *h = L(2.0);
}

FL_INLINE void FN(gh_mae)(T y, T p, FN(fl_par) P, T *g, T *h) {
    (void)P;
    *g = FN(sign)(p - y);
    *h = L(0.0);
}

FL_INLINE void FN(gh_mape)(T y, T p, FN(fl_par) P, T *g, T *h) {
    *g = FN(sign)(p - y) * FN(mape_scale)(y, P.eps);
    *h = L(0.0);
}

FL_INLINE void FN(gh_msle)(T y, T p, FN(fl_par) P, T *g, T *h) {
    T d, r;
    int clipped;
    FN(msle_parts)(y, p, P.eps, &d, &r, &clipped);
    T gg = (d + d) * r;
    T hh = L(2.0) * (L(1.0) - d) * (r * r);
    if (clipped) {
        gg = L(0.0);
        hh = L(0.0);
    }
    *g = gg;
    *h = hh;
}

FL_INLINE void FN(gh_huber)(T y, T p, FN(fl_par) P, T *g, T *h) {
    T e = p - y;
    T gg = e, hh = L(1.0);
    if (e > P.alpha) {
        gg = P.alpha;
        hh = L(0.0);
    }
    if (e < -P.alpha) {
        gg = -P.alpha;
        hh = L(0.0);
    }
    *g = gg;
    *h = hh;
}

FL_INLINE void FN(gh_log_cosh)(T y, T p, FN(fl_par) P, T *g, T *h) {
    (void)P;
    T ae, u, t;
    FN(logcosh_parts)(p - y, &ae, &u, &t);
    T v = L(1.0) + u;
    *g = t;
    *h = L(4.0) * u / (v * v);
}

FL_INLINE void FN(gh_hinge)(T y, T p, FN(fl_par) P, T *g, T *h) {
    (void)P;
    T m = L(1.0) - y * p;
    T gg = -y;
    if (!(m >= L(0.0))) gg = L(0.0);
    *g = gg;
    *h = L(0.0);
}

FL_INLINE void FN(gh_squared_hinge)(T y, T p, FN(fl_par) P, T *g, T *h) {
    (void)P;
    T m = L(1.0) - y * p;
    T gg = L(-2.0) * y * m;
    T hh = L(2.0) * y * y;
    if (!(m >= L(0.0))) {
        gg = L(0.0);
        hh = L(0.0);
    }
    *g = gg;
    *h = hh;
}

FL_ELEMENTWISE_GH(mse_gh, FN(gh_mse), 1)
FL_ELEMENTWISE_GH(mae_gh, FN(gh_mae), 1)
FL_ELEMENTWISE_GH(mape_gh, FN(gh_mape), 1)
FL_ELEMENTWISE_GH(msle_gh, FN(gh_msle), 1)
FL_ELEMENTWISE_GH(huber_gh, FN(gh_huber), 1)
FL_ELEMENTWISE_GH(log_cosh_gh, FN(gh_log_cosh), 1)
FL_ELEMENTWISE_GH(hinge_gh, FN(gh_hinge), 1)
FL_ELEMENTWISE_GH(squared_hinge_gh, FN(gh_squared_hinge), 1)
FL_GH_ENTRY(mse_gh, ghrows_mse_gh, T)
FL_GH_ENTRY(mae_gh, ghrows_mae_gh, T)
FL_GH_ENTRY(mape_gh, ghrows_mape_gh, T)
FL_GH_ENTRY(msle_gh, ghrows_msle_gh, T)
FL_GH_ENTRY(huber_gh, ghrows_huber_gh, T)
FL_GH_ENTRY(log_cosh_gh, ghrows_log_cosh_gh, T)
FL_GH_ENTRY_PREP(hinge_gh, ghrows_hinge_gh, T, FL_HINGE_PREP)
FL_GH_ENTRY_PREP(squared_hinge_gh, ghrows_squared_hinge_gh, T, FL_HINGE_PREP)

#endif /* FL_PASS */
