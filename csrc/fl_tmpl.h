/* Per-dtype template prelude and drivers shared by the kernel families.
 *
 * A family file (crossentropy.c, regression.c, ...) includes itself twice,
 * with FL_PASS 1 (float32) and 2 (float64); each pass includes this file
 * (deliberately without an include guard), which defines T, FN(name) (the
 * name with its _f32/_f64 suffix), the elementary functions of that dtype and
 * the drivers:
 *
 *   FL_ENTRY(name, rows, YT)      the exported loss kernel fl_<name>_<dt>
 *   FL_GH_ENTRY(name, rows, YT)   the exported grad_hess kernel
 *   FL_ELEMENTWISE(name, ELEM, ROW_MEAN, LABEL)  a whole elementwise loss
 *   FL_ELEMENTWISE_GH(name, ELEM, ROW_MEAN)      a whole elementwise grad_hess
 *
 * Kernel contract (the C twin of the Numba kernels', see fastloss.h):
 *   int fl_<name>_<dt>(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, nch, info)
 *   int fl_<name>_gh_<dt>(yt, yp, prm, w, ws, grad, hess, R, K, nch, info)
 * info: nch rows of (bad_labels, first_bad_row, float64 total); nch == 1 runs
 * serially in the calling thread, nch > 1 runs nch row chunks on OpenMP threads.
 */
#include "fl_common.h"

#undef T
#undef FN
#undef EXP
#undef LOG
#undef LOG1P
#undef LOG1P_SMALL
#undef EXPM1_EXP
#undef SQRT
#undef ABS
#undef KEY_T
#undef FKEY
#undef FUNKEY
#undef L

#if FL_PASS == 1
#define T float
#define FN(n) FL_CAT(n, _f32)
#define EXP fl_exp32
#define LOG fl_log32
#define LOG1P fl_log1p32
#define LOG1P_SMALL fl_log1p32_small
#define EXPM1_EXP fl_expm1_exp32
#define SQRT sqrtf
#define ABS fabsf
#define KEY_T int32_t
#define FKEY fl_key32
#define FUNKEY fl_unkey32
#else
#define T double
#define FN(n) FL_CAT(n, _f64)
#define EXP fl_exp64
#define LOG fl_log64
#define LOG1P fl_log1p64
#define LOG1P_SMALL fl_log1p64_small
#define EXPM1_EXP fl_expm1_exp64
#define SQRT sqrt
#define ABS fabs
#define KEY_T int64_t
#define FKEY fl_key64
#define FUNKEY fl_unkey64
#endif
/* a constant in the compute dtype (float32 math must stay float32) */
#define L(x) ((T)(x))

/* The loss' scalar parameters, read once from prm. */
typedef struct {
    T a, b, eps, ome, alpha, gamma, flag;
} FN(fl_par);

FL_INLINE FN(fl_par) FN(fl_params)(const T *prm) {
    FN(fl_par) P;
    P.a = prm[P_LS_A];
    P.b = prm[P_LS_B];
    P.eps = prm[P_EPS];
    P.ome = prm[P_OME];
    P.alpha = prm[P_ALPHA];
    P.gamma = prm[P_GAMMA];
    P.flag = prm[P_FLAG];
    return P;
}

FL_INLINE T FN(fl_clip)(T p, T lo, T hi) {
    T c = p;
    if (c < lo) c = lo;
    if (c > hi) c = hi;
    return c;
}

/* b**g for b >= 0, g >= 0 (0**0 = 1). */
FL_INLINE T FN(fl_pow)(T b, T g) {
    if (g == L(2.0)) return b * b;
    if (g == L(1.0)) return b;
    if (g == L(0.0)) return L(1.0);
    T res = EXP(g * LOG(b));
    if (b == L(0.0)) res = L(0.0);
    return res;
}

/* Max of n values as an integer reduction on order-preserving keys (a NaN
 * with the sign bit clear wins; the row's loss is NaN either way). */
FL_INLINE T FN(fl_row_max)(const T *x, int64_t n) {
    KEY_T m = FKEY(x[0]);
    for (int64_t j = 1; j < n; j++) {
        KEY_T v = FKEY(x[j]);
        m = v > m ? v : m;
    }
    return FUNKEY(m);
}

FL_INLINE void FN(fl_exp_inplace)(T *v, int64_t n) {
    for (int64_t t = 0; t < n; t++) v[t] = EXP(v[t]);
}

