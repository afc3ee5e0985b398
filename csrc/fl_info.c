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
