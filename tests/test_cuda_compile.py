"""Compile the CUDA kernels to PTX for a Hopper GPU (sm_90) without a GPU.

The simulator (tests/test_cuda.py) runs the kernels as Python, so it cannot
catch what only the real compiler sees: typing that differs from Python's
(an int64 mixed with a uint64 becomes a float64), operations the CUDA target
lacks, warp intrinsics the simulator never runs (the shuffle kernels). This
module types and lowers every kernel of the triplet and register cross-entropy
paths, and the device path's helpers, for float32 and float64 through
``numba.cuda.compile_ptx`` (NVVM; no driver, no device).

Needs numba-cuda with NVVM, e.g. in a virtual environment of its own (NumPy < 2.5):
``pip install numba-cuda "cuda-bindings==12.*" nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12
nvidia-cuda-runtime-cu12``, then ``python -m pytest tests/test_cuda_compile.py``;
skipped where those are missing (CI) or under the simulator.
"""

import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("the simulator does not compile", allow_module_level=True)


def _compiler():
    """numba.cuda when it can compile a kernel that calls an inlined device
    function without a driver (numba-cuda with NVVM; numba's own CUDA target
    needs a driver for that; every device function here is inlined), else
    skip the module."""
    import importlib.util

    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed", allow_module_level=True)
    try:
        import numba
        from numba import cuda

        @cuda.jit(device=True, inline=True)
        def one():
            return 1.0

        def probe(a):
            a[0] = one()

        cuda.compile_ptx(probe, (numba.typeof(np.zeros(1, np.float32)),), cc=(9, 0))
        return cuda
    except Exception as exc:  # no NVVM, ...
        pytest.skip(f"no CUDA compiler here ({type(exc).__name__}: {str(exc)[:120]})", allow_module_level=True)


cuda = _compiler()

from numba import typeof  # noqa: E402

from fastloss.backends.numba_cuda import crossentropy as G  # noqa: E402
from fastloss.backends.numba_cuda import device as DV  # noqa: E402
from fastloss.backends.numba_cuda import triplet as T  # noqa: E402


def _sig(*args):
    return tuple(typeof(a) for a in args)


def _ptx(kernel, *args):
    fn = getattr(kernel, "py_func", kernel)
    ptx, _ = cuda.compile_ptx(fn, _sig(*args), cc=(9, 0))
    assert ".entry" in ptx


def _arr(dt, *shape):
    return np.zeros(shape, dt)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_triplet_kernels_compile(dt):
    N, D = 8, 4
    f, i8, f8 = (lambda *s: _arr(dt, *s)), (lambda *s: _arr(np.int64, *s)), (lambda *s: _arr(np.float64, *s))
    X, M, aux, prm = f(N, D), f(N, N), f(N), f(7)
    lab = i8(N)
    rowloss, rowcnt = f8(N), f8(N)
    sel, selc = i8(N, 2), f(N, 2)
    _ptx(T._norms, M, 0, dt(1e-12), aux)
    _ptx(T._distances, M, aux, X, prm, M)
    _ptx(T._mine_hard, M, aux, X, lab, prm, rowloss, rowcnt, sel, selc)
    _ptx(T._mine_hard, M, aux, X, lab.astype(np.int32), prm, rowloss, rowcnt, sel, selc)  # device labels
    _ptx(T._mine_semihard, M, lab, prm, rowloss, rowcnt, M, True)
    _ptx(T._mine_batch_all, M, lab, prm, rowloss, rowcnt, M, True)
    _ptx(T._sum_rows, rowloss, rowcnt, f8(2))
    _ptx(T._fill, f(N * N), dt(0))
    _ptx(T._fill, _arr(np.uint64, N), np.uint64(T.NOKEY))
    _ptx(T._hard_scatter, X, M, aux, sel, selc, 0, dt(1), True, X)
    _ptx(T._hard_scatter, X, M, aux, sel, selc, 2, dt(1), False, X)
    _ptx(T._hard_precomputed, sel, selc, dt(1), M)
    _ptx(T._normalize_jacobian, X, aux, X)
    _ptx(T._symmetrize_sums, M, M, aux, 2, M, f8(N), f8(N))
    _ptx(T._scale_rows, X, aux, X)
    _ptx(T._finish_dense, X, aux, f8(N), f8(N), X, 0, dt(1), X)
    _ptx(T._scaled, M, dt(1), M)
    _ptx(T._row_norms, X, 0, dt(1e-12), dt(0), aux)
    _ptx(T._make_gram(T.TT, T.RR, T.BK, typeof(np.zeros(1, dt)).dtype), X, M, 1)
    _ptx(T._make_mm(T.TT, T.RR, T.BK, False, typeof(np.zeros(1, dt)).dtype), M, X, X)
    _ptx(T._make_mm(T.TT, T.RR, T.BK, True, typeof(np.zeros(1, dt)).dtype), X, X, M)