FL_INLINE void FN(fl_log_inplace)(T *v, int64_t n) {
    for (int64_t t = 0; t < n; t++) v[t] = LOG(v[t]);
}

FL_INLINE T FN(fl_sum)(const T *v, int64_t n) {
    T acc = L(0.0);
    FL_PRAGMA(omp simd reduction(+ : acc))
    for (int64_t j = 0; j < n; j++) acc += v[j];
    return acc;
}

/* -2: ignored row, -1: bad label, else the class index (Numba's _label). */
FL_INLINE int64_t FN(fl_label)(int64_t v, int64_t C, T ignore, int has_ignore) {
    if (has_ignore && (double)v == (double)ignore) return -2;
    if (!(v >= 0 && v < C)) return -1;
    return v;
}

#ifndef FL_TMPL_MACROS
#define FL_TMPL_MACROS

#define FL_ROWS_ARGS(YT)                                                                          \
    const YT *restrict yt, const T *restrict yp, const T *restrict prm, const T *restrict w,     \
        int64_t ws, T *restrict loss, T *restrict grad, int want_grad, int64_t R, int64_t K,      \
        int64_t lo, int64_t hi, double *restrict info
#define FL_GH_ROWS_ARGS(YT)                                                                       \
    const YT *restrict yt, const T *restrict yp, const T *restrict prm, const T *restrict w,     \
        int64_t ws, T *restrict grad, T *restrict hess, int64_t R, int64_t K, int64_t lo,        \
        int64_t hi, double *restrict info

/* The exported loss kernel: serial for nch == 1, nch OpenMP chunks otherwise.
 * PREP (a statement) runs first; it may rebind prm (the hinge label map). */
#define FL_ENTRY_PREP(NAME, ROWS, YT, PREP)                                                       \
    int FN(FL_CAT(fl_, NAME))(const YT *yt, const T *yp, const T *prm, const T *w, int64_t ws,   \
                              T *loss, T *grad, int want_grad, int64_t R, int64_t K, int nch,     \
                              double *info) {                                                     \
        PREP;                                                                                     \
        if (nch <= 1) return FN(ROWS)(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, 0, R, info); \
        int st = 0;                                                                               \
        FL_PRAGMA(omp parallel for num_threads(nch) schedule(static, 1) reduction(| : st))       \
        for (int c = 0; c < nch; c++)                                                             \
            st |= FN(ROWS)(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, (int64_t)c * R / nch, \
                           (int64_t)(c + 1) * R / nch, info + 3 * c);                             \
        return st;                                                                                \
    }
#define FL_ENTRY(NAME, ROWS, YT) FL_ENTRY_PREP(NAME, ROWS, YT, (void)0)

#define FL_GH_ENTRY_PREP(NAME, ROWS, YT, PREP)                                                    \
    int FN(FL_CAT(fl_, NAME))(const YT *yt, const T *yp, const T *prm, const T *w, int64_t ws,   \
                              T *grad, T *hess, int64_t R, int64_t K, int nch, double *info) {    \
        PREP;                                                                                     \
        if (nch <= 1) return FN(ROWS)(yt, yp, prm, w, ws, grad, hess, R, K, 0, R, info);         \
        int st = 0;                                                                               \
        FL_PRAGMA(omp parallel for num_threads(nch) schedule(static, 1) reduction(| : st))       \
        for (int c = 0; c < nch; c++)                                                             \
            st |= FN(ROWS)(yt, yp, prm, w, ws, grad, hess, R, K, (int64_t)c * R / nch,           \
                           (int64_t)(c + 1) * R / nch, info + 3 * c);                             \
        return st;                                                                                \
    }
#define FL_GH_ENTRY(NAME, ROWS, YT) FL_GH_ENTRY_PREP(NAME, ROWS, YT, (void)0)

/* Label maps of the elementwise losses: raw, or y * a + b (label smoothing,
 * the hinge {0,1} -> {-1,1} map). */
#define FL_Y_RAW(y) (y)
#define FL_Y_MAP(y) ((y) * P.a + P.b)

/* An elementwise loss, reduced over the last axis (mean if ROW_MEAN, else
 * sum): ELEM(y, p, P, sq, &l, &g) gives the element loss and d/dp. Per block
 * of rows one flat loop (vectorized whatever K is) writes element losses into
 * a scratch buffer and gradients (times the scale) straight into grad; a short
 * pass then sums each row and applies per-row weights to the block while it
 * is in cache (the Numba driver's structure, _common.elementwise_rows). The
 * flat loop is instantiated twice, with sq = 1 (gamma == 2, a branch-free
 * square for the focal losses) and sq = 0. */
