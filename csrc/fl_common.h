/* Internal helpers shared by the C kernel families (NOT read by the CFFI cdef):
 * bit casts, vectorizable float32 exp/log/log1p, order-preserving float keys,
 * the parameter-vector layout, the SIMD multiversioning attribute.
 *
 * The float32 elementary functions are the C twins of
 * fastloss/backends/numba_cpu/_math.py (same reductions, same polynomials,
 * same special-value handling), written with arithmetic, selects and bit casts
 * only so that gcc vectorizes the loops around them without -ffast-math and
 * without libmvec. float64 has twins of the Numba kernels' float64 versions
 * (end of this file).
 *
 * Build flags (fastloss/backends/cffi_c/_build.py): -O3 -fopenmp
 * -fno-math-errno -fno-trapping-math; NOT -ffast-math/-ffinite-math-only (NaN
 * and inf must stay visible), NOT -fassociative-math (it could fold the
 * Cody-Waite reduction below); float reductions vectorize through
 * "#pragma omp simd reduction".
 */
#ifndef FL_COMMON_H
#define FL_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define FL_INLINE static inline __attribute__((always_inline))

/* Function multiversioning: each row kernel is compiled for x86-64-v4
 * (AVX-512), x86-64-v3 (AVX2 + FMA) and the baseline, and picked at load time
 * (ifunc), so a distributable build still runs wide vectors. FL_NATIVE
 * (FASTLOSS_C_NATIVE=1: -march=native) or FL_NO_CLONES switch it off. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(FL_NATIVE) && !defined(FL_NO_CLONES)
#define FL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define FL_HAVE_CLONES 1
#else
#define FL_CLONES
#define FL_HAVE_CLONES 0
#endif

#define FL_STR_(x) #x
#define FL_STR(x) FL_STR_(x)
#define FL_PRAGMA(x) _Pragma(#x)
#define FL_CAT_(a, b) a##b
#define FL_CAT(a, b) FL_CAT_(a, b)

/* Indices into prm (fastloss/backends/numba_cpu/_common.py). */
#define F_SCALE 0
#define P_EPS 1
#define P_OME 2
#define P_LS_A 3
#define P_LS_B 4
#define P_ALPHA 5
#define P_GAMMA 6
#define P_FLAG 7
#define P_IGNORE 8
#define P_HAS_IGNORE 9
/* Categorical focal's alpha for class j: prm[P_AVEC + j * prm[P_AVEC_STEP]], step 0
 * (one alpha) or 1 (one per class: prm has P_AVEC + K entries). */
#define P_AVEC_STEP 10
#define P_AVEC 11
#define FL_NPRM 12 /* the fixed slots */

/* Rows are processed in blocks of about this many elements (scratch in L1/L2). */
#define FL_BLOCK 4096

/* Status codes returned by every kernel. */
#define FL_OK 0
#define FL_ENOMEM 1

FL_INLINE int32_t fl_f2i(float x) {
    int32_t i;
    memcpy(&i, &x, 4);
    return i;
}
FL_INLINE float fl_i2f(int32_t i) {
    float x;
    memcpy(&x, &i, 4);
    return x;
}
FL_INLINE int64_t fl_d2i(double x) {
    int64_t i;
    memcpy(&i, &x, 8);
    return i;
}
FL_INLINE double fl_i2d(int64_t i) {
    double x;
    memcpy(&x, &i, 8);
    return x;
}

/* Order-preserving integer keys: a < b iff key(a) < key(b) for non-NaN a, b
 * (flip the magnitude bits of negatives). Integer max-reductions vectorize. */