def test_fused_batch_hard_kernels_compile():
    """float32 only (64-bit keys of float32 distance bits and a column)."""
    N, D = 8, 4
    X, aux, prm = _arr(np.float32, N, D), _arr(np.float32, N), _arr(np.float32, 7)
    lab, kp, nanf = _arr(np.int64, N), _arr(np.uint64, N), _arr(np.int32, N)
    _ptx(T._reset_keys, kp, kp, nanf, nanf)
    _ptx(T._make_fused_hard(T.FTT, T.FRR, T.FBK), X, aux, lab, prm, kp, kp, nanf, nanf, 1)
    _ptx(T._hard_finish, X, aux, lab, prm, kp, kp, nanf, nanf, _arr(np.float64, N), _arr(np.float64, N),
         _arr(np.int64, N, 2), _arr(np.float32, N, 2))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("block_mode", [False, True])
def test_register_cross_entropy_kernels_compile(dt, block_mode):
    R, C = 4, 100
    x, w, loss = _arr(dt, R, C), _arr(dt, 1), _arr(dt, R)
    info, tot = _arr(np.int64, 2), _arr(np.float64, 1)
    prm = _arr(dt, 6)
    scce = G._make_regs(4, block_mode, typeof(np.zeros(1, dt)).dtype, False)
    _ptx(scce, x, _arr(np.int64, R), prm, 0.0, w, 0, loss, x, True, info, tot)
    cce = G._make_regs(4, block_mode, typeof(np.zeros(1, dt)).dtype, True)
    _ptx(cce, x, x, prm, w, 0, loss, x, True, tot)
    _ptx(G._reset_info_tot, info, tot)
    # their grad_hess twins, with the argument types gradhess.run passes
    nbt = typeof(np.zeros(1, dt)).dtype
    _ptx(G._make_regs(4, block_mode, nbt, False, gh=True), x, _arr(np.int64, R), prm, 0.0, w, 0, x, x, info)
    _ptx(G._make_regs(4, block_mode, nbt, True, gh=True), x, x, prm, w, 0, x, x)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_grad_hess_kernels_compile(dt):
    """Every CUDA grad_hess kernel (boosting), with the argument types run() passes."""
    from fastloss.backends.numba_cuda import gradhess as GH

    R, C = 4, 40
    x, w = _arr(dt, R, C), _arr(dt, 1)
    for kind in GH._ELEMENTWISE:
        _ptx(GH._elementwise(kind), x, x, 1.0, 1e-7, 1 - 1e-7, 1.0, 0.0, 0.25, 2.0, 0.0, w, 0, x, x,
             _arr(np.int64, 1))
    scce, cce = GH._make_softmax(typeof(np.zeros(1, dt)).dtype)
    _ptx(scce, x, _arr(np.int64, R), 1.0, 0.0, False, w, 0, x, x, _arr(np.int64, 2))
    _ptx(cce, x, x, 1.0, 1.0, 0.0, w, 0, x, x)
    scce, cce = GH._make_softmax_staged(typeof(np.zeros(1, dt)).dtype)  # below 32 classes
    _ptx(scce, x, _arr(np.int64, R), 1.0, 0.0, False, w, 0, x, x, _arr(np.int64, 2))
    _ptx(cce, x, x, 1.0, 1.0, 0.0, w, 0, x, x)
    # its two shared arrays within the 48 KB of static shared memory a block may have
    assert 2 * GH.GH_STAGED_TPB * (G.SMALL_C - 1) * np.dtype(dt).itemsize <= 48 * 1024


