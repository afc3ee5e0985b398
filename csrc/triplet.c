/* Triplet family: the C twins of fastloss/backends/numba_cpu/triplet.py (same
 * distance formulas, near-duplicate recomputation, TF Addons mining rules,
 * ties to the lowest column, gradient coefficients, NaN rows; read that
 * module's docstring for the math and the layout of prm).
 *
 * Kernels (one anchor row per loop iteration, O(N) scratch per chunk; nch == 1
 * runs serially in the calling thread, nch > 1 runs nch row chunks on OpenMP
 * threads, the Numba prange twins):
 *
 *   fl_tr_semihard / fl_tr_batch_all (M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, N, D, nch)
 *   fl_tr_hard      (M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, N, D, nch)
 *   fl_tr_symmetrize(W, M, aux, metric, r, q, N, nch)
 *   fl_tr_hard_grad (X, M, aux, sel, selc, metric, scale, G, N, D, GC)   serial
 *   fl_tr_gram      (X, M, N, D, nch)
 *   fl_tr_dense_grad(W, X, scale, G, N, D)                               serial
 *
 * Every kernel returns FL_OK, or FL_ENOMEM when its scratch could not be
 * allocated. This file includes itself twice (FL_PASS 1: float32, 2: float64).
 */
#ifndef FL_PASS
#include "fastloss.h"
#define FL_PASS 1
#include "triplet.c"
#undef FL_PASS
#define FL_PASS 2
#include "triplet.c"
#undef FL_PASS
#else /* ---- one pass: T is float (FL_PASS 1) or double (FL_PASS 2) ---- */
#include "fl_tmpl.h"

#ifndef FL_TRIPLET_ONCE
#define FL_TRIPLET_ONCE
/* indices into prm (numba_cpu/triplet.py T_*) */
#define TR_MARGIN 0
#define TR_METRIC 1
#define TR_SOFT 2
#define TR_CUT 3
#define TR_BLOCK 64

/* Stable argsort (bottom-up merge sort) of int64 / int32 keys k[0..n) into
 * order (tmp: n); the order of np.argsort(kind="mergesort"). */
#define TR_ARGSORT(NAME, KT)                                                                          \
    static void NAME(const KT *restrict k, int64_t n, int64_t *restrict order, int64_t *restrict tmp) { \
        for (int64_t i = 0; i < n; i++) order[i] = i;                                               \
        int64_t *src = order, *dst = tmp;                                                           \
        for (int64_t width = 1; width < n; width *= 2) {                                            \
            for (int64_t lo = 0; lo < n; lo += 2 * width) {                                         \
                int64_t mid = lo + width < n ? lo + width : n;                                      \
                int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;                               \
                int64_t i = lo, j = mid, t = lo;                                                    \
                while (i < mid && j < hi) dst[t++] = k[src[j]] < k[src[i]] ? src[j++] : src[i++];   \
                while (i < mid) dst[t++] = src[i++];                                                \
                while (j < hi) dst[t++] = src[j++];                                                 \
            }                                                                                       \
            int64_t *sw = src;                                                                      \
            src = dst;                                                                              \
            dst = sw;                                                                               \
        }                                                                                           \
        if (src != order) memcpy(order, src, sizeof(int64_t) * (size_t)n);                          \
    }
TR_ARGSORT(tr_argsort_i64, int64_t)
TR_ARGSORT(tr_argsort_i32, int32_t)

/* The labels as int32 with the same equalities (their values when they fit,
 * else their ranks; numba _labels32): label compares run in 32-bit lanes. */
static void tr_labels32(const int64_t *restrict lab, int64_t N, int32_t *restrict out, int64_t *restrict order,
                        int64_t *restrict tmp) {
    if (N == 0) return;
    int64_t lo = lab[0], hi = lab[0];
    for (int64_t j = 0; j < N; j++) {
        lo = lab[j] < lo ? lab[j] : lo;
        hi = lab[j] > hi ? lab[j] : hi;
    }
    if (lo >= INT32_MIN && hi <= INT32_MAX) {
        for (int64_t j = 0; j < N; j++) out[j] = (int32_t)lab[j];
        return;
    }
    tr_argsort_i64(lab, N, order, tmp);
    int32_t r = 0;
    out[order[0]] = 0;
    for (int64_t t = 1; t < N; t++) {
        if (lab[order[t]] != lab[order[t - 1]]) r++;
        out[order[t]] = r;
    }
}

/* Each anchor's class (numba _classes): perm = the columns sorted by label
 * (stable), perm[cstart[a]:cend[a]] the columns labelled lab[a]. */
static void tr_classes(const int32_t *restrict lab, int64_t N, int64_t *restrict perm, int64_t *restrict cstart,
                       int64_t *restrict cend, int64_t *restrict tmp) {
    tr_argsort_i32(lab, N, perm, tmp);
    int64_t t = 0;
    while (t < N) {
        int64_t u = t + 1;
        while (u < N && lab[perm[u]] == lab[perm[t]]) u++;
        for (int64_t v = t; v < u; v++) {
            cstart[perm[v]] = t;
            cend[perm[v]] = u;
        }
        t = u;
    }
}
#endif

#if FL_PASS == 1
#define KLO ((int32_t)INT32_MIN)
#define KHI ((int32_t)INT32_MAX)
#else
#define KLO ((int64_t)INT64_MIN)
#define KHI ((int64_t)INT64_MAX)
#endif

/* (log(1 + exp(z)), sigmoid(z)) without overflow; NaN stays NaN. */
FL_INLINE void FN(tr_softplus_sig)(T z, T *sp, T *s) {
    T one = L(1.0);
    T e = EXP(-ABS(z));
    T v = LOG1P(e);
    if (z > L(0.0)) {
        *sp = v + z;
        *s = one / (one + e);
    } else {
        *sp = v;
        *s = e / (one + e);
    }
}