FL_INLINE int32_t fl_key32(float x) {
    int32_t b = fl_f2i(x);
    return b ^ (int32_t)(((uint32_t)(b >> 31)) >> 1);
}
FL_INLINE float fl_unkey32(int32_t k) {
    return fl_i2f(k ^ (int32_t)(((uint32_t)(k >> 31)) >> 1));
}
FL_INLINE int64_t fl_key64(double x) {
    int64_t b = fl_d2i(x);
    return b ^ (int64_t)(((uint64_t)(b >> 63)) >> 1);
}
FL_INLINE double fl_unkey64(int64_t k) {
    return fl_i2d(k ^ (int64_t)(((uint64_t)(k >> 63)) >> 1));
}

/* From t = x/ln2 + 1.5*2**23: k (the integer in t's low mantissa bits) and
 * 2**(k>>1), 2**(k - (k>>1)) (two halves: subnormal results come out right). */
FL_INLINE void fl_exp2_parts(float t, float *kf, float *s1, float *s2) {
    int32_t k = fl_f2i(t) - 0x4B400000;
    int32_t k1 = k >> 1;
    int32_t k2 = k - k1;
    *s1 = fl_i2f((int32_t)((uint32_t)(k1 + 127) << 23));
    *s2 = fl_i2f((int32_t)((uint32_t)(k2 + 127) << 23));
    *kf = (float)k;
}

/* exp for float32: x = k ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial. */
FL_INLINE float fl_exp32(float x) {
    float xc = x;
    if (xc > 88.8f) xc = 88.8f;
    if (xc < -104.0f) xc = -104.0f;
    float kf, s1, s2;
    fl_exp2_parts(xc * 1.4426950408889634f + 12582912.0f, &kf, &s1, &s2);
    float r = xc - kf * 0.693145751953125f;
    r = r - kf * 1.428606765330187e-06f;
    float p = (float)(1.0 / 5040.0);
    p = p * r + (float)(1.0 / 720.0);
    p = p * r + (float)(1.0 / 120.0);
    p = p * r + (float)(1.0 / 24.0);
    p = p * r + (float)(1.0 / 6.0);
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    float res = (p * s1) * s2;
    if (x < -104.0f) res = 0.0f;
    return res;
}

/* log1p(f) - f for f in [-0.32, 0.42]: -f**2/2 + f**3 P(f), P fitted by
 * fastloss (numba_cpu/_math.py, _log1p_tail). */
FL_INLINE float fl_log1p_tail32(float f) {
    float z = f * f;
    float q = -0.08499670773744583f;
    q = q * f + 0.1342807561159134f;
    q = q * f + -0.13146577775478363f;
    q = q * f + 0.14103639125823975f;
    q = q * f + -0.16614308953285217f;
    q = q * f + 0.20005464553833008f;
    q = q * f + -0.2500118315219879f;
    q = q * f + 0.3333328068256378f;
    return (z * f) * q - 0.5f * z;
}

FL_INLINE float fl_log32(float x) {
    float xs = x;
    float eadj = 0.0f;
    if (xs < 1.1754943508222875e-38f) { /* subnormal (or <= 0, fixed below) */
        xs = xs * 8388608.0f;
        eadj = -23.0f;
    }
    int32_t b = fl_f2i(xs);
    float ef = (float)((int32_t)(((uint32_t)b >> 23) & 0xFF) - 127) + eadj;
    float m = fl_i2f((b & 0x007FFFFF) | 0x3F800000);
    if (m > 1.4142135623730951f) {
        m = m * 0.5f;
        ef = ef + 1.0f;
    }
    float f = m - 1.0f;
    float y = fl_log1p_tail32(f);
    float res = (f + (y + ef * -2.12194440e-4f)) + ef * 0.693359375f;
    /* special inputs, found by ONE unsigned compare of the bits: a positive
     * finite x (subnormals included) has bits in [1, 0x7F7FFFFF] */
    uint32_t bx = (uint32_t)fl_f2i(x);
    float special = x == 0.0f ? -INFINITY : (x < 0.0f ? NAN : x); /* +-0, negative, +inf/NaN */
    return bx - 1u < 0x7F7FFFFFu ? res : special;
}