/* One flat loop over a block of n elements (y_, p_ -> lb, gf; the names of
 * the flat functions' arguments): ELEM(LABEL(y), p, P, SQ, &l, &g). */
#define FL_FLAT_LOOP(ELEM, LABEL, SQ)                                                               \
    for (int64_t t = 0; t < n; t++) {                                                               \
        T l_, g_;                                                                                   \
        ELEM(LABEL(y_[t]), p_[t], P, SQ, &l_, &g_);                                                 \
        lb[t] = l_;                                                                                 \
        gf[t] = g_ * sc;                                                                            \
    }

#define FL_ELEMENTWISE_FLAT(NAME, ELEM, LABEL)                                                      \
    FL_INLINE void FN(FL_CAT(flat_, NAME))(const T *restrict y_, const T *restrict p_,              \
                                           T *restrict gf, T *restrict lb, int64_t n,               \
                                           FN(fl_par) P, T sc) {                                    \
        if (P.gamma == L(2.0)) {                                                                    \
            FL_FLAT_LOOP(ELEM, LABEL, 1)                                                            \
        } else {                                                                                    \
            FL_FLAT_LOOP(ELEM, LABEL, 0)                                                            \
        }                                                                                           \
    }

/* The rows driver of FL_ELEMENTWISE, over a flat loop FN(flat_##NAME) (a loss
 * with a flat loop of its own defines that and uses this alone). */
#define FL_ELEMENTWISE_ROWS(NAME, ROW_MEAN)                                                       \
    FL_CLONES static int FN(FL_CAT(rows_, NAME))(FL_ROWS_ARGS(T)) {                               \
        FN(fl_par) P = FN(fl_params)(prm);                                                        \
        T one = L(1.0);                                                                           \
        T rscale = (ROW_MEAN) ? one / (T)K : one;                                                 \
        int64_t rpb = K >= FL_BLOCK ? 1 : FL_BLOCK / K;                                           \
        int64_t nr0 = hi - lo < rpb ? hi - lo : rpb;                                              \
        int64_t nblk = nr0 * K;                                                                   \
        T stackbuf[2 * FL_BLOCK];                                                                 \
        T *heap = NULL;                                                                           \
        T *lbuf = stackbuf, *gscr = stackbuf + FL_BLOCK;                                          \
        if (nblk > FL_BLOCK) {                                                                    \
            heap = (T *)malloc(sizeof(T) * (size_t)nblk * 2);                                     \
            if (!heap) return FL_ENOMEM;                                                          \
            lbuf = heap;                                                                          \
            gscr = heap + nblk;                                                                   \
        }                                                                                         \
        T sc = prm[F_SCALE] * rscale;                                                             \
        if (ws == 0) sc = sc * w[0];                                                              \
        if (!want_grad) sc = one;                                                                 \
        double tot = 0.0;                                                                         \
        for (int64_t r0 = lo; r0 < hi; r0 += rpb) {                                               \
            int64_t r1 = hi < r0 + rpb ? hi : r0 + rpb;                                           \
            int64_t e0 = r0 * K, nr = r1 - r0;                                                    \
            T *gf = want_grad ? grad + e0 : gscr;                                                 \
            FN(FL_CAT(flat_, NAME))(yt + e0, yp + e0, gf, lbuf, nr * K, P, sc);                   \
            if (want_grad && ws != 0) {                                                           \
                for (int64_t i = 0; i < nr; i++) {                                                \
                    T wi = w[r0 + i];                                                             \
                    T *g = gf + i * K;                                                            \
                    for (int64_t j = 0; j < K; j++) g[j] *= wi;                                   \
                }                                                                                 \
            }                                                                                     \
            if (K == 1 && ws == 0) {                                                              \
                double part = 0.0;                                                                \
                T *ls = loss + r0;                                                                \
                FL_PRAGMA(omp simd reduction(+ : part))                                           \
                for (int64_t i = 0; i < nr; i++) {                                                \
                    ls[i] = lbuf[i];                                                              \
                    part += (double)lbuf[i];                                                      \
                }                                                                                 \
                tot += part * (double)w[0];                                                       \
            } else {                                                                              \
                /* short rows: a plain sum per row (a simd reduction's lane    \
                 * shuffling costs more than 4 adds) and the float64 total in   \
                 * simd lanes (one serial chain of double adds per row was the  \
                 * kernel's bottleneck at K = 4: 2.3x Numba's time) */          \
                double part = 0.0;                                                                \
                T *ls = loss + r0;                                                                \
                const T *wr = w + r0 * ws;                                                        \
                if (K < 16) {                                                                     \
                    FL_PRAGMA(omp simd reduction(+ : part))                                       \
                    for (int64_t i = 0; i < nr; i++) {                                            \
                        const T *lr = lbuf + i * K;                                               \
                        T acc = L(0.0);                                                           \
                        for (int64_t j = 0; j < K; j++) acc += lr[j];                             \
                        T li = acc * rscale;                                                      \
                        ls[i] = li;                                                               \
                        part += (double)li * (double)wr[i * ws];                                  \
                    }                                                                             \
                } else {                                                                          \
                    for (int64_t i = 0; i < nr; i++) {                                            \
                        T li = FN(fl_sum)(lbuf + i * K, K) * rscale;                              \
                        ls[i] = li;                                                               \
                        part += (double)li * (double)wr[i * ws];                                  \
                    }                                                                             \
                }                                                                                 \
                tot += part;                                                                      \
            }                                                                                     \
        }                                                                                         \
        free(heap);                                                                               \
        info[0] = 0.0;                                                                            \
        info[1] = -1.0;                                                                           \
        info[2] = tot;                                                                            \
        return FL_OK;                                                                             \
    }