/* hinge max(z, 0) with gradient 1 where z >= 0 (TF's maximum), or softplus. */
FL_INLINE void FN(tr_hinge_or_soft)(T z_hinge, T z_soft, int soft, T *l, T *g) {
    if (soft) {
        FN(tr_softplus_sig)(z_soft, l, g);
    } else if (z_hinge >= L(0.0)) {
        *l = z_hinge;
        *g = L(1.0);
    } else {
        *l = L(0.0);
        *g = L(0.0);
    }
}

/* Distance row d[j] = D[a, j] and keys key[j] = FKEY(d[j]) (numba _dist_row);
 * returns 1 iff the row holds a NaN. */
FL_INLINE int FN(tr_dist_row)(const T *restrict M, const T *restrict aux, const T *restrict X, int64_t N,
                              int64_t D, int64_t a, int metric, T cut, T *restrict d, KEY_T *restrict key) {
    const T zero = L(0.0), one = L(1.0);
    const T *Ma = M + a * N;
    int bad = 0;
    if (metric == 3) {
        FL_PRAGMA(omp simd reduction(| : bad))
        for (int64_t j = 0; j < N; j++) {
            T v = Ma[j];
            d[j] = v;
            key[j] = FKEY(v);
            bad |= v != v;
        }
        return bad;
    }
    if (metric == 2) {
        T ra = aux[a];
        FL_PRAGMA(omp simd reduction(| : bad))
        for (int64_t j = 0; j < N; j++) {
            T v = one - Ma[j] * ra * aux[j];
            v = v < zero ? zero : v;
            d[j] = v;
            key[j] = FKEY(v);
            bad |= v != v;
        }
        return bad;
    }
    T sa = aux[a];
    T two = L(2.0);
    /* one fused pass (the usual case: no near pair but the diagonal),
     * counting the near pairs on the way */
    int64_t hits = 0;
    FL_PRAGMA(omp simd reduction(+ : hits) reduction(| : bad))
    for (int64_t j = 0; j < N; j++) {
        T t = sa + aux[j];
        T v = t - two * Ma[j];
        hits += v < cut * t;
        v = v <= zero ? zero : v;
        if (metric == 0) v = SQRT(v);
        d[j] = v;
        key[j] = FKEY(v);
        bad |= v != v;
    }
    int own = ((sa + sa) - two * Ma[a]) < cut * (sa + sa);
    if (hits == (own ? 1 : 0)) {
        d[a] = zero;
        key[a] = FKEY(zero);
        return bad;
    }
    /* near pairs: their d2 recomputed exactly, then the root and keys again */
    const T *xa = X + a * D;
    for (int64_t j = 0; j < N; j++) {
        T t = sa + aux[j];
        T v = t - two * Ma[j];
        if (v < cut * t && j != a) {
            const T *xj = X + j * D;
            T acc = zero;
            for (int64_t k = 0; k < D; k++) {
                T u = xa[k] - xj[k];
                acc += u * u;
            }
            v = acc;
        }
        v = v <= zero ? zero : v;
        if (metric == 0) v = SQRT(v);
        d[j] = v;
    }
    d[a] = zero;
    bad = 0;
    FL_PRAGMA(omp simd reduction(| : bad))
    for (int64_t j = 0; j < N; j++) {
        T v = d[j];
        key[j] = FKEY(v);
        bad |= v != v;
    }
    return bad;
}

/* The metric's factor of one entry (numba _factor, see tr_scale_row). */
FL_INLINE T FN(tr_factor)(T dj, int metric) {
    if (metric == 0) return dj > L(0.0) ? L(1.0) / dj : L(0.0);
    if (metric == 1) return dj > L(0.0) ? L(2.0) : L(0.0);
    return L(1.0);
}

/* dL/dD[a, :] -> assembly coefficients (angular left as is). */
FL_INLINE void FN(tr_scale_row)(T *restrict w, const T *restrict d, int64_t N, int metric) {
    const T zero = L(0.0);
    if (metric == 0) {
        for (int64_t j = 0; j < N; j++) {
            T dj = d[j];
            w[j] = dj > zero ? w[j] / dj : zero;
        }
    } else if (metric == 1) {
        for (int64_t j = 0; j < N; j++) w[j] = d[j] > zero ? w[j] * L(2.0) : zero;
    }
}

/* first index j >= lo with key[j] == k (k occurs); int32 lanes (n < 2**31:
 * the (n, n) matrix would not fit in memory otherwise) */
FL_INLINE int64_t FN(tr_first)(const KEY_T *restrict key, int64_t n, KEY_T k, int64_t lo) {
    int32_t best = (int32_t)n;
    FL_PRAGMA(omp simd reduction(min : best))
    for (int32_t j = (int32_t)lo; j < (int32_t)n; j++) {
        int32_t c = key[j] == k ? j : (int32_t)n;
        best = c < best ? c : best;
    }
    return (int64_t)best;
}

/* negatives' distances/keys/columns, positives' columns; counts out */
FL_INLINE void FN(tr_split)(const T *restrict d, const KEY_T *restrict key, const int32_t *restrict lab,
                            int64_t N, int64_t a, T *restrict nd, KEY_T *restrict nk,
                            int64_t *restrict nidx, int64_t *restrict pidx, int64_t *kn_, int64_t *kp_) {
    int32_t la = lab[a];
    int64_t kn = 0, kp = 0;
    for (int64_t j = 0; j < N; j++) {
        if (lab[j] != la) {
            nd[kn] = d[j];
            nk[kn] = key[j];
            nidx[kn] = j;
            kn++;
        } else if (j != a) {
            pidx[kp++] = j;
        }
    }
    *kn_ = kn;
    *kp_ = kp;
}