/* log1p for float32: the polynomial straight on u inside (-0.32, 0.42) (tiny u
 * keep full relative precision), log32(1 + u) outside. The range test is ONE
 * comparison, |u - 0.05| < 0.37 (false for NaN): gcc 12 refuses to vectorize
 * some loops (exp followed by this log1p) when it is written as two. */
FL_INLINE float fl_log1p32(float u) {
    float big = fl_log32(u + 1.0f);
    float small = u + fl_log1p_tail32(u);
    return fabsf(u - 0.05f) < 0.37f ? small : big;
}

/* log1p for u known to lie in [-0.32, 0.42]. */
FL_INLINE float fl_log1p32_small(float u) { return u + fl_log1p_tail32(u); }

/* (expm1(z), exp(z)) for z <= 0 from one reduced-argument evaluation. */
FL_INLINE void fl_expm1_exp32(float z, float *em, float *u) {
    float zc = z;
    if (zc < -104.0f) zc = -104.0f;
    float kf, s1, s2;
    fl_exp2_parts(zc * 1.4426950408889634f + 12582912.0f, &kf, &s1, &s2);
    float r = zc - kf * 0.693145751953125f;
    r = r - kf * 1.428606765330187e-06f;
    float q = (float)(1.0 / 5040.0);
    q = q * r + (float)(1.0 / 720.0);
    q = q * r + (float)(1.0 / 120.0);
    q = q * r + (float)(1.0 / 24.0);
    q = q * r + (float)(1.0 / 6.0);
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    q = q * r;
    *u = (s1 * (q + 1.0f)) * s2;
    float s = s1 * s2;
    *em = s * q + (s - 1.0f);
}

/* ---- float64: the twins of numba_cpu/_math.py's exp64/log64/log1p64 and
 * regression.py's _expm1_exp64 (libm's scalar calls kept every float64 loop
 * from vectorizing). Without -fassociative-math the two reduction steps stay
 * two and (p * s1) * s2 stays in that order, so no fma is needed here. */

#define FL_LN2_HI 0.6931471803691238      /* ln 2 to 33 bits: k * FL_LN2_HI is exact */
#define FL_LN2_LO 1.9082149292705877e-10  /* ln 2 - FL_LN2_HI */

/* From t = x/ln2 + 1.5*2**52: k and 2**(k>>1), 2**(k - (k>>1)). k as a double
 * is t - 1.5*2**52 (exact): AVX2 has no int64 -> double conversion, and gcc
 * would not vectorize a loop that needs one. */
FL_INLINE void fl_exp2_parts64(double t, double *kf, double *s1, double *s2) {
    int64_t k = fl_d2i(t) - 0x4338000000000000LL;
    int64_t k1 = k >> 1;
    int64_t k2 = k - k1;
    *s1 = fl_i2d((int64_t)((uint64_t)(k1 + 1023) << 52));
    *s2 = fl_i2d((int64_t)((uint64_t)(k2 + 1023) << 52));
    *kf = t - 6755399441055744.0;
}

/* exp(r) - 1 for |r| <= ln2/2: Taylor through r**13. */
FL_INLINE double fl_expm1_poly64(double r) {
    double q = 1.0 / 6227020800.0;
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    q = q * r + 1.0;
    return q * r;
}

/* xc = k ln2 + r, |r| <= ln2/2 (two steps: k FL_LN2_HI is exact): r and the
 * two halves of 2**k (numba_cpu/_math.py exp_reduce64). */
FL_INLINE double fl_exp_reduce64(double xc, double *s1, double *s2) {
    double kf;
    fl_exp2_parts64(xc * 1.4426950408889634 + 6755399441055744.0, &kf, s1, s2);
    double r = xc - kf * FL_LN2_HI;
    return r - kf * FL_LN2_LO;
}