#define FL_ELEMENTWISE(NAME, ELEM, ROW_MEAN, LABEL) \
    FL_ELEMENTWISE_FLAT(NAME, ELEM, LABEL)     \
    FL_ELEMENTWISE_ROWS(NAME, ROW_MEAN)

/* Gradient + Hessian diagonal of an elementwise loss: ELEM(y', p, P, &g, &h),
 * y' = y * a + b; outputs times w_i * prm[F_SCALE] (/ K if ROW_MEAN). */
#define FL_ELEMENTWISE_GH(NAME, ELEM, ROW_MEAN)                                                   \
    FL_CLONES static int FN(FL_CAT(ghrows_, NAME))(FL_GH_ROWS_ARGS(T)) {                          \
        FN(fl_par) P = FN(fl_params)(prm);                                                        \
        T one = L(1.0);                                                                           \
        T rscale = (ROW_MEAN) ? one / (T)K : one;                                                 \
        T sc0 = prm[F_SCALE] * rscale;                                                            \
        int64_t e0 = lo * K, n = (hi - lo) * K;                                                   \
        const T *ys = yt + e0, *ps = yp + e0;                                                     \
        T *gs = grad + e0, *hs = hess + e0;                                                       \
        if (ws == 0) {                                                                            \
            T sc = sc0 * w[0];                                                                    \
            for (int64_t t = 0; t < n; t++) {                                                     \
                T g_, h_;                                                                         \
                ELEM(ys[t] * P.a + P.b, ps[t], P, &g_, &h_);                                      \
                gs[t] = g_ * sc;                                                                  \
                hs[t] = h_ * sc;                                                                  \
            }                                                                                     \
        } else if (K == 1) {                                                                      \
            const T *wr = w + lo;                                                                 \
            for (int64_t t = 0; t < n; t++) {                                                     \
                T g_, h_;                                                                         \
                ELEM(ys[t] * P.a + P.b, ps[t], P, &g_, &h_);                                      \
                T sc = sc0 * wr[t];                                                               \
                gs[t] = g_ * sc;                                                                  \
                hs[t] = h_ * sc;                                                                  \
            }                                                                                     \
        } else {                                                                                  \
            for (int64_t i = 0; i < hi - lo; i++) {                                               \
                T sc = sc0 * w[lo + i];                                                           \
                for (int64_t j = 0; j < K; j++) {                                                 \
                    int64_t t = i * K + j;                                                        \
                    T g_, h_;                                                                     \
                    ELEM(ys[t] * P.a + P.b, ps[t], P, &g_, &h_);                                  \
                    gs[t] = g_ * sc;                                                              \
                    hs[t] = h_ * sc;                                                              \
                }                                                                                 \
            }                                                                                     \
        }                                                                                         \
        info[0] = 0.0;                                                                            \
        info[1] = -1.0;                                                                           \
        info[2] = 0.0;                                                                            \
        return FL_OK;                                                                             \
    }

#endif /* FL_TMPL_MACROS */