typedef struct {
    T *d, *nd, *wn;
    KEY_T *key, *nk, *sk;
    int64_t *nidx, *pidx, *order, *tmp, *perm, *cstart, *cend;
    int32_t *lab;
    void *mem;
} FN(tr_scratch);

/* Scratch of one chunk; the labels as int32 in s->lab (and, with classes,
 * each anchor's class in perm/cstart/cend). */
static int FN(tr_alloc)(FN(tr_scratch) *s, const int64_t *lab, int64_t N, int classes) {
    size_t n = (size_t)(N > 0 ? N : 1);
    size_t bytes = n * (3 * sizeof(T) + 3 * sizeof(KEY_T) + 7 * sizeof(int64_t) + sizeof(int32_t));
    char *p = (char *)malloc(bytes);
    s->mem = p;
    if (!p) return FL_ENOMEM;
    /* int64 first (8-byte alignment for all that follows) */
    s->nidx = (int64_t *)p;
    s->pidx = s->nidx + n;
    s->order = s->pidx + n;
    s->tmp = s->order + n;
    s->perm = s->tmp + n;
    s->cstart = s->perm + n;
    s->cend = s->cstart + n;
    s->d = (T *)(s->cend + n);
    s->nd = s->d + n;
    s->wn = s->nd + n;
    s->key = (KEY_T *)(s->wn + n);
    s->nk = s->key + n;
    s->sk = s->nk + n;
    s->lab = (int32_t *)(s->sk + n);
    tr_labels32(lab, N, s->lab, s->order, s->tmp);
    if (classes) tr_classes(s->lab, N, s->perm, s->cstart, s->cend, s->tmp);
    return FL_OK;
}

/* Semi-hard mining of row a (numba _semihard_row): the negatives' keys in
 * place (KHI elsewhere), each positive's smallest negative key above its own
 * by one pass over the row (or, with many positives, a binary search of the
 * row's sorted keys); the coefficients with the metric's factor per entry. */
