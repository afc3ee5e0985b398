/* fastloss C backend: the public declarations of the kernels.
 *
 * The CFFI builder (fastloss/backends/cffi_c/_build.py) reads the text between
 * the FASTLOSS-CDEF-BEGIN and FASTLOSS-CDEF-END markers as its cdef, so keep
 * that part plain C declarations (no macros, no preprocessor lines).
 *
 * Kernel contract (the same as the Numba kernels', fastloss/_core.py):
 *
 *   loss kernels   fl_<name>_<f32|f64>(yt, yp, prm, w, ws, loss, grad, want_grad, R, K, nch, info)
 *   grad_hess      fl_<name>_<f32|f64>(yt, yp, prm, w, ws, grad, hess, R, K, nch, info)
 *
 * yp: (R, K) C-contiguous predictions; yt: the same shape (dense losses, same
 * dtype) or (R,) int64 labels (sparse losses); prm: the parameter vector of
 * numba_cpu/_common.py (F_SCALE, P_*); w/ws: per-row weights and their stride
 * (0: one weight for all rows); loss: (R,) out, the unweighted per-sample loss;
 * grad: (R, K) out when want_grad, d loss_i / d yp[i] times w[i*ws] * prm[0];
 * nch: row chunks (1: serial in the calling thread, more: OpenMP threads);
 * info: (nch, 3) float64 out, per chunk (bad labels, first bad row or -1,
 * sum of loss[i] * w[i*ws]). Returns 0, or 1 when scratch memory could not be
 * allocated. The calls are made with the GIL released (CFFI API mode).
 *
 * The box family (boxes.c) has a signature of its own, with R, tbc, pbc in
 * place of R, K: y_true / y_pred may be ONE box broadcast against R rows (the
 * Numba box kernels' contract); see boxes.c. The triplet family (triplet.c)
 * has its own kernel signatures too, the Numba triplet kernels'; see its header.
 *
 * Families: crossentropy.c, regression.c, boxes.c, triplet.c. Adding a family:
 *  1. csrc/<family>.c, a copy of regression.c's skeleton: it includes itself
 *     twice (FL_PASS 1 = float32, 2 = float64) and each pass includes fl_tmpl.h,
 *     which gives T, FN(name) (the _f32/_f64 suffix), EXP/LOG/LOG1P/SQRT of that
 *     dtype and the drivers. Write each kernel as a row function
 *     `FL_CLONES static int FN(rows_x)(FL_ROWS_ARGS(T)) { ... info[0..2] = ...; }`
 *     over rows [lo, hi) (or FL_ELEMENTWISE for an elementwise loss), then
 *     `FL_ENTRY(x, rows_x, T)` exports fl_x_f32 / fl_x_f64 with the serial /
 *     OpenMP dispatch. Use a kernel with another signature only if the Numba
 *     kernel has one too (keep the info rows).
 *  2. Its prototypes (both dtypes) below, between the CDEF markers.
 *  3. The file name in SOURCES of fastloss/backends/cffi_c/_build.py.
 *  4. fastloss/backends/cffi_c/<family>.py: `x = loss_kernel("x")` (or
 *     gh_kernel / sparse=True), the same names as the Numba module.
 *  5. A "c" dict in the family's registry entries (fastloss/_registry.py).
 *     tests/test_backend_parity.py then checks C against Numba for it, and the
 *     family's test file runs on both backends once it is listed in
 *     tests/conftest.py's PER_BACKEND_MODULES (or marked per_backend).
 */
#ifndef FASTLOSS_H
#define FASTLOSS_H
#include <stdint.h>

/* FASTLOSS-CDEF-BEGIN */
/* OpenMP threads available to the kernels (1 without OpenMP). */
int fl_max_threads(void);
/* How the library was built: SIMD multiversioning, OpenMP, native. */
const char *fl_build_info(void);
/* The kernels' elementary functions over n values, for the accuracy tests:
 * which 0: o1 = exp(x); 1: log(x); 2: log1p(x); 3: (o1, o2) = (expm1(x), exp(x))
 * for x <= 0 (LogCosh's pair). Returns -1 for an unknown which. */
int fl_math_f32(int which, const float *x, float *o1, float *o2, int64_t n);
int fl_math_f64(int which, const double *x, double *o1, double *o2, int64_t n);

