/* Library-level helpers: thread count and build description. */
#include "fastloss.h"
#include "fl_common.h"

int fl_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

const char *fl_build_info(void) {
    return "simd="
#if defined(FL_NATIVE)
           "native"
#elif FL_HAVE_CLONES
           "target_clones(x86-64-v4,x86-64-v3,default)"
#else
           "baseline"
#endif
           " openmp="
#ifdef _OPENMP
           "yes"
#else
           "no"
#endif
        ;
}

/* fl_math_f32 / fl_math_f64: the loops are multiversioned as the kernels are,
 * so a test measures the body (FMA contraction included) the kernels run. */
#define FL_MATH_BODY(EXPF, LOGF, LOG1PF, PAIRF)                         \
    switch (which) {                                                    \
    case 0:                                                             \
        for (int64_t i = 0; i < n; i++) o1[i] = EXPF(x[i]);             \
        return 0;                                                       \
    case 1:                                                             \
        for (int64_t i = 0; i < n; i++) o1[i] = LOGF(x[i]);             \
        return 0;                                                       \
    case 2:                                                             \
        for (int64_t i = 0; i < n; i++) o1[i] = LOG1PF(x[i]);           \
        return 0;                                                       \
    case 3:                                                             \
        for (int64_t i = 0; i < n; i++) PAIRF(x[i], o1 + i, o2 + i);    \
        return 0;                                                       \
    default:                                                            \
        return -1;                                                      \
    }

FL_CLONES int fl_math_f32(int which, const float *x, float *o1, float *o2, int64_t n) {
    FL_MATH_BODY(fl_exp32, fl_log32, fl_log1p32, fl_expm1_exp32)
}

FL_CLONES int fl_math_f64(int which, const double *x, double *o1, double *o2, int64_t n) {
    FL_MATH_BODY(fl_exp64, fl_log64, fl_log1p64, fl_expm1_exp64)
}