def test_device_path_helpers_compile():
    loss, w, tot = _arr(np.float32, 8), _arr(np.float32, 8), _arr(np.float64, 1)
    _ptx(DV._wsum, loss, w, 1, tot)
    _ptx(DV._scale, loss, w, 1, loss)
    _ptx(DV._spread, loss, _arr(np.int64, 8), w, loss)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_the_other_kernels_compile(dt):
    """Cross-entropy (two-pass, thread-per-row and warp-shuffle kernels),
    elementwise, row and box kernels, with the argument types their launches
    pass (scalars as Python floats)."""
    from fastloss.backends.numba_cuda import boxes as B
    from fastloss.backends.numba_cuda import elementwise as E
    from fastloss.backends.numba_cuda import rows as W

    R, C = 4, 40
    x, w, loss = _arr(dt, R, C), _arr(dt, 1), _arr(dt, R)
    lab, info, tot = _arr(np.int64, R), _arr(np.int64, 2), _arr(np.float64, 1)
    prm = _arr(np.float64, 10)
    scce_rows = G._make_block_rows(typeof(np.zeros(1, dt)).dtype)[0]
    scce_rows4 = G._make_block_rows(typeof(np.zeros(1, dt)).dtype, 4)[0]
    scce_rows8 = G._make_block_rows(typeof(np.zeros(1, dt)).dtype, 8)[0]
    smem4 = G._make_block_rows(typeof(np.zeros(1, dt)).dtype, 4)[2]
    smem8 = G._make_block_rows(typeof(np.zeros(1, dt)).dtype, 8)[2]
    for k in (scce_rows, scce_rows4, scce_rows8, smem4, smem8, G.scce_logits_thread_per_row,
              G._make_staged(typeof(np.zeros(1, dt)).dtype)):
        _ptx(k, x, lab, prm, w, 0, loss, x, True, info)
    for fused in (False, True):
        _ptx(G._make_block_rows(typeof(np.zeros(1, dt)).dtype, 4, fused)[1], x, x, prm, w, 0, loss, x, True, info)
    _ptx(G._make_staged_dense(typeof(np.zeros(1, dt)).dtype), x, x, prm, w, 0, loss, x, True, info)
    # the staged kernels' shared arrays within the 48 KB of static shared memory a block may have
    assert G.STAGED_TPB * (G.SMALL_C - 1) * np.dtype(dt).itemsize <= 48 * 1024
    assert 2 * G.STAGED_DENSE_TPB * (G.SMALL_C - 1) * np.dtype(dt).itemsize <= 48 * 1024
    _ptx(G.scce_logits_warp, x, lab, 1.0, 0.0, False, w, 0, loss, x, True, info)
    _ptx(G.cce_logits_warp, x, x, 1.0, 1.0, 0.0, w, 0, loss, x, True, info)
    for kind in E.KINDS:
        for k in E._kernels(kind):
            _ptx(k, x, x, 1.0, 1e-7, 1 - 1e-7, 1.0, 0.0, 0.25, 2.0, 0.0, w, 0, loss, x, True, tot, info)
    for kind in W.KINDS:
        y = lab if kind == "scce_probs" else x
        alpha = (_arr(np.float64, C), True) if kind == "categorical_focal" else ()  # its per-class alpha
        _ptx(getattr(W, kind), y, x, 1.0, 1e-7, 1 - 1e-7, 1.0, 0.0, 0.25, 2.0, 0.0, 0.0, False, *alpha, w, 0, loss, x,
             True, tot, info)
    b = _arr(dt, R, 4)
    for k in B._KERNELS.values():
        _ptx(k, b, b, 1.0, 1e-7, 0.0, w, 0, loss, b, True, tot, _arr(np.float64, 4))