FL_INLINE double fl_exp64(double x) {
    double xc = x;
    if (xc > 709.9) xc = 709.9;
    if (xc < -746.0) xc = -746.0;
    double s1, s2;
    double r = fl_exp_reduce64(xc, &s1, &s2);
    double res = ((fl_expm1_poly64(r) + 1.0) * s1) * s2;
    if (x < -746.0) res = 0.0;
    return res;
}

/* log1p(f) for f in [-0.34, 0.53]: s = f/(2+f), the atanh series of
 * log((1+s)/(1-s)) through s**21, as f - (f**2/2 - s (f**2/2 + R)). */
FL_INLINE double fl_log1p_core64(double f) {
    double s = f / (2.0 + f);
    double z = s * s;
    double q = 2.0 / 21.0;
    q = q * z + 2.0 / 19.0;
    q = q * z + 2.0 / 17.0;
    q = q * z + 2.0 / 15.0;
    q = q * z + 2.0 / 13.0;
    q = q * z + 2.0 / 11.0;
    q = q * z + 2.0 / 9.0;
    q = q * z + 2.0 / 7.0;
    q = q * z + 2.0 / 5.0;
    q = q * z + 2.0 / 3.0;
    double hfsq = 0.5 * f * f;
    return f - (hfsq - s * (hfsq + z * q));
}

FL_INLINE double fl_log64(double x) {
    double xs = x;
    double ebias = 4503599627370496.0 + 1023.0; /* 2**52 + the exponent bias */
    if (xs < 2.2250738585072014e-308) {        /* subnormal (or <= 0, fixed below) */
        xs = xs * 18014398509481984.0;         /* 2**54 */
        ebias = ebias + 54.0;
    }
    int64_t b = fl_d2i(xs);
    /* the exponent field as a double without an int64 conversion (see above):
     * 2**52 + field, minus 2**52 + bias, exact */
    double ef = fl_i2d(0x4330000000000000LL | ((b >> 52) & 0x7FF)) - ebias;
    double m = fl_i2d((b & 0x000FFFFFFFFFFFFFLL) | 0x3FF0000000000000LL);
    if (m > 1.4142135623730951) {
        m = m * 0.5;
        ef = ef + 1.0;
    }
    double res = ef * FL_LN2_HI + (ef * FL_LN2_LO + fl_log1p_core64(m - 1.0));
    /* special inputs by ONE unsigned compare of the bits, as fl_log32 (4 selects
     * took 12 % more): a positive finite x has bits in [1, 0x7FEFFFFFFFFFFFFF] */
    uint64_t bx = (uint64_t)fl_d2i(x);
    double special = x == 0.0 ? -INFINITY : (x < 0.0 ? NAN : x); /* +-0, negative, +inf/NaN */
    return bx - 1u < 0x7FEFFFFFFFFFFFFFull ? res : special;
}

/* log1p for float64: the series straight on u inside log64's range of f
 * ((-0.2929, 0.4142), as ONE comparison for the reason fl_log1p32 gives: with
 * two, gcc 12 left BCE from logits' double loop scalar), log64(1 + u) outside. */
FL_INLINE double fl_log1p64(double u) {
    double big = fl_log64(u + 1.0);
    double small = fl_log1p_core64(u);
    return fabs(u - 0.06066017177982128) < 0.35355339059327373 ? small : big;
}

FL_INLINE double fl_log1p64_small(double u) { return fl_log1p_core64(u); }

/* (expm1(z), exp(z)) for z <= 0 from one reduced-argument evaluation. */
FL_INLINE void fl_expm1_exp64(double z, double *em, double *u) {
    double zc = z;
    if (zc < -746.0) zc = -746.0;
    double s1, s2;
    double q = fl_expm1_poly64(fl_exp_reduce64(zc, &s1, &s2));
    *u = (s1 * (q + 1.0)) * s2;
    double s = s1 * s2;
    *em = s * q + (s - 1.0);
}

#endif /* FL_COMMON_H */