FL_INLINE double FN(tr_semihard_row)(const T *restrict d, const KEY_T *restrict key, int64_t N, int64_t a,
                                     T margin, int soft, int metric, T *restrict w, int want_grad,
                                     FN(tr_scratch) *s, double *cnt) {
    const int32_t *restrict lab = s->lab;
    int32_t la = lab[a];
    int64_t cs = s->cstart[a], ce = s->cend[a];
    int64_t kp = ce - cs - 1;
    *cnt = 0.0;
    if (kp == 0) return 0.0;
    KEY_T *restrict nk = s->nk;
    int64_t kn = 0;
    KEY_T m = KLO;
    FL_PRAGMA(omp simd reduction(+ : kn) reduction(max : m))
    for (int64_t j = 0; j < N; j++) {
        KEY_T v = key[j];
        int neg = lab[j] != la;
        nk[j] = neg ? v : KHI;
        kn += neg;
        KEY_T c = neg ? v : KLO;
        m = c > m ? c : m;
    }
    KEY_T kin;
    int64_t iin;
    if (kn > 0) {
        kin = m;
        iin = FN(tr_first)(nk, N, m, 0);
    } else {
        KEY_T r = KHI;
        FL_PRAGMA(omp simd reduction(min : r))
        for (int64_t j = 0; j < N; j++) r = key[j] < r ? key[j] : r;
        kin = r;
        iin = FN(tr_first)(key, N, r, 0);
    }
    T inside = FUNKEY(kin);
    int use_sort = kn > 1 && (double)kp > 128.0 * log2((double)kn);
    KEY_T *sk = s->sk;
    int64_t *order = s->order;
    if (use_sort) {
#if FL_PASS == 1
        tr_argsort_i32(nk, N, order, s->tmp);
#else
        tr_argsort_i64(nk, N, order, s->tmp);
#endif
        for (int64_t k = 0; k < N; k++) sk[k] = nk[order[k]];
    }
    double total = 0.0;
    for (int64_t t = cs; t < ce; t++) {
        int64_t p = s->perm[t];
        if (p == a) continue;
        KEY_T kap = key[p];
        T dap = d[p];
        T neg = inside;
        int64_t ineg = iin;
        if (use_sort) {
            int64_t lo = 0, hi = N;
            while (lo < hi) {
                int64_t mid = (lo + hi) >> 1;
                if (sk[mid] > kap)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            if (lo < N && sk[lo] != KHI) {
                neg = FUNKEY(sk[lo]);
                ineg = order[lo];
            }
        } else if (kn > 0) {
            KEY_T r = KHI;
            FL_PRAGMA(omp simd reduction(min : r))
            for (int64_t j = 0; j < N; j++) {
                KEY_T v = nk[j];
                KEY_T c = v > kap ? v : KHI;
                r = c < r ? c : r;
            }
            if (r != KHI) {
                neg = FUNKEY(r);
                if (want_grad) ineg = FN(tr_first)(nk, N, r, 0);
            }
        }
        T l, g;
        FN(tr_hinge_or_soft)(margin + dap - neg, dap - neg, soft, &l, &g);
        total += (double)l;
        if (want_grad) {
            w[p] += g * FN(tr_factor)(dap, metric);
            w[ineg] -= g * FN(tr_factor)(d[ineg], metric);
        }
    }
    *cnt = (double)kp;
    return total;
}

FL_INLINE double FN(tr_batch_all_row)(const T *restrict d, const KEY_T *restrict key, int64_t N, int64_t a,
                                      T margin, int soft, T *restrict w, int want_grad, FN(tr_scratch) *s,
                                      double *cnt) {
    const T zero = L(0.0);
    int64_t kn, kp;
    FN(tr_split)(d, key, s->lab, N, a, s->nd, s->nk, s->nidx, s->pidx, &kn, &kp);
    *cnt = 0.0;
    if (kp == 0 || kn == 0) return 0.0;
    const T *restrict ndk = s->nd;
    T *restrict wnk = s->wn;
    if (want_grad)
        for (int64_t k = 0; k < kn; k++) wnk[k] = zero;
    double total = 0.0, count = 0.0;
    for (int64_t t = 0; t < kp; t++) {
        int64_t p = s->pidx[t];
        T dap = d[p];
        T acc = zero;
        if (soft) {
            T gp = zero;
            FL_PRAGMA(omp simd reduction(+ : acc, gp))
            for (int64_t k = 0; k < kn; k++) {
                T l, g;
                FN(tr_softplus_sig)(dap - ndk[k], &l, &g);
                acc += l;
                gp += g;
                if (want_grad) wnk[k] += g;
            }
            count += (double)kn;
            if (want_grad) w[p] += gp;
        } else {
            T base = margin + dap;
            int64_t c = 0;
            /* both loops reduce in the same (simd) order: the value alone and
             * the value with its gradient must be bit-identical */
            if (want_grad) {
                FL_PRAGMA(omp simd reduction(+ : acc, c))
                for (int64_t k = 0; k < kn; k++) {
                    T z = base - ndk[k];
                    int on = z > zero;
                    acc += on ? z : zero;
                    c += on;
                    wnk[k] += on ? L(1.0) : zero;
                }
            } else {
                FL_PRAGMA(omp simd reduction(+ : acc, c))
                for (int64_t k = 0; k < kn; k++) {
                    T z = base - ndk[k];
                    int on = z > zero;
                    acc += on ? z : zero;
                    c += on;
                }
            }
            count += (double)c;
            if (want_grad) w[p] += (T)c;
        }
        total += (double)acc;
    }
    if (want_grad)
        for (int64_t k = 0; k < kn; k++) w[s->nidx[k]] -= wnk[k];
    *cnt = count;
    return total;
}

/* Rows [lo, hi) of a dense mode (0 semi-hard, 2 batch-all). */
FL_CLONES static int FN(tr_dense_rows)(int mode, const T *M, const T *aux, const T *X, const int64_t *lab,
                                       const T *prm, double *rowloss, double *rowcnt, T *W, int want_grad,
                                       int64_t N, int64_t D, int64_t lo, int64_t hi) {
    T margin = prm[TR_MARGIN];
    int metric = (int)prm[TR_METRIC];
    int soft = prm[TR_SOFT] != L(0.0);
    T cut = prm[TR_CUT];
    FN(tr_scratch) s;
    if (FN(tr_alloc)(&s, lab, N, mode == 0)) return FL_ENOMEM;
    for (int64_t a = lo; a < hi; a++) {
        int bad = FN(tr_dist_row)(M, aux, X, N, D, a, metric, cut, s.d, s.key);
        T *w = want_grad ? W + a * N : NULL;
        if (want_grad)
            for (int64_t j = 0; j < N; j++) w[j] = L(0.0);
        if (bad) {
            rowloss[a] = NAN;
            rowcnt[a] = 0.0;
            continue;
        }
        double cnt;
        double tot = mode == 0
                         ? FN(tr_semihard_row)(s.d, s.key, N, a, margin, soft, metric, w, want_grad, &s, &cnt)
                         : FN(tr_batch_all_row)(s.d, s.key, N, a, margin, soft, w, want_grad, &s, &cnt);
        rowloss[a] = tot;
        rowcnt[a] = cnt;
        if (want_grad && mode != 0) FN(tr_scale_row)(w, s.d, N, metric);
    }
    free(s.mem);
    return FL_OK;
}

static int FN(tr_dense)(int mode, const T *M, const T *aux, const T *X, const int64_t *lab, const T *prm,
                        double *rowloss, double *rowcnt, T *W, int want_grad, int64_t N, int64_t D, int nch) {
    if (nch <= 1) return FN(tr_dense_rows)(mode, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, N, D, 0, N);
    int st = 0;
    FL_PRAGMA(omp parallel for num_threads(nch) schedule(static, 1) reduction(| : st))
    for (int c = 0; c < nch; c++)
        st |= FN(tr_dense_rows)(mode, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, N, D,
                                (int64_t)c * N / nch, (int64_t)(c + 1) * N / nch);
    return st;
}

int FN(fl_tr_semihard)(const T *M, const T *aux, const T *X, const int64_t *lab, const T *prm, double *rowloss,
                       double *rowcnt, T *W, int want_grad, int64_t N, int64_t D, int nch) {
    return FN(tr_dense)(0, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, N, D, nch);
}

int FN(fl_tr_batch_all)(const T *M, const T *aux, const T *X, const int64_t *lab, const T *prm, double *rowloss,
                        double *rowcnt, T *W, int want_grad, int64_t N, int64_t D, int nch) {
    return FN(tr_dense)(2, M, aux, X, lab, prm, rowloss, rowcnt, W, want_grad, N, D, nch);
}

/* hard mining of one row: loss, (j_pos, j_neg), dloss/dhp (numba _hard_row);
 * int32 labels; key[a] is set to KLO (a NaN's key) during the positives'
 * passes so that the anchor is not its own positive, then restored. */
FL_INLINE double FN(tr_hard_row)(KEY_T *restrict key, const int32_t *restrict lab, int64_t N, int64_t a,
                                 T margin, int soft, int64_t *ip_, int64_t *in_, T *g_) {
    int32_t la = lab[a];
    KEY_T ka = key[a];
    key[a] = KLO;
    KEY_T pmax = KLO, nmin = KHI;
    int64_t nsame = 0;
    FL_PRAGMA(omp simd reduction(max : pmax) reduction(min : nmin) reduction(+ : nsame))
    for (int64_t j = 0; j < N; j++) {
        KEY_T v = key[j];
        int same = lab[j] == la;
        nsame += same;
        KEY_T pv = same ? v : KLO;
        KEY_T nv = same ? KHI : v;
        pmax = pv > pmax ? pv : pmax;
        nmin = nv < nmin ? nv : nmin;
    }
    int64_t npos = nsame - 1, nneg = N - nsame;
    int64_t ip = N, ineg;
    if (npos > 0) {
        int32_t b = (int32_t)N;
        FL_PRAGMA(omp simd reduction(min : b))
        for (int32_t j = 0; j < (int32_t)N; j++) {
            int hit = (key[j] == pmax) & (lab[j] == la);
            int32_t c = hit ? j : (int32_t)N;
            b = c < b ? c : b;
        }
        ip = b;
    }
    key[a] = ka;
    if (npos == 0) {
        KEY_T r = KHI;
        FL_PRAGMA(omp simd reduction(min : r))
        for (int64_t j = 0; j < N; j++) r = key[j] < r ? key[j] : r;
        pmax = r;
        ip = FN(tr_first)(key, N, r, 0);
    }
    if (nneg > 0) {
        int32_t b = (int32_t)N;
        FL_PRAGMA(omp simd reduction(min : b))
        for (int32_t j = 0; j < (int32_t)N; j++) {
            int hit = (key[j] == nmin) & (lab[j] != la);
            int32_t c = hit ? j : (int32_t)N;
            b = c < b ? c : b;
        }
        ineg = b;
    } else {
        KEY_T r = KLO;
        FL_PRAGMA(omp simd reduction(max : r))
        for (int64_t j = 0; j < N; j++) r = key[j] > r ? key[j] : r;
        nmin = r;
        ineg = FN(tr_first)(key, N, r, 0);
    }
    T hp = FUNKEY(pmax), hn = FUNKEY(nmin);
    T l, g;
    FN(tr_hinge_or_soft)(hp - hn + margin, hp - hn, soft, &l, &g);
    *ip_ = ip;
    *in_ = ineg;
    *g_ = g;
    return (double)l;
}

FL_CLONES static int FN(tr_hard_rows)(const T *M, const T *aux, const T *X, const int64_t *lab, const T *prm,
                                      double *rowloss, double *rowcnt, int64_t *sel, T *selc, int64_t N,
                                      int64_t D, int64_t lo, int64_t hi) {
    T margin = prm[TR_MARGIN];
    int metric = (int)prm[TR_METRIC];
    int soft = prm[TR_SOFT] != L(0.0);
    T cut = prm[TR_CUT];
    const T zero = L(0.0), two = L(2.0);
    size_t n = (size_t)(N > 0 ? N : 1);
    char *mem = (char *)malloc(n * (sizeof(T) + sizeof(KEY_T) + 2 * sizeof(int64_t) + sizeof(int32_t)));
    if (!mem) return FL_ENOMEM;
    int64_t *order = (int64_t *)mem, *tmp = order + n;
    KEY_T *key = (KEY_T *)(tmp + n);
    T *d = (T *)(key + n);
    int32_t *lab32 = (int32_t *)(d + n);
    tr_labels32(lab, N, lab32, order, tmp);
    for (int64_t a = lo; a < hi; a++) {
        int bad = FN(tr_dist_row)(M, aux, X, N, D, a, metric, cut, d, key);
        rowcnt[a] = 1.0;
        if (bad) {
            rowloss[a] = NAN;
            sel[2 * a] = a;
            sel[2 * a + 1] = a;
            selc[2 * a] = zero;
            selc[2 * a + 1] = zero;
            continue;
        }
        int64_t ip, ineg;
        T g;
        rowloss[a] = FN(tr_hard_row)(key, lab32, N, a, margin, soft, &ip, &ineg, &g);
        sel[2 * a] = ip;
        sel[2 * a + 1] = ineg;
        T gp = g, gn = g;
        if (metric == 0) {
            gp = d[ip] > zero ? g / d[ip] : zero;
            gn = d[ineg] > zero ? g / d[ineg] : zero;
        } else if (metric == 1) {
            gp = d[ip] > zero ? g * two : zero;
            gn = d[ineg] > zero ? g * two : zero;
        }
        if (ip == ineg) {
            gp = zero;
            gn = zero;
        }
        selc[2 * a] = gp;
        selc[2 * a + 1] = gn;
    }
    free(mem);
    return FL_OK;
}

int FN(fl_tr_hard)(const T *M, const T *aux, const T *X, const int64_t *lab, const T *prm, double *rowloss,
                   double *rowcnt, int64_t *sel, T *selc, int64_t N, int64_t D, int nch) {
    if (nch <= 1) return FN(tr_hard_rows)(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, N, D, 0, N);
    int st = 0;
    FL_PRAGMA(omp parallel for num_threads(nch) schedule(static, 1) reduction(| : st))
    for (int c = 0; c < nch; c++)
        st |= FN(tr_hard_rows)(M, aux, X, lab, prm, rowloss, rowcnt, sel, selc, N, D, (int64_t)c * N / nch,
                               (int64_t)(c + 1) * N / nch);
    return st;
}

/* ---- gradient assembly ---------------------------------------------------- */

FL_INLINE void FN(tr_sym_tiles)(T *W, int64_t bi, int64_t nb, int64_t N) {
    int64_t i0 = bi * TR_BLOCK;
    int64_t i1 = N < i0 + TR_BLOCK ? N : i0 + TR_BLOCK;
    for (int64_t bj = bi; bj < nb; bj++) {
        int64_t j0 = bj * TR_BLOCK;
        int64_t j1 = N < j0 + TR_BLOCK ? N : j0 + TR_BLOCK;
        for (int64_t i = i0; i < i1; i++) {
            int64_t js = j0 > i ? j0 : i;
            for (int64_t j = js; j < j1; j++) {
                T s = W[i * N + j] + W[j * N + i];
                W[i * N + j] = s;
                W[j * N + i] = s;
            }
        }
    }
}

FL_INLINE void FN(tr_row_sums)(T *restrict W, const T *restrict M, const T *restrict aux, int metric,
                               double *restrict r, double *restrict q, int64_t N, int64_t i) {
    const T zero = L(0.0), one = L(1.0);
    T *Wi = W + i * N;
    if (metric == 2) {
        const T *Mi = M + i * N;
        T ai = aux[i];
        double acc = 0.0, accq = 0.0;
        for (int64_t j = 0; j < N; j++) {
            T c = Mi[j] * ai * aux[j];
            T s = one - c >= zero ? Wi[j] : zero;
            Wi[j] = s;
            acc += (double)s;
            accq += (double)(s * c);
        }
        r[i] = acc;
        q[i] = accq;
    } else {
        double acc = 0.0;
        FL_PRAGMA(omp simd reduction(+ : acc))
        for (int64_t j = 0; j < N; j++) acc += (double)Wi[j];
        r[i] = acc;
    }
}

FL_CLONES static void FN(tr_sym_range)(T *W, int64_t nb, int64_t N, int64_t t0, int64_t t1) {
    /* tile rows in a zig-zag order so that the chunks get similar work */
    for (int64_t t = t0; t < t1; t++) FN(tr_sym_tiles)(W, t % 2 == 0 ? t / 2 : nb - 1 - t / 2, nb, N);
}

FL_CLONES static void FN(tr_sums_range)(T *W, const T *M, const T *aux, int metric, double *r, double *q,
                                        int64_t N, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i++) FN(tr_row_sums)(W, M, aux, metric, r, q, N, i);
}