def _ptxas():
    import shutil

    try:
        import nvidia.cuda_nvcc as nv

        path = os.path.join(list(nv.__path__)[0], "bin", "ptxas")
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    return shutil.which("ptxas")


@pytest.mark.parametrize("name", ["gram", "mm", "fused_hard", "scce_warp", "cce_warp", "scce_block", "cce_block",
                                  "scce_rows", "scce_rows4", "scce_rows4_1024",
                                  "scce_rows8_1024", "scce_smem4_1024", "scce_smem8_1024", "cce_rows",
                                  "cce_rows_fused", "scce_staged", "cce_staged", "gh_scce_staged",
                                  "gh_scce_warp", "gh_cce_warp", "gh_scce_block", "gh_cce_block"])
def test_hot_kernels_keep_accumulators_in_registers(name, tmp_path):
    """ptxas (sm_90) on the hot kernels at their launch settings: no stack
    frame (a local array left on the stack turns every multiply-add into a
    local-memory access), no spills, and registers x threads per block within
    the 64K register file (else the launch fails)."""
    import subprocess

    ptxas = _ptxas()
    if ptxas is None:
        pytest.skip("no ptxas (nvidia-cuda-nvcc-cu12)")
    f4 = np.float32
    N, D, R, C = 8, 4, 4, 1000
    X, M, aux, prm = _arr(f4, N, D), _arr(f4, N, N), _arr(f4, N), _arr(f4, 7)
    x, w, loss = _arr(f4, R, C), _arr(f4, 1), _arr(f4, R)
    info, tot, lab = _arr(np.int64, 2), _arr(np.float64, 1), _arr(np.int64, R)
    nbt = typeof(np.zeros(1, f4)).dtype
    cases = {
        "gram": (T._make_gram(T.TT, T.RR, T.BK, nbt), (X, M, 1), T.TT * T.TT),
        "mm": (T._make_mm(T.TT, T.RR, T.BK, False, nbt), (M, X, X), T.TT * T.TT),
        "fused_hard": (T._make_fused_hard(T.FTT, T.FRR, T.FBK),
                       (X, aux, _arr(np.int64, N), prm, _arr(np.uint64, N), _arr(np.uint64, N), _arr(np.int32, N),
                        _arr(np.int32, N), 1), T.FTT * T.FTT),
        "scce_warp": (G._make_regs(G.WARP_MAX_C // 32, False, nbt, False),
                      (x, lab, _arr(f4, 6), 0.0, w, 0, loss, x, True, info, tot), 256),
        "cce_warp": (G._make_regs(G.WARP_MAX_C // 32, False, nbt, True), (x, x, _arr(f4, 6), w, 0, loss, x, True, tot),
                     256),
        "scce_block": (G._make_regs(G.REG_VPL_MAX, True, nbt, False),
                       (x, lab, _arr(f4, 6), 0.0, w, 0, loss, x, True, info, tot), G.RB_TPB),
        "cce_block": (G._make_regs(G.REG_VPL_MAX, True, nbt, True), (x, x, _arr(f4, 6), w, 0, loss, x, True, tot),
                      G.RB_TPB),
        # the online-softmax block kernels beyond 4096 classes: 512 threads (_launch_rows)
        "scce_rows": (G._make_block_rows(nbt)[0], (x, lab, _arr(np.float64, 10), w, 0, loss, x, True, info), 512),
        "scce_rows4": (G._make_block_rows(nbt, 4)[0], (x, lab, _arr(np.float64, 10), w, 0, loss, x, True, info), 512),
        # ROWS_TPB = 1024 (a variant gpu_check times): float32 at UNROLL <= 8 only
        "scce_rows4_1024": (G._make_block_rows(nbt, 4)[0], (x, lab, _arr(np.float64, 10), w, 0, loss, x, True, info),
                            1024),
        "scce_rows8_1024": (G._make_block_rows(nbt, 8)[0], (x, lab, _arr(np.float64, 10), w, 0, loss, x, True, info),
                            1024),
        # the row kept in shared memory (ROWS_SMEM): 1024 threads in float32 at UNROLL <= 8
        "scce_smem4_1024": (G._make_block_rows(nbt, 4)[2], (x, lab, _arr(np.float64, 10), w, 0, loss, x, True, info),
                            1024),
        "scce_smem8_1024": (G._make_block_rows(nbt, 8)[2], (x, lab, _arr(np.float64, 10), w, 0, loss, x, True, info),
                            1024),
        "cce_rows": (G._make_block_rows(nbt, 1, False)[1], (x, x, _arr(np.float64, 10), w, 0, loss, x, True, info),
                     512),
        "cce_rows_fused": (G._make_block_rows(nbt, G.UNROLL, True)[1],
                           (x, x, _arr(np.float64, 10), w, 0, loss, x, True, info), 512),
        # SCCE below 32 classes, rows staged through shared memory (_launch_rows: STAGED_TPB threads)
        "scce_staged": (G._make_staged(nbt), (x, lab, _arr(np.float64, 10), w, 0, loss, x, True, info),
                        G.STAGED_TPB),
        "cce_staged": (G._make_staged_dense(nbt), (x, x, _arr(np.float64, 10), w, 0, loss, x, True, info),
                       G.STAGED_DENSE_TPB),
    }
    from fastloss.backends.numba_cuda import gradhess as GH

    cases["gh_scce_staged"] = (GH._make_softmax_staged(nbt)[0],
                               (x, lab, 1.0, 0.0, False, w, 0, x, x, info), GH.GH_STAGED_TPB)
    # grad_hess in registers (GH_REGS): the value_and_grad kernels' launch settings
    cases["gh_scce_warp"] = (G._make_regs(G.WARP_MAX_C // 32, False, nbt, False, gh=True),
                             (x, lab, _arr(f4, 5), 0.0, w, 0, x, x, info), 256)
    cases["gh_cce_warp"] = (G._make_regs(G.WARP_MAX_C // 32, False, nbt, True, gh=True),
                            (x, x, _arr(f4, 6), w, 0, x, x), 256)
    cases["gh_scce_block"] = (G._make_regs(G.REG_VPL_MAX, True, nbt, False, gh=True),
                              (x, lab, _arr(f4, 5), 0.0, w, 0, x, x, info), G.RB_TPB)
    cases["gh_cce_block"] = (G._make_regs(G.REG_VPL_MAX, True, nbt, True, gh=True),
                             (x, x, _arr(f4, 6), w, 0, x, x), G.RB_TPB)
    kern, args, threads = cases[name]
    ptx, _ = cuda.compile_ptx(kern.py_func, _sig(*args), cc=(9, 0))
    src = tmp_path / "k.ptx"
    src.write_text(ptx)
    out = subprocess.run([ptxas, "-arch=sm_90", "-O3", "-v", str(src), "-o", os.devnull],
                         capture_output=True, text=True, check=True).stderr
    import re

    regs = int(re.search(r"Used (\d+) registers", out).group(1))
    stack = int(re.search(r"(\d+) bytes stack frame", out).group(1))
    spills = int(re.search(r"(\d+) bytes spill stores", out).group(1))
    assert stack == 0 and spills == 0, out
    assert regs * threads <= 65536, f"{regs} registers x {threads} threads: {out}"
