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
 *   fl_tr_gram      (X, M, N, D)                                         serial
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
 * returns the row's float64 sum (NaN iff the row holds a NaN). */
FL_INLINE double FN(tr_dist_row)(const T *restrict M, const T *restrict aux, const T *restrict X,
                                 int64_t N, int64_t D, int64_t a, int metric, T cut, T *restrict d,
                                 KEY_T *restrict key) {
    const T zero = L(0.0), one = L(1.0);
    const T *Ma = M + a * N;
    if (metric == 3) {
        for (int64_t j = 0; j < N; j++) d[j] = Ma[j];
    } else if (metric == 2) {
        T ra = aux[a];
        for (int64_t j = 0; j < N; j++) {
            T v = one - Ma[j] * ra * aux[j];
            d[j] = v < zero ? zero : v;
        }
    } else {
        T sa = aux[a];
        T two = L(2.0);
        int64_t hits = 0;
        for (int64_t j = 0; j < N; j++) {
            T v = (sa + aux[j]) - two * Ma[j];
            d[j] = v;
            hits += v < cut * (sa + aux[j]);
        }
        if (hits == 0 || (hits == 1 && d[a] < cut * (sa + aux[a]))) {
            d[a] = zero;
            double s = 0.0;
            FL_PRAGMA(omp simd reduction(+ : s))
            for (int64_t j = 0; j < N; j++) {
                T v = d[j];
                v = v <= zero ? zero : v;
                if (metric == 0) v = SQRT(v);
                d[j] = v;
                s += (double)v;
                key[j] = FKEY(v);
            }
            return s;
        }
        const T *xa = X + a * D;
        for (int64_t j = 0; j < N; j++) {
            if (d[j] < cut * (sa + aux[j]) && j != a) {
                const T *xj = X + j * D;
                T acc = zero;
                for (int64_t k = 0; k < D; k++) {
                    T t = xa[k] - xj[k];
                    acc += t * t;
                }
                d[j] = acc;
            }
        }
        if (metric == 0) {
            for (int64_t j = 0; j < N; j++) {
                T v = d[j];
                d[j] = v <= zero ? zero : SQRT(v);
            }
        } else {
            for (int64_t j = 0; j < N; j++) {
                T v = d[j];
                d[j] = v < zero ? zero : v;
            }
        }
        d[a] = zero;
    }
    double s = 0.0;
    FL_PRAGMA(omp simd reduction(+ : s))
    for (int64_t j = 0; j < N; j++) {
        T v = d[j];
        s += (double)v;
        key[j] = FKEY(v);
    }
    return s;
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

/* first index j >= lo with key[j] == k (k occurs) */
FL_INLINE int64_t FN(tr_first)(const KEY_T *restrict key, int64_t n, KEY_T k, int64_t lo) {
    int64_t best = n;
    FL_PRAGMA(omp simd reduction(min : best))
    for (int64_t j = lo; j < n; j++) {
        int64_t c = key[j] == k ? j : n;
        best = c < best ? c : best;
    }
    return best;
}

/* negatives' distances/keys/columns, positives' columns; counts out */
FL_INLINE void FN(tr_split)(const T *restrict d, const KEY_T *restrict key, const int64_t *restrict lab,
                            int64_t N, int64_t a, T *restrict nd, KEY_T *restrict nk,
                            int64_t *restrict nidx, int64_t *restrict pidx, int64_t *kn_, int64_t *kp_) {
    int64_t la = lab[a], kn = 0, kp = 0;
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

/* Stable argsort of keys k[0..n) into order (bottom-up merge sort; tmp: n). */
static void FN(tr_argsort)(const KEY_T *restrict k, int64_t n, int64_t *restrict order, int64_t *restrict tmp) {
    for (int64_t i = 0; i < n; i++) order[i] = i;
    int64_t *src = order, *dst = tmp;
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n;
            int64_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t i = lo, j = mid, t = lo;
            while (i < mid && j < hi) dst[t++] = k[src[j]] < k[src[i]] ? src[j++] : src[i++];
            while (i < mid) dst[t++] = src[i++];
            while (j < hi) dst[t++] = src[j++];
        }
        int64_t *sw = src;
        src = dst;
        dst = sw;
    }
    if (src != order) memcpy(order, src, sizeof(int64_t) * (size_t)n);
}

typedef struct {
    T *d, *nd, *wn;
    KEY_T *key, *nk, *sk;
    int64_t *nidx, *pidx, *order, *tmp;
    void *mem;
} FN(tr_scratch);