int FN(fl_tr_symmetrize)(T *W, const T *M, const T *aux, int metric, double *r, double *q, int64_t N, int nch) {
    int64_t nb = (N + TR_BLOCK - 1) / TR_BLOCK;
    if (nch <= 1) {
        FN(tr_sym_range)(W, nb, N, 0, nb);
        FN(tr_sums_range)(W, M, aux, metric, r, q, N, 0, N);
        return FL_OK;
    }
    FL_PRAGMA(omp parallel num_threads(nch))
    {
        FL_PRAGMA(omp for schedule(static, 1))
        for (int c = 0; c < nch; c++)
            FN(tr_sym_range)(W, nb, N, (int64_t)c * nb / nch, (int64_t)(c + 1) * nb / nch);
        FL_PRAGMA(omp for schedule(static, 1))
        for (int c = 0; c < nch; c++)
            FN(tr_sums_range)(W, M, aux, metric, r, q, N, (int64_t)c * N / nch, (int64_t)(c + 1) * N / nch);
    }
    return FL_OK;
}

FL_INLINE void FN(tr_axpy)(T c, const T *restrict x, T *restrict y, int64_t D) {
    for (int64_t k = 0; k < D; k++) y[k] += c * x[k];
}

/* L2/squared-L2 assembly of hard mining gathered per row (numba
 * _hard_grad_l2): g_i = (sum of the c touching row i) x_i - sum_{a == i} c x_j
 * - sum_{j == i} c x_a, the entries pointing at row i listed by a counting
 * sort; each row of G written once. */