/* crossentropy.c: loss kernels */
int fl_bce_probs_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_bce_probs_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_bce_logits_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_bce_logits_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_binary_focal_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_binary_focal_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_binary_focal_logits_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_binary_focal_logits_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_sigmoid_focal_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_sigmoid_focal_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_sigmoid_focal_logits_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_sigmoid_focal_logits_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_kl_divergence_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_kl_divergence_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_poisson_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_poisson_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_cce_logits_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_cce_logits_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_cce_probs_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_cce_probs_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_categorical_focal_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_categorical_focal_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_scce_logits_f32(const int64_t *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_scce_logits_f64(const int64_t *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_scce_probs_f32(const int64_t *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_scce_probs_f64(const int64_t *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
/* crossentropy.c: grad_hess kernels */
int fl_bce_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_bce_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_bce_logits_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_bce_logits_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_poisson_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_poisson_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_cce_logits_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_cce_logits_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_scce_logits_gh_f32(const int64_t *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_scce_logits_gh_f64(const int64_t *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
/* regression.c: loss kernels */
int fl_mse_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_mse_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_mae_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_mae_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_mape_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_mape_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_msle_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_msle_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_huber_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_huber_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_log_cosh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_log_cosh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_hinge_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_hinge_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_squared_hinge_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_squared_hinge_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_cosine_similarity_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_cosine_similarity_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_categorical_hinge_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
int fl_categorical_hinge_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int64_t K, int nch, double *info);
/* regression.c: grad_hess kernels */
int fl_mse_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_mse_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_mae_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_mae_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_mape_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_mape_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_msle_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_msle_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_huber_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_huber_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_log_cosh_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_log_cosh_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_hinge_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_hinge_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
int fl_squared_hinge_gh_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *grad, float *hess, int64_t R, int64_t K, int nch, double *info);
int fl_squared_hinge_gh_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *grad, double *hess, int64_t R, int64_t K, int nch, double *info);
/* boxes.c: loss kernels (R rows; tbc / pbc: y_true / y_pred is one box broadcast, read in place;
   with pbc, grad is (nch, 4) and chunk c writes its rows' gradient sum into grad[c]) */
int fl_iou_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
int fl_iou_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
int fl_giou_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
int fl_giou_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
int fl_diou_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
int fl_diou_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
int fl_ciou_f32(const float *yt, const float *yp, const float *prm, const float *w, int64_t ws, float *loss, float *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
int fl_ciou_f64(const double *yt, const double *yp, const double *prm, const double *w, int64_t ws, double *loss, double *grad, int want_grad, int64_t R, int tbc, int pbc, int nch, double *info);
/* triplet.c: mining kernels, gradient assembly, small-batch Gram (numba_cpu/triplet.py) */
int fl_tr_semihard_f32(const float *M, const float *aux, const float *X, const int64_t *lab, const float *prm, double *rowloss, double *rowcnt, float *W, int want_grad, int64_t N, int64_t D, int nch);
int fl_tr_semihard_f64(const double *M, const double *aux, const double *X, const int64_t *lab, const double *prm, double *rowloss, double *rowcnt, double *W, int want_grad, int64_t N, int64_t D, int nch);
int fl_tr_batch_all_f32(const float *M, const float *aux, const float *X, const int64_t *lab, const float *prm, double *rowloss, double *rowcnt, float *W, int want_grad, int64_t N, int64_t D, int nch);
int fl_tr_batch_all_f64(const double *M, const double *aux, const double *X, const int64_t *lab, const double *prm, double *rowloss, double *rowcnt, double *W, int want_grad, int64_t N, int64_t D, int nch);
int fl_tr_hard_f32(const float *M, const float *aux, const float *X, const int64_t *lab, const float *prm, double *rowloss, double *rowcnt, int64_t *sel, float *selc, int64_t N, int64_t D, int nch);
int fl_tr_hard_f64(const double *M, const double *aux, const double *X, const int64_t *lab, const double *prm, double *rowloss, double *rowcnt, int64_t *sel, double *selc, int64_t N, int64_t D, int nch);
int fl_tr_symmetrize_f32(float *W, const float *M, const float *aux, int metric, double *r, double *q, int64_t N, int nch);
int fl_tr_symmetrize_f64(double *W, const double *M, const double *aux, int metric, double *r, double *q, int64_t N, int nch);
int fl_tr_hard_grad_f32(const float *X, const float *M, const float *aux, const int64_t *sel, const float *selc, int metric, float scale, float *G, int64_t N, int64_t D, int64_t GC);
int fl_tr_hard_grad_f64(const double *X, const double *M, const double *aux, const int64_t *sel, const double *selc, int metric, double scale, double *G, int64_t N, int64_t D, int64_t GC);
int fl_tr_gram_f32(const float *X, float *M, int64_t N, int64_t D, int nch);
int fl_tr_gram_f64(const double *X, double *M, int64_t N, int64_t D, int nch);
int fl_tr_dense_grad_f32(const float *W, const float *X, float scale, float *G, int64_t N, int64_t D);
int fl_tr_dense_grad_f64(const double *W, const double *X, double scale, double *G, int64_t N, int64_t D);
/* FASTLOSS-CDEF-END */

#endif /* FASTLOSS_H */