static int FN(tr_alloc)(FN(tr_scratch) *s, int64_t N) {
    size_t n = (size_t)(N > 0 ? N : 1);
    size_t bytes = n * (3 * sizeof(T) + 3 * sizeof(KEY_T) + 4 * sizeof(int64_t));
    char *p = (char *)malloc(bytes);
    s->mem = p;
    if (!p) return FL_ENOMEM;
    /* int64 first (8-byte alignment for all that follows) */
    s->nidx = (int64_t *)p;
    s->pidx = s->nidx + n;
    s->order = s->pidx + n;
    s->tmp = s->order + n;
    s->d = (T *)(s->tmp + n);
    s->nd = s->d + n;
    s->wn = s->nd + n;
    s->key = (KEY_T *)(s->wn + n);
    s->nk = s->key + n;
    s->sk = s->nk + n;
    return FL_OK;
}

FL_INLINE double FN(tr_semihard_row)(const T *restrict d, const KEY_T *restrict key, const int64_t *restrict lab,
                                  int64_t N, int64_t a, T margin, int soft, T *restrict w, int want_grad,
                                  FN(tr_scratch) *s, double *cnt) {
    int64_t kn, kp;
    FN(tr_split)(d, key, lab, N, a, s->nd, s->nk, s->nidx, s->pidx, &kn, &kp);
    *cnt = 0.0;
    if (kp == 0) return 0.0;
    const KEY_T *nkk = s->nk;
    const int64_t *nidx = s->nidx, *pidx = s->pidx;
    KEY_T kin;
    int64_t iin;
    if (kn > 0) {
        KEY_T m = KLO;
        FL_PRAGMA(omp simd reduction(max : m))
        for (int64_t k = 0; k < kn; k++) m = nkk[k] > m ? nkk[k] : m;
        kin = m;
        iin = nidx[FN(tr_first)(nkk, kn, m, 0)];
    } else {
        KEY_T m = KHI;
        FL_PRAGMA(omp simd reduction(min : m))
        for (int64_t j = 0; j < N; j++) m = key[j] < m ? key[j] : m;
        kin = m;
        iin = FN(tr_first)(key, N, m, 0);
    }
    T inside = FUNKEY(kin);
    int use_sort = kn > 1 && (double)kp > 128.0 * log2((double)kn);
    KEY_T *sk = s->sk;
    int64_t *order = s->order;
    if (use_sort) {
        FN(tr_argsort)(nkk, kn, order, s->tmp);
        for (int64_t k = 0; k < kn; k++) sk[k] = nkk[order[k]];
    }
    double total = 0.0;
    for (int64_t t = 0; t < kp; t++) {
        int64_t p = pidx[t];
        KEY_T kap = key[p];
        T dap = d[p];
        T neg = inside;
        int64_t ineg = iin;
        if (use_sort) {
            int64_t lo = 0, hi = kn;
            while (lo < hi) {
                int64_t mid = (lo + hi) >> 1;
                if (sk[mid] > kap)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            if (lo < kn) {
                neg = FUNKEY(sk[lo]);
                ineg = nidx[order[lo]];
            }
        } else if (kn > 0) {
            KEY_T m = KHI;
            FL_PRAGMA(omp simd reduction(min : m))
            for (int64_t k = 0; k < kn; k++) {
                KEY_T v = nkk[k];
                KEY_T c = v > kap ? v : KHI;
                m = c < m ? c : m;
            }
            if (m != KHI) {
                neg = FUNKEY(m);
                if (want_grad) ineg = nidx[FN(tr_first)(nkk, kn, m, 0)];
            }
        }
        T l, g;
        FN(tr_hinge_or_soft)(margin + dap - neg, dap - neg, soft, &l, &g);
        total += (double)l;
        if (want_grad) {
            w[p] += g;
            w[ineg] -= g;
        }
    }
    *cnt = (double)kp;
    return total;
}

FL_INLINE double FN(tr_batch_all_row)(const T *restrict d, const KEY_T *restrict key, const int64_t *restrict lab,
                                   int64_t N, int64_t a, T margin, int soft, T *restrict w, int want_grad,
                                   FN(tr_scratch) *s, double *cnt) {
    const T zero = L(0.0);
    int64_t kn, kp;
    FN(tr_split)(d, key, lab, N, a, s->nd, s->nk, s->nidx, s->pidx, &kn, &kp);
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
    if (FN(tr_alloc)(&s, N)) return FL_ENOMEM;
    for (int64_t a = lo; a < hi; a++) {
        double sum = FN(tr_dist_row)(M, aux, X, N, D, a, metric, cut, s.d, s.key);
        T *w = want_grad ? W + a * N : NULL;
        if (want_grad)
            for (int64_t j = 0; j < N; j++) w[j] = L(0.0);
        if (sum != sum) {
            rowloss[a] = NAN;
            rowcnt[a] = 0.0;
            continue;
        }
        double cnt;
        double tot = mode == 0 ? FN(tr_semihard_row)(s.d, s.key, lab, N, a, margin, soft, w, want_grad, &s, &cnt)
                               : FN(tr_batch_all_row)(s.d, s.key, lab, N, a, margin, soft, w, want_grad, &s, &cnt);
        rowloss[a] = tot;
        rowcnt[a] = cnt;
        if (want_grad) FN(tr_scale_row)(w, s.d, N, metric);
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

/* hard mining of one row: loss, (j_pos, j_neg), dloss/dhp (numba _hard_row) */
FL_INLINE double FN(tr_hard_row)(const KEY_T *restrict key, const int64_t *restrict lab,
                                 int64_t N, int64_t a, T margin, int soft, int64_t *ip_, int64_t *in_, T *g_) {
    int64_t la = lab[a];
    KEY_T pmax = KLO, nmin = KHI, rmin = KHI, rmax = KLO;
    int64_t npos = 0, nneg = 0;
    FL_PRAGMA(omp simd reduction(max : pmax, rmax) reduction(min : nmin, rmin) reduction(+ : npos, nneg))
    for (int64_t j = 0; j < N; j++) {
        KEY_T v = key[j];
        int same = lab[j] == la;
        int pos = same & (j != a);
        npos += pos;
        nneg += !same;
        KEY_T pv = pos ? v : KLO;
        KEY_T nv = same ? KHI : v;
        pmax = pv > pmax ? pv : pmax;
        nmin = nv < nmin ? nv : nmin;
        rmin = v < rmin ? v : rmin;
        rmax = v > rmax ? v : rmax;
    }
    int64_t ip, ineg;
    if (npos > 0) {
        ip = N;
        FL_PRAGMA(omp simd reduction(min : ip))
        for (int64_t j = 0; j < N; j++) {
            int hit = (key[j] == pmax) & (lab[j] == la) & (j != a);
            int64_t c = hit ? j : N;
            ip = c < ip ? c : ip;
        }
    } else {
        pmax = rmin;
        ip = FN(tr_first)(key, N, rmin, 0);
    }
    if (nneg > 0) {
        ineg = N;
        FL_PRAGMA(omp simd reduction(min : ineg))
        for (int64_t j = 0; j < N; j++) {
            int hit = (key[j] == nmin) & (lab[j] != la);
            int64_t c = hit ? j : N;
            ineg = c < ineg ? c : ineg;
        }
    } else {
        nmin = rmax;
        ineg = FN(tr_first)(key, N, rmax, 0);
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
    char *mem = (char *)malloc(n * (sizeof(T) + sizeof(KEY_T)));
    if (!mem) return FL_ENOMEM;
    KEY_T *key = (KEY_T *)mem;
    T *d = (T *)(key + n);
    for (int64_t a = lo; a < hi; a++) {
        double sum = FN(tr_dist_row)(M, aux, X, N, D, a, metric, cut, d, key);
        rowcnt[a] = 1.0;
        if (sum != sum) {
            rowloss[a] = NAN;
            sel[2 * a] = a;
            sel[2 * a + 1] = a;
            selc[2 * a] = zero;
            selc[2 * a + 1] = zero;
            continue;
        }
        int64_t ip, ineg;
        T g;
        rowloss[a] = FN(tr_hard_row)(key, lab, N, a, margin, soft, &ip, &ineg, &g);
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

/* Sparse assembly of hard mining (serial; numba hard_grad). G is (N, GC):
 * GC = D for embeddings, N for precomputed. */
FL_CLONES static int FN(tr_hard_grad_impl)(const T *X, const T *M, const T *aux, const int64_t *sel, const T *selc,
                                  int metric, T scale, T *G, int64_t N, int64_t D, int64_t GC) {
    const T zero = L(0.0);
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

/* M = X X^T (serial): the upper triangle, two rows x four columns at a time
 * (8 independent accumulators, each x_j load shared by two rows), mirrored,
 * so M is exactly symmetric. */
FL_INLINE void FN(tr_gram_body)(const T *restrict X, T *restrict M, int64_t N, int64_t D) {
    const T zero = L(0.0);
    int64_t i = 0;
    for (; i + 2 <= N; i += 2) {
        const T *xi = X + i * D, *xk = xi + D;
        int64_t j = i;
        for (; j + 4 <= N; j += 4) {
            const T *x0 = X + j * D, *x1 = x0 + D, *x2 = x1 + D, *x3 = x2 + D;
            T a0 = zero, a1 = zero, a2 = zero, a3 = zero, b0 = zero, b1 = zero, b2 = zero, b3 = zero;
            FL_PRAGMA(omp simd reduction(+ : a0, a1, a2, a3, b0, b1, b2, b3))
            for (int64_t k = 0; k < D; k++) {
                T v = xi[k], u = xk[k];
                T y0 = x0[k], y1 = x1[k], y2 = x2[k], y3 = x3[k];
                a0 += v * y0;
                a1 += v * y1;
                a2 += v * y2;
                a3 += v * y3;
                b0 += u * y0;
                b1 += u * y1;
                b2 += u * y2;
                b3 += u * y3;
            }
            T *m = M + i * N + j;
            m[0] = a0;
            m[1] = a1;
            m[2] = a2;
            m[3] = a3;
            m += N;
            m[0] = b0;
            m[1] = b1;
            m[2] = b2;
            m[3] = b3;
        }
        for (; j < N; j++) {
            const T *xj = X + j * D;
            T p = zero, q = zero;
            FL_PRAGMA(omp simd reduction(+ : p, q))
            for (int64_t k = 0; k < D; k++) {
                p += xi[k] * xj[k];
                q += xk[k] * xj[k];
            }
            M[i * N + j] = p;
            M[(i + 1) * N + j] = q;
        }
    }
    for (; i < N; i++) {
        const T *xi = X + i * D;
        for (int64_t j = i; j < N; j++) {
            const T *xj = X + j * D;
            T p = zero;
            FL_PRAGMA(omp simd reduction(+ : p))
            for (int64_t k = 0; k < D; k++) p += xi[k] * xj[k];
            M[i * N + j] = p;
        }
    }
    /* row i + 1 of a pair wrote M[i + 1, i] (below the diagonal): mirrored over here too */
    for (i = 1; i < N; i++)
        for (int64_t j = 0; j < i; j++) M[i * N + j] = M[j * N + i];
}

/* Explicit dispatch instead of target_clones here: gcc 12's clones of this
 * loop nest ran 1.6x slower than the same body compiled for one target (the
 * AVX-512 clone's 512-bit reductions over D = 128 do not pay). */
#if FL_HAVE_CLONES
__attribute__((target("arch=x86-64-v3"))) static void FN(tr_gram_v3)(const T *X, T *M, int64_t N, int64_t D) {
    FN(tr_gram_body)(X, M, N, D);
}
#endif

static int FN(tr_gram_impl)(const T *X, T *M, int64_t N, int64_t D) {
#if FL_HAVE_CLONES
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        FN(tr_gram_v3)(X, M, N, D);
        return FL_OK;
    }
#endif
    FN(tr_gram_body)(X, M, N, D);
    return FL_OK;
}

/* L2/squared-L2 assembly from the coefficient matrix (serial), skipping zeros. */
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
        T rs = zero;
        T *ga = G + a * D;
        const T *xa = X + a * D;
        for (int64_t t = 0; t < m; t++) {
            int64_t j = idx[t];
            if (j == a) continue;
            T c = wa[j] * scale;
            rs += c;
            const T *xj = X + j * D;
            T *gj = G + j * D;
            FN(tr_axpy)(-c, xj, ga, D);
            FN(tr_axpy)(c, xj, gj, D);
            FN(tr_axpy)(-c, xa, gj, D);
        }
        FN(tr_axpy)(rs, xa, ga, D);
    }
    free(idx);
    return FL_OK;
}

int FN(fl_tr_hard_grad)(const T *X, const T *M, const T *aux, const int64_t *sel, const T *selc, int metric,
                        T scale, T *G, int64_t N, int64_t D, int64_t GC) {
    return FN(tr_hard_grad_impl)(X, M, aux, sel, selc, metric, scale, G, N, D, GC);
}

int FN(fl_tr_gram)(const T *X, T *M, int64_t N, int64_t D) { return FN(tr_gram_impl)(X, M, N, D); }

int FN(fl_tr_dense_grad)(const T *W, const T *X, T scale, T *G, int64_t N, int64_t D) {
    return FN(tr_dense_grad_impl)(W, X, scale, G, N, D);
}

#undef KLO
#undef KHI

#endif /* FL_PASS */