FL_INLINE int FN(tr_hard_grad_l2)(const T *restrict X, const int64_t *restrict sel, const T *restrict selc, T scale,
                                  T *restrict G, int64_t N, int64_t D) {
    const T zero = L(0.0);
    int64_t *cnt = (int64_t *)calloc((size_t)N + 1, sizeof(int64_t));
    int64_t *src = (int64_t *)malloc(sizeof(int64_t) * (size_t)(2 * N + 1));
    int64_t *pos = (int64_t *)malloc(sizeof(int64_t) * (size_t)(N + 1));
    T *val = (T *)malloc(sizeof(T) * (size_t)(2 * N + 1));
    if (!cnt || !src || !pos || !val) {
        free(cnt);
        free(src);
        free(pos);
        free(val);
        return FL_ENOMEM;
    }
    for (int64_t a = 0; a < N; a++)
        for (int e = 0; e < 2; e++) {
            int64_t j = sel[2 * a + e];
            if (selc[2 * a + e] != zero && j != a) cnt[j + 1]++;
        }
    for (int64_t i = 0; i < N; i++) cnt[i + 1] += cnt[i];
    memcpy(pos, cnt, sizeof(int64_t) * (size_t)N);
    for (int64_t a = 0; a < N; a++)
        for (int e = 0; e < 2; e++) {
            int64_t j = sel[2 * a + e];
            T c = selc[2 * a + e] * scale;
            if (c != zero && j != a) {
                src[pos[j]] = a;
                val[pos[j]] = e == 0 ? c : -c;
                pos[j]++;
            }
        }
    for (int64_t i = 0; i < N; i++) {
        T *gi = G + i * D;
        const T *xi = X + i * D;
        T r = zero;
        for (int e = 0; e < 2; e++) {
            int64_t j = sel[2 * i + e];
            T c = selc[2 * i + e] * scale;
            if (c != zero && j != i) r += e == 0 ? c : -c;
        }
        for (int64_t t = cnt[i]; t < cnt[i + 1]; t++) r += val[t];
        for (int64_t k = 0; k < D; k++) gi[k] = r * xi[k];
        for (int e = 0; e < 2; e++) {
            int64_t j = sel[2 * i + e];
            T c = selc[2 * i + e] * scale;
            if (c != zero && j != i) FN(tr_axpy)(e == 0 ? -c : c, X + j * D, gi, D);
        }
        for (int64_t t = cnt[i]; t < cnt[i + 1]; t++) FN(tr_axpy)(-val[t], X + src[t] * D, gi, D);
    }
    free(cnt);
    free(src);
    free(pos);
    free(val);
    return FL_OK;
}

/* Sparse assembly of hard mining (serial; numba hard_grad). G is (N, GC):
 * GC = D for embeddings, N for precomputed. */
FL_CLONES static int FN(tr_hard_grad_impl)(const T *X, const T *M, const T *aux, const int64_t *sel, const T *selc,
                                  int metric, T scale, T *G, int64_t N, int64_t D, int64_t GC) {
    const T zero = L(0.0);
    if (metric < 2) return FN(tr_hard_grad_l2)(X, sel, selc, scale, G, N, D);
    for (int64_t t = 0; t < N * GC; t++) G[t] = zero;
    if (metric == 3) {
        for (int64_t a = 0; a < N; a++) {
            G[a * GC + sel[2 * a]] += selc[2 * a] * scale;
            G[a * GC + sel[2 * a + 1]] -= selc[2 * a + 1] * scale;
        }
        return FL_OK;
    }
    for (int64_t a = 0; a < N; a++) {
        const T *xa = X + a * D;
        T *ga = G + a * D;
        for (int e = 0; e < 2; e++) {
            int64_t j = sel[2 * a + e];
            T c = selc[2 * a + e] * scale;
            if (e == 1) c = -c;
            if (c == zero || j == a) continue;
            const T *xj = X + j * D;
            T *gj = G + j * D;
            if (metric == 2) {
                T ra = aux[a], rj = aux[j];
                T cs = M[a * N + j] * ra * rj;
                if (L(1.0) - cs < zero) continue;
                FN(tr_axpy)(-c * rj, xj, ga, D);
                FN(tr_axpy)(-c * ra, xa, gj, D);
            } else {
                FN(tr_axpy)(c, xa, ga, D);
                FN(tr_axpy)(-c, xj, ga, D);
                FN(tr_axpy)(c, xj, gj, D);
                FN(tr_axpy)(-c, xa, gj, D);
            }
        }
    }
    if (metric == 2) {
        /* G[i] (dL/dn_i) -> dL/dx_i = r_i (u - n_i (n_i . u)); the projection
         * only where |x_i|^2 >= 1e-12 (TF's l2_normalize floors the norm) */
        for (int64_t i = 0; i < N; i++) {
            T ri = aux[i];
            int proj = ri <= L(1e6);
            const T *xi = X + i * D;
            T *gi = G + i * D;
            T dot = zero;
            if (proj)
                for (int64_t k = 0; k < D; k++) dot += xi[k] * ri * gi[k];
            for (int64_t k = 0; k < D; k++) gi[k] = proj ? ri * (gi[k] - dot * xi[k] * ri) : ri * gi[k];
        }
    }
    return FL_OK;
}

/* M = X X^T, rows i..i+3 from the diagonal on (numba _gram_band): tiles of 4
 * rows x 4 columns, 16 independent dot products sharing the loads of the 8
 * rows. The upper triangle is then copied below the diagonal by a blocked
 * pass (M exactly symmetric): gcc 12's code for the 16 scattered mirror
 * stores per tile took as long as the tile itself (Numba's writes both in
 * the tile loop). */
FL_INLINE void FN(tr_gram_band)(const T *restrict X, T *restrict M, int64_t N, int64_t D, int64_t i, int64_t n4) {
    const T zero = L(0.0);
    const T *x0 = X + i * D, *x1 = x0 + D, *x2 = x1 + D, *x3 = x2 + D;
    for (int64_t j = i; j < n4; j += 4) {
        const T *y0 = X + j * D, *y1 = y0 + D, *y2 = y1 + D, *y3 = y2 + D;
        T a00 = zero, a01 = zero, a02 = zero, a03 = zero, a10 = zero, a11 = zero, a12 = zero, a13 = zero;
        T a20 = zero, a21 = zero, a22 = zero, a23 = zero, a30 = zero, a31 = zero, a32 = zero, a33 = zero;
        FL_PRAGMA(omp simd reduction(+ : a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33))
        for (int64_t k = 0; k < D; k++) {
            T u0 = x0[k], u1 = x1[k], u2 = x2[k], u3 = x3[k];
            T v0 = y0[k], v1 = y1[k], v2 = y2[k], v3 = y3[k];
            a00 += u0 * v0;
            a01 += u0 * v1;
            a02 += u0 * v2;
            a03 += u0 * v3;
            a10 += u1 * v0;
            a11 += u1 * v1;
            a12 += u1 * v2;
            a13 += u1 * v3;
            a20 += u2 * v0;
            a21 += u2 * v1;
            a22 += u2 * v2;
            a23 += u2 * v3;
            a30 += u3 * v0;
            a31 += u3 * v1;
            a32 += u3 * v2;
            a33 += u3 * v3;
        }
        T *m = M + i * N + j;
        m[0] = a00;
        m[1] = a01;
        m[2] = a02;
        m[3] = a03;
        m += N;
        m[0] = a10;
        m[1] = a11;
        m[2] = a12;
        m[3] = a13;
        m += N;
        m[0] = a20;
        m[1] = a21;
        m[2] = a22;
        m[3] = a23;
        m += N;
        m[0] = a30;
        m[1] = a31;
        m[2] = a32;
        m[3] = a33;
    }
    /* the last N % 4 columns against these four rows */
    for (int64_t j = n4; j < N; j++) {
        const T *y = X + j * D;
        T b0 = zero, b1 = zero, b2 = zero, b3 = zero;
        FL_PRAGMA(omp simd reduction(+ : b0, b1, b2, b3))
        for (int64_t k = 0; k < D; k++) {
            T v = y[k];
            b0 += x0[k] * v;
            b1 += x1[k] * v;
            b2 += x2[k] * v;
            b3 += x3[k] * v;
        }
        M[i * N + j] = b0;
        M[(i + 1) * N + j] = b1;
        M[(i + 2) * N + j] = b2;
        M[(i + 3) * N + j] = b3;
    }
}

/* the last N % 4 rows: their upper triangle */
FL_INLINE void FN(tr_gram_tail)(const T *restrict X, T *restrict M, int64_t N, int64_t D, int64_t n4) {
    for (int64_t i = n4; i < N; i++) {
        const T *xi = X + i * D;
        for (int64_t j = i; j < N; j++) {
            const T *xj = X + j * D;
            T acc = L(0.0);
            FL_PRAGMA(omp simd reduction(+ : acc))
            for (int64_t k = 0; k < D; k++) acc += xi[k] * xj[k];
            M[i * N + j] = acc;
        }
    }
}

/* the strict upper triangle copied below the diagonal, block rows t0..t1 of
 * the zig-zag order (32 x 32 blocks: both sides stay in cache) */
FL_INLINE void FN(tr_gram_mirror)(T *restrict M, int64_t N, int64_t t0, int64_t t1) {
    const int64_t B = 32;
    int64_t nb = (N + B - 1) / B;
    for (int64_t t = t0; t < t1; t++) {
        int64_t bi = (t % 2 == 0 ? t / 2 : nb - 1 - t / 2) * B;
        for (int64_t bj = bi; bj < N; bj += B)
            for (int64_t i = bi; i < bi + B && i < N; i++)
                for (int64_t j = (bj > i + 1 ? bj : i + 1); j < bj + B && j < N; j++) M[j * N + i] = M[i * N + j];
    }
}

/* bands t0..t1 of the zig-zag order (band b has nb - b tiles: contiguous
 * chunks of this order get similar work) */
FL_CLONES static void FN(tr_gram_range)(const T *X, T *M, int64_t N, int64_t D, int64_t t0, int64_t t1) {
    int64_t n4 = N - N % 4, nb = n4 / 4;
    for (int64_t t = t0; t < t1; t++) {
        int64_t b = t % 2 == 0 ? t / 2 : nb - 1 - t / 2;
        FN(tr_gram_band)(X, M, N, D, 4 * b, n4);
    }
}

FL_CLONES static void FN(tr_gram_tail_c)(const T *X, T *M, int64_t N, int64_t D) {
    FN(tr_gram_tail)(X, M, N, D, N - N % 4);
}

static void FN(tr_gram_mirror_c)(T *M, int64_t N, int64_t t0, int64_t t1) { FN(tr_gram_mirror)(M, N, t0, t1); }

static int FN(tr_gram_impl)(const T *X, T *M, int64_t N, int64_t D, int nch) {
    int64_t nb = (N - N % 4) / 4, mb = (N + 31) / 32;
    if (nch <= 1) {
        FN(tr_gram_range)(X, M, N, D, 0, nb);
        FN(tr_gram_tail_c)(X, M, N, D);
        FN(tr_gram_mirror_c)(M, N, 0, mb);
        return FL_OK;
    }
    FL_PRAGMA(omp parallel num_threads(nch))
    {
        FL_PRAGMA(omp for schedule(static, 1))
        for (int c = 0; c < nch; c++) FN(tr_gram_range)(X, M, N, D, (int64_t)c * nb / nch, (int64_t)(c + 1) * nb / nch);
        FL_PRAGMA(omp single)
        FN(tr_gram_tail_c)(X, M, N, D);
        FL_PRAGMA(omp for schedule(static, 1))
        for (int c = 0; c < nch; c++) FN(tr_gram_mirror_c)(M, N, (int64_t)c * mb / nch, (int64_t)(c + 1) * mb / nch);
    }
    return FL_OK;
}

/* L2/squared-L2 assembly from the coefficient matrix (serial), skipping zeros
 * (numba dense_grad): g_a += c (x_a - x_j), g_j -= c (x_a - x_j) in one loop. */
FL_CLONES static int FN(tr_dense_grad_impl)(const T *W, const T *X, T scale, T *G, int64_t N, int64_t D) {
    const T zero = L(0.0);
    int64_t *idx = (int64_t *)malloc(sizeof(int64_t) * (size_t)(N > 0 ? N : 1));
    if (!idx) return FL_ENOMEM;
    for (int64_t t = 0; t < N * D; t++) G[t] = zero;
    for (int64_t a = 0; a < N; a++) {
        const T *wa = W + a * N;
        int64_t m = 0;
        for (int64_t j = 0; j < N; j++) {
            idx[m] = j;
            m += wa[j] != zero;
        }
        T *ga = G + a * D;
        const T *xa = X + a * D;
        for (int64_t t = 0; t < m; t++) {
            int64_t j = idx[t];
            if (j == a) continue;
            T c = wa[j] * scale;
            const T *xj = X + j * D;
            T *gj = G + j * D;
            FL_PRAGMA(omp simd)
            for (int64_t k = 0; k < D; k++) {
                T u = c * (xa[k] - xj[k]);
                ga[k] += u;
                gj[k] -= u;
            }
        }
    }
    free(idx);
    return FL_OK;
}

int FN(fl_tr_hard_grad)(const T *X, const T *M, const T *aux, const int64_t *sel, const T *selc, int metric,
                        T scale, T *G, int64_t N, int64_t D, int64_t GC) {
    return FN(tr_hard_grad_impl)(X, M, aux, sel, selc, metric, scale, G, N, D, GC);
}

int FN(fl_tr_gram)(const T *X, T *M, int64_t N, int64_t D, int nch) { return FN(tr_gram_impl)(X, M, N, D, nch); }

int FN(fl_tr_dense_grad)(const T *W, const T *X, T scale, T *G, int64_t N, int64_t D) {
    return FN(tr_dense_grad_impl)(W, X, scale, G, N, D);
}

#undef KLO
#undef KHI

#endif /* FL_PASS */
