"""The CUDA kernels against the CPU backend.

CI has no GPU: there the kernels run in Numba's CUDA simulator
(NUMBA_ENABLE_CUDASIM=1), which must be set before numba.cuda is imported, so
``test_cuda_kernels_in_simulator`` re-runs this file in a subprocess with it.
Threads per block and the grid are shrunk so rows span several threads and
blocks loop over rows (grid-stride). On a machine with a GPU the same tests run
on the device directly.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss
from fastloss import losses as L

ON_DEVICE = "cuda" in fastloss.available_backends()
SIM_CHILD = os.environ.get("FASTLOSS_CUDA_SIM_CHILD") == "1"
if SIM_CHILD:
    # The simulator's launcher polls its block's threads in a busy loop
    # (numba/cuda/simulator/kernel.py, is_alive on every thread), holding the
    # GIL for a whole switch interval (5 ms) each turn while the threads wait:
    # a weighted 30 x 40 CCE call took 20.4 s at 5 ms, 2.6 s at 0.5 ms.
    sys.setswitchinterval(5e-4)

    def _lock_simulator_shared_arrays():
        """The simulator makes a block's shared array on the first call from
        its source line (``FakeCUDAShared.array``: look the line up, else make
        the array and store it), with the block's threads running as Python
        threads and no lock: two threads that both miss each make an array of
        their own, and the kernel computes on memory its other threads never
        see. Rare (an unexplained single failure now and then since
        2026-12-04; 2026-12-06, test_dense_block_row_kernel_fused_matches_the_cpu
        once in a full run, passing on rerun), more so with the switch
        interval above. Same lookup, under a lock; the key is the caller's
        (file, line) as there."""
        import threading

        from numba.core import types
        from numba.cuda.simulator import kernelapi
        from numba.np import numpy_support

        orig = kernelapi.FakeCUDAShared.array
        lock = threading.Lock()

        def array(self, shape, dtype):
            if shape == 0:  # dynamic shared memory: one buffer, no lookup
                return orig(self, shape, dtype)
            if isinstance(dtype, types.Type):  # a Numba type (nbt): as a NumPy dtype
                dtype = numpy_support.as_dtype(dtype)
            f = sys._getframe(1)
            key = (f.f_code.co_filename, f.f_lineno)
            with lock:
                res = self._allocations.get(key)
                if res is None:
                    res = self._allocations[key] = np.empty(shape, dtype)
            return res

        kernelapi.FakeCUDAShared.array = array

    _lock_simulator_shared_arrays()


@pytest.mark.skipif(not SIM_CHILD, reason="the simulator's shared arrays (the simulator child only)")
def test_simulator_shared_array_is_one_per_block_under_racing_threads():
    """A block's threads, released together, each ask for the shared array of
    one source line: all get the same array. The simulator's own lookup (no
    lock; see ``_lock_simulator_shared_arrays``) fails this in most runs with
    thread switches as frequent as here."""
    import threading

    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    def one_block(n=16):
        sh = FakeCUDAShared(0)
        start = threading.Barrier(n)
        got = [None] * n

        def thread(t):
            start.wait()
            got[t] = sh.array(8, np.float64)

        ts = [threading.Thread(target=thread, args=(t,)) for t in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return all(g is got[0] for g in got) and len(sh._allocations) == 1

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        assert all(one_block() for _ in range(100))
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.skipif(ON_DEVICE or SIM_CHILD, reason="runs the CUDA tests in the simulator when there is no GPU")
def test_cuda_kernels_in_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", FASTLOSS_CUDA_SIM_CHILD="1")
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", __file__],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout


needs_cuda = pytest.mark.skipif(not ON_DEVICE, reason="no CUDA device (or simulator)")


# "small": 8 threads per block and 3 blocks, so rows span threads and blocks
# loop over rows (the shared-memory kernels); "default": the launch a user
# gets (on a real GPU, the warp-shuffle kernels).
@pytest.fixture(autouse=True, params=["small"] if SIM_CHILD or not ON_DEVICE else ["small", "default"])
def _launch_config(request):
    if not ON_DEVICE or request.param == "default":
        yield
        return
    from fastloss.backends.numba_cuda import crossentropy as G
    from fastloss.backends.numba_cuda import elementwise as E
    from fastloss.backends.numba_cuda import boxes as B
    from fastloss.backends.numba_cuda import rows as W
    from fastloss.backends.numba_cuda import triplet as T

    mods = (G, E, W, B, T)
    old = [(m.TPB, m.MAX_BLOCKS) for m in mods]
    from fastloss.backends.numba_cuda import device as DV

    old_tile = (T.TT, T.RR, T.BK, T.SCRATCH_MAX, DV.REDUCE_TPB, G.RB_TPB, G.WARP_MAX_C, T.FTT, T.FRR, T.FBK)
    for m in mods:
        m.TPB, m.MAX_BLOCKS = 8, 3
    # tiles of 4 x 4 entries, 3 columns deep (tails everywhere); (N, N) work
    # buffers allocated per call, the small ones kept
    # register-resident SCCE: warp mode up to 64 classes, block mode (8 threads) above
    T.TT, T.RR, T.BK, T.SCRATCH_MAX, DV.REDUCE_TPB, G.RB_TPB, G.WARP_MAX_C = 2, 2, 3, 40, 8, 8, 64
    T.FTT, T.FRR, T.FBK = 2, 2, 3
    yield
    for m, (tpb, mb) in zip(mods, old):
        m.TPB, m.MAX_BLOCKS = tpb, mb
    (T.TT, T.RR, T.BK, T.SCRATCH_MAX, DV.REDUCE_TPB, G.RB_TPB, G.WARP_MAX_C, T.FTT, T.FRR, T.FBK) = old_tile


CASES = [
    (lambda: L.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
    (lambda: L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=2, reduction="sum"), "sparse"),
    (lambda: L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), "dense"),
    (lambda: L.CategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"), "dense"),
]


def _data(kind, R, C, dt, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((R, C)) * 3).astype(dt)
    lab = rng.integers(0, C, R)
    y = lab if kind == "sparse" else np.eye(C, dtype=dt)[lab]
    return y, x


def _cuda_matches_cpu(obj, y, x, w, dt, l_atol=0.0, g_atol=1e-2):
    """``obj.value_and_grad`` on NumPy inputs under use_backend("cuda") against
    the CPU backend; tolerances relative to 2e-5 (float32) / 1e-10 (float64)."""
    ref_l, ref_g = obj.value_and_grad(y, x, sample_weight=w)
    with fastloss.use_backend("cuda"):
        l, g = obj.value_and_grad(y, x, sample_weight=w)
    tol = 2e-5 if dt == np.float32 else 1e-10
    np.testing.assert_allclose(l, ref_l, rtol=tol, atol=tol * l_atol)
    np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol * g_atol)
    assert g.dtype == dt and g.shape == x.shape and np.shape(l) == np.shape(ref_l)
    return g


@needs_cuda
@pytest.mark.parametrize("make, kind", CASES)
@pytest.mark.parametrize("C", [5, 40, 100])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_numpy_inputs_under_cuda_backend_match_cpu(make, kind, C, dt):
    y, x = _data(kind, 7, C, dt)
    _cuda_matches_cpu(make(), y, x, np.linspace(0.5, 2.0, 7), dt)


@needs_cuda
@pytest.mark.parametrize("make, kind", CASES)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "none"])
def test_device_inputs_match_cpu(make, kind, reduction):
    from numba import cuda

    y, x = _data(kind, 9, 33, np.float32, seed=1)
    obj = make()
    obj.reduction = reduction
    ref_l, ref_g = obj.value_and_grad(y, x)
    l, g = obj.value_and_grad(cuda.to_device(y), cuda.to_device(x))
    to_host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
    np.testing.assert_allclose(to_host(l) if reduction == "none" else l, ref_l, rtol=2e-5)
    np.testing.assert_allclose(to_host(g), ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
@pytest.mark.parametrize("C", [5, 40])
@pytest.mark.parametrize("make, kind, probs", [
    (lambda: L.SparseCategoricalCrossentropy(from_logits=True), "sparse", False),
    (lambda: L.CategoricalCrossentropy(from_logits=True), "dense", False),
    (lambda: L.SparseCategoricalCrossentropy(), "sparse", True),
    (lambda: L.CosineSimilarity(), "dense", False),
], ids=["scce_logits", "cce_logits", "scce_probs", "cosine"])
def test_reduced_device_call_reads_back_once(make, kind, probs, C, monkeypatch):
    """The bad-label check and the reduced total come back in ONE copy (the
    call's one synchronization), on every cross-entropy path: register kernels
    (40 classes), thread per row (5), the row kernels."""
    from numba import cuda

    obj = make()
    y, x = _data(kind, 9, C, np.float32, seed=2)
    if probs:
        x = np.abs(x) + 0.1
        x /= x.sum(-1, keepdims=True)
    ref = obj(y, x)
    dy, dx = cuda.to_device(y), cuda.to_device(x)
    cls = type(dx)
    calls = []
    orig = cls.copy_to_host
    monkeypatch.setattr(cls, "copy_to_host", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    loss, g = obj.value_and_grad(dy, dx)
    assert len(calls) == 1
    monkeypatch.undo()
    np.testing.assert_allclose(loss, ref, rtol=2e-5)


@needs_cuda
@pytest.mark.parametrize("reduction, copies", [("sum", 1), ("none", 1), ("sum_over_batch_size", 2)])
def test_ignore_class_copies_labels_back_only_for_a_mean(reduction, copies):
    """SCCE with ignore_class: the labels come back to the host only where the
    reduction's factor counts the rows kept (a mean); "sum" and "none" read
    back only the status buffer (the bad-label check, and the total)."""
    from numba import cuda

    obj = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1, reduction=reduction)
    lab = np.array([0, 1, 2, 1, 3, 4, 1, 0, 2])
    x = np.random.default_rng(3).normal(size=(9, 40)).astype(np.float32)
    ref_l, ref_g = obj.value_and_grad(lab, x)
    dl, dx = cuda.to_device(lab), cuda.to_device(x)
    cls = type(dx)
    calls = []
    orig = cls.copy_to_host
    mp = pytest.MonkeyPatch()
    mp.setattr(cls, "copy_to_host", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    try:
        loss, g = obj.value_and_grad(dl, dx)
    finally:
        mp.undo()
    assert len(calls) == copies
    loss = loss.copy_to_host() if hasattr(loss, "copy_to_host") else loss
    np.testing.assert_allclose(loss, ref_l, rtol=2e-5)
    np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
def test_device_bad_label_raises():
    from numba import cuda

    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="label"):
        L.SparseCategoricalCrossentropy(from_logits=True)(cuda.to_device(np.array([0, 1, 3, 2])), cuda.to_device(x))


@needs_cuda
@pytest.mark.parametrize("C", [10, 40, 100, 300])
@pytest.mark.parametrize("settings", [{}, {"REG_LOADS_FIRST": False}, {"REGS": False}, {"REGS": False, "UNROLL": 1}],
                         ids=["default", "guarded", "block", "block-unroll1"])
def test_bad_and_ignored_labels_in_every_sparse_kernel(C, settings, monkeypatch):
    """The register and block-per-row SCCE kernels read a row's label and its
    logits together and check the label after (the loads in flight at once);
    the old order is kept at REG_LOADS_FIRST=False / UNROLL=1. Either way an
    ignored row gets loss 0 and a zero gradient, and bad labels (negative, C,
    beyond) raise naming the first bad row and its label."""
    from fastloss.backends.numba_cuda import crossentropy as G

    for k, v in settings.items():
        monkeypatch.setattr(G, k, v)
    y, x = _data("sparse", 13, C, np.float32, seed=C)
    ign = int(y[4])
    y[[4, 9]] = ign
    obj = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none", ignore_class=ign)
    ref_l, ref_g = obj.value_and_grad(y, x)
    with fastloss.use_backend("cuda"):
        lo, g = obj.value_and_grad(y, x)
        np.testing.assert_allclose(lo, ref_l, rtol=2e-5)
        np.testing.assert_allclose(g, ref_g, rtol=2e-5, atol=2e-7)
        assert lo[[4, 9]].tolist() == [0, 0] and not g[[4, 9]].any()
        for bad_rows, val in (([7, 11], -1), ([2], C), ([5, 12], C + 7)):
            yb = y.copy()
            yb[bad_rows] = val
            with pytest.raises(ValueError, match=rf"{val}.*\b{bad_rows[0]}\b|\b{bad_rows[0]}\b.*{val}"):
                L.SparseCategoricalCrossentropy(from_logits=True)(yb, x)


@needs_cuda
@pytest.mark.parametrize("C", [40, 100])
def test_nan_row_stays_in_its_row(C):
    x = np.zeros((3, C), np.float32)
    x[1, 7] = np.nan
    with fastloss.use_backend("cuda"):
        loss = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none")([0, 1, 2], x)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()


@needs_cuda
@pytest.mark.parametrize("C", [40, 100])
@pytest.mark.parametrize("kind", ["sparse", "dense"])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_register_kernels_match_the_two_pass_kernels(C, kind, dt, monkeypatch):
    """The register-resident SCCE / CCE kernels (warp mode at 40 classes, block
    mode at 100 in the shrunk launch) and the two-pass block kernels, each
    against the CPU backend, and rows with an infinite logit (NaN, as on the
    CPU and in Keras), through both (on a GPU the two-pass kernels at these
    sizes are the warp-shuffle ones; in the simulator, the block kernels)."""
    from fastloss.backends.numba_cuda import crossentropy as G

    y, x = _data(kind, 9, C, dt, seed=9)
    if kind == "sparse":
        obj = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none", ignore_class=int(y[5]))
    else:
        obj = L.CategoricalCrossentropy(from_logits=True, reduction="none", label_smoothing=0.1)
    cpu_l, cpu_g = obj.value_and_grad(y, x)  # the CPU backend on the finite data
    with fastloss.use_backend("cuda"):
        l1, g1 = obj.value_and_grad(y, x)
        monkeypatch.setattr(G, "REG_LOADS_FIRST", False)  # the loads guarded one by one, as they were
        l0, g0 = obj.value_and_grad(y, x)
        monkeypatch.setattr(G, "REG_LOADS_FIRST", True)
        monkeypatch.setattr(G, "REGS", False)
        l2, g2 = obj.value_and_grad(y, x)
        monkeypatch.setattr(G, "REGS", True)
    np.testing.assert_array_equal(l0, l1)  # the same numbers, bit for bit
    np.testing.assert_array_equal(g0, g1)
    with fastloss.use_backend("cuda"):
        x[2, 3] = np.inf
        x[4, :] = -np.inf
        l3, g3 = obj.value_and_grad(y, x)
        monkeypatch.setattr(G, "REGS", False)  # the two-pass kernels on the same rows
        l4, g4 = obj.value_and_grad(y, x)
        monkeypatch.setattr(G, "REGS", True)
    tol = 2e-5 if dt == np.float32 else 1e-10
    for l, g in ((l1, g1), (l2, g2)):  # each kernel against the CPU backend
        np.testing.assert_allclose(l, cpu_l, rtol=tol)
        np.testing.assert_allclose(g, cpu_g, rtol=tol, atol=tol * 1e-2)
    tol = 2e-6 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(l1, l2, rtol=tol)  # and the two kernels closer still to each other
    np.testing.assert_allclose(g1, g2, rtol=tol, atol=tol * 1e-2)
    ref_l, ref_g = obj.value_and_grad(y, x)
    assert np.isnan(ref_l[[2, 4]]).all()
    for l, g in ((l3, g3), (l4, g4)):
        np.testing.assert_allclose(l, ref_l, rtol=2e-5)  # NaN where the CPU has NaN
        np.testing.assert_allclose(g, ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
@pytest.mark.parametrize("C", [10, 40, 100, 300])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_masked_logits_minus_inf_as_on_the_cpu(C, dt, monkeypatch):
    """Logits masked with -inf (a common way to rule classes out) contribute
    exp(-inf) = 0, wherever they sit in a row: at its start, in a run, at its
    end, or before a thread's first finite logit; a masked label gives an
    infinite loss. Every SCCE kernel (staged / thread-per-row below 32 classes,
    register and two-pass kernels above, the block kernel at UNROLL 1, 4, 8)
    and the boosting kernel against the CPU backend. The online softmax once
    folded a -inf that came before any finite value as exp(-inf - -inf) = NaN."""
    from fastloss.backends.numba_cuda import crossentropy as G

    y, x = _data("sparse", 7, C, dt, seed=40 + C)
    x[0, 0] = -np.inf
    x[1, : C // 2] = -np.inf
    x[2, C // 3:] = -np.inf
    x[3, ::3] = -np.inf
    x[4, :] = -np.inf
    x[4, C - 1] = 0.5  # one finite logit, the last
    y[1] = 0  # a masked label: +inf
    for r in (2, 3, 4):
        y[r] = C - 1 if r == 4 else 1
    obj = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    ref_l, ref_g = obj.value_and_grad(y, x)
    ref_gh = obj.grad_hess(y, x)
    assert np.isinf(ref_l[1]) and np.isfinite(ref_l[[0, 2, 3, 4, 5, 6]]).all()
    tol = 2e-5 if dt == np.float32 else 1e-10
    got = {}
    with fastloss.use_backend("cuda"):
        got["default"] = obj.value_and_grad(y, x)
        monkeypatch.setattr(G, "STAGED", False)
        got["thread rows"] = obj.value_and_grad(y, x)
        monkeypatch.setattr(G, "REGS", False)
        for u in (1, 4, 8):
            monkeypatch.setattr(G, "UNROLL", u)
            got[f"two-pass, unroll {u}"] = obj.value_and_grad(y, x)
        gh = obj.grad_hess(y, x)
    for name, (lo, g) in got.items():
        np.testing.assert_allclose(lo, ref_l, rtol=tol, err_msg=name)
        fin = np.isfinite(ref_l)
        np.testing.assert_allclose(g[fin], ref_g[fin], rtol=tol, atol=tol * 1e-2, err_msg=name)
    for a, b in zip(gh, ref_gh):
        np.testing.assert_allclose(a[np.isfinite(ref_l)], b[np.isfinite(ref_l)], rtol=tol, atol=tol * 1e-2)


@needs_cuda
@pytest.mark.parametrize("C", [37, 150, 300])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_block_row_kernel_with_loads_in_flight_is_the_same(C, dt, monkeypatch):
    """The SCCE block-per-row kernel (beyond 4096 classes on a GPU; here, with
    the register kernels off) reads four or eight elements per thread before
    folding them (UNROLL=4, 8) in the order the plain loop (UNROLL=1) reads them: the same
    numbers bit for bit, and the CPU backend's; with a remainder after the
    unrolled part (37, 150 classes), an ignored row, a bad-label-free batch, a
    NaN row and an infinite logit."""
    from fastloss.backends.numba_cuda import crossentropy as G

    y, x = _data("sparse", 11, C, dt, seed=C)
    obj = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none", ignore_class=int(y[3]))
    cpu_l, cpu_g = obj.value_and_grad(y, x)
    x_bad = x.copy()
    x_bad[6, C // 2] = np.nan
    x_bad[8, 1] = np.inf
    ref_l, ref_g = obj.value_and_grad(y, x_bad)
    monkeypatch.setattr(G, "REGS", False)
    out = {}
    with fastloss.use_backend("cuda"):
        for u in (1, 4, 8):
            monkeypatch.setattr(G, "UNROLL", u)
            out[u] = obj.value_and_grad(y, x) + obj.value_and_grad(y, x_bad)
    for u in (4, 8):
        for a, b in zip(out[1], out[u]):
            np.testing.assert_array_equal(a, b)
    tol = 2e-5 if dt == np.float32 else 1e-10
    l4, g4, lb, gb = out[4]
    np.testing.assert_allclose(l4, cpu_l, rtol=tol)
    np.testing.assert_allclose(g4, cpu_g, rtol=tol, atol=tol * 1e-2)
    assert np.isnan(lb[6]) and np.isnan(ref_l[6]) and not np.isfinite(lb[8])
    np.testing.assert_allclose(lb, ref_l, rtol=tol)
    np.testing.assert_allclose(gb, ref_g, rtol=tol, atol=tol * 1e-2)
    assert l4[3] == 0 and not g4[3].any()  # the ignored row


@needs_cuda
@pytest.mark.parametrize("C", [37, 150, 300])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_dense_block_row_kernel_fused_matches_the_cpu(C, dt, smoothing, monkeypatch):
    """The dense (CCE) block-per-row kernel (beyond 4096 classes on a GPU; here
    with the register kernels off) with the target sums folded into its
    statistics pass (CCE_FUSED, at UNROLL 1, 4, 8) against the CPU backend and
    the three-pass kernel it replaces: soft targets, sample weights, and the
    non-finite rows as the CPU has them: masked (-inf) logits (+inf loss with
    label smoothing; NaN without, 0 * -inf; a masked target's class first or
    not), a row of -inf only, a NaN and a +inf logit."""
    from fastloss.backends.numba_cuda import crossentropy as G

    rng = np.random.default_rng(C)
    R = 12
    x = (rng.standard_normal((R, C)) * 3).astype(dt)
    y = np.eye(C, dtype=dt)[rng.integers(0, C, R)]
    y[1] = rng.dirichlet(np.ones(C))  # soft targets
    w = rng.uniform(0.5, 2.0, R).astype(dt)
    x_bad = x.copy()
    x_bad[3, :C // 2] = -np.inf  # before and after the row's first finite logit
    x_bad[4, ::5] = -np.inf
    x_bad[5, :] = -np.inf
    x_bad[6, 2] = np.nan
    x_bad[7, C - 1] = np.inf
    y[3] = np.eye(C, dtype=dt)[0]  # the target on a masked class
    obj = L.CategoricalCrossentropy(from_logits=True, reduction="none", label_smoothing=smoothing)
    ref = obj.value_and_grad(y, x, sample_weight=w)
    ref_bad = obj.value_and_grad(y, x_bad, sample_weight=w)
    assert np.isnan(ref_bad[0][[5, 6, 7]]).all()
    assert np.isinf(ref_bad[0][3]) if smoothing else np.isnan(ref_bad[0][[3, 4]]).all()
    monkeypatch.setattr(G, "REGS", False)
    got = {}
    with fastloss.use_backend("cuda"):
        monkeypatch.setattr(G, "CCE_FUSED", False)
        got["three-pass"] = obj.value_and_grad(y, x, sample_weight=w) + obj.value_and_grad(y, x_bad, sample_weight=w)
        monkeypatch.setattr(G, "CCE_FUSED", True)
        for u in (1, 4, 8):
            monkeypatch.setattr(G, "UNROLL", u)
            got[f"fused, unroll {u}"] = (obj.value_and_grad(y, x, sample_weight=w)
                                         + obj.value_and_grad(y, x_bad, sample_weight=w))
    tol = 2e-5 if dt == np.float32 else 1e-10
    for name, (lo, g, lb, gb) in got.items():
        np.testing.assert_allclose(lo, ref[0], rtol=tol, err_msg=name)
        np.testing.assert_allclose(g, ref[1], rtol=tol, atol=tol * 1e-2, err_msg=name)
        np.testing.assert_allclose(lb, ref_bad[0], rtol=tol, err_msg=name)  # NaN and inf where the CPU has them
        np.testing.assert_allclose(gb, ref_bad[1], rtol=tol, atol=tol * 1e-2, err_msg=name)


@needs_cuda
def test_long_row_launch_settings(monkeypatch):
    """Beyond 4096 classes the block kernels run 512 threads per block and as
    many blocks per multiprocessor as keep the rows in flight within
    ROWS_L2_SHARE of L2 (H100 figures: 132 multiprocessors, 50 MiB of L2; a
    32000-class float32 row is 128000 bytes, 132 of them 16.9 MB). ROWS_TPB
    1024 (a variant gpu_check times) applies to the float32 SCCE kernel at
    UNROLL <= 8 only (the others may need more than 64 registers per thread)."""
    from fastloss.backends.numba_cuda import crossentropy as G

    seen = []
    monkeypatch.setattr(G, "launch", lambda kern, grid, block, stream, *args: seen.append((kern, grid, block)))
    monkeypatch.setattr(G, "_device_limits", lambda: (132, 50 << 20))
    monkeypatch.setattr(G, "TPB", 256)  # as launched on a GPU (the shrunk-launch runs shrink these)
    monkeypatch.setattr(G, "MAX_BLOCKS", 1 << 18)

    def settings(cols=32000, itemsize=4, sparse=True, rows=8192):
        seen.clear()
        G._launch_rows("rows", "small", rows, cols, itemsize, (), sparse=sparse)
        return seen[0][1:]

    assert settings() == (132, 512)  # 2 rows per SM would be 33.8 MB, over half of L2 (26.2 MB)
    assert settings(itemsize=8) == (132, 512)
    assert settings(cols=4000) == (8192, 256)  # short of 4096: a 256-thread block per row
    assert settings(cols=8000) == (132 * 4, 512)  # 2048 threads per SM at most
    assert settings(rows=100) == (100, 512)
    monkeypatch.setattr(G, "ROWS_L2_SHARE", 1.0)
    assert settings() == (132 * 3, 512)  # 3 rows per SM: 50.7 MB <= 52.4 MB
    monkeypatch.setattr(G, "ROWS_L2_SHARE", 0.5)
    monkeypatch.setattr(G, "ROWS_TPB", 1024)
    assert settings() == (132, 1024)
    assert settings(itemsize=8) == (132, 512)
    assert settings(sparse=False) == (132, 512)
    monkeypatch.setattr(G, "UNROLL", 8)
    assert settings() == (132, 1024)
    monkeypatch.setattr(G, "UNROLL", 16)
    assert settings() == (132, 512)
    assert settings(cols=10) == (64, 128)  # short rows: the staged kernel, STAGED_TPB rows per block
    assert settings(cols=10, sparse=False) == (128, 64)  # the dense one stages targets too: 64 rows


@needs_cuda
def test_long_row_in_shared_memory_launch_settings(monkeypatch):
    """ROWS_SMEM (SCCE only): a block per row, the row's bytes of dynamic
    shared memory, 1024 threads in float32 at UNROLL <= 8 (one block per
    multiprocessor fits a 32000-class row), else 512; rows beyond the opt-in
    shared memory (H100: 227 KB, less the kernel's 2 x 1024 elements) and the
    dense kernel keep the L2 kernel."""
    from fastloss.backends.numba_cuda import crossentropy as G

    seen = []
    monkeypatch.setattr(G, "launch", lambda kern, grid, block, stream, *args, shmem=0: seen.append((kern, grid, block, shmem)))
    monkeypatch.setattr(G, "_device_limits", lambda: (132, 50 << 20))
    monkeypatch.setattr(G, "_shared_optin", lambda: 227 << 10)
    monkeypatch.setattr(G, "TPB", 256)
    monkeypatch.setattr(G, "MAX_BLOCKS", 1 << 18)
    monkeypatch.setattr(G, "ROWS_SMEM", True)

    def settings(cols=32000, itemsize=4, sparse=True, rows=8192):
        seen.clear()
        G._launch_rows("rows", "small", rows, cols, itemsize, (), sparse=sparse, smem_kernel="smem" if sparse else None)
        return seen[0]

    assert settings() == ("smem", 8192, 1024, 128000)
    assert settings(cols=56064) == ("smem", 8192, 1024, 224256)  # 224256 + 8192 = 232448 bytes: the most
    assert settings(cols=56065)[:3] == ("rows", 132, 512)
    assert settings(itemsize=8, cols=27008) == ("smem", 8192, 512, 216064)
    assert settings(itemsize=8)[:3] == ("rows", 132, 512)
    assert settings(sparse=False)[:3] == ("rows", 132, 512)
    assert settings(rows=100) == ("smem", 100, 1024, 128000)
    monkeypatch.setattr(G, "UNROLL", 16)
    assert settings() == ("smem", 8192, 512, 128000)
    assert settings(cols=10)[:3] == ("small", 64, 128)
    monkeypatch.setattr(G, "ROWS_SMEM", False)
    assert settings()[:3] == ("rows", 132, 512)


@needs_cuda
@pytest.mark.parametrize("C", [37, 150, 300, pytest.param(20000, marks=pytest.mark.skipif(
    SIM_CHILD or not ON_DEVICE, reason="a GPU: beyond 4096 classes, 78 KB of dynamic shared memory (float32) past the default 48 KB"))])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_long_row_kept_in_shared_memory_is_the_same(C, dt, monkeypatch):
    """The SCCE block-per-row kernel that keeps its row in dynamic shared
    memory between the passes (ROWS_SMEM; beyond 4096 classes on a GPU, here
    with the register kernels off) gives the L2 kernel's numbers bit for bit
    at UNROLL 1, 4, 8, and the CPU's: ignored row, NaN row, infinite and
    masked (-inf) logits, a row of -inf only, sample weights; a bad label
    raises as there."""
    from fastloss.backends.numba_cuda import crossentropy as G

    y, x = _data("sparse", 13, C, dt, seed=C + 1)
    w = np.linspace(0.5, 2.0, 13)
    obj = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none", ignore_class=int(y[3]))
    x[6, C // 2] = np.nan
    x[8, 1] = np.inf
    x[9, :C // 2] = -np.inf
    x[9, C - 1] = 1.0
    x[10, :] = -np.inf
    y[11] = 0 if y[3] != 0 else 1
    x[11, y[11]] = -np.inf  # the label on a masked class: +inf
    ref_l, ref_g = obj.value_and_grad(y, x, sample_weight=w)
    assert np.isnan(ref_l[[6, 10]]).all() and ref_l[11] == np.inf
    monkeypatch.setattr(G, "REGS", False)
    out = {}
    with fastloss.use_backend("cuda"):
        for smem in (False, True):
            monkeypatch.setattr(G, "ROWS_SMEM", smem)
            for u in (1, 4, 8):
                monkeypatch.setattr(G, "UNROLL", u)
                out[smem, u] = obj.value_and_grad(y, x, sample_weight=w)
        bad = y.copy()
        bad[5] = C
        with pytest.raises(ValueError, match=str(C)):
            obj.value_and_grad(bad, x)
    tol = 2e-5 if dt == np.float32 else 1e-10
    for u in (1, 4, 8):
        for a, b in zip(out[False, u], out[True, u]):
            np.testing.assert_array_equal(a, b, err_msg=f"unroll {u}")
    l4, g4 = out[True, 4]
    np.testing.assert_allclose(l4, ref_l, rtol=tol)
    fin = np.isfinite(ref_l)
    np.testing.assert_allclose(g4[fin], ref_g[fin], rtol=tol, atol=tol * 1e-2)
    assert l4[3] == 0 and not g4[3].any()  # the ignored row


@needs_cuda
@pytest.mark.parametrize("C", [1, 5, 10, 16, 31])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_short_row_kernel_staged_through_shared_memory_is_the_same(C, dt, monkeypatch):
    """SCCE from logits below 32 classes: the kernel that stages a block's rows
    through shared memory (STAGED) gives the thread-per-row kernel's numbers
    bit for bit, and the CPU backend's; over several blocks, a partial last
    block and grid-stride loops (the shrunk launch), an ignored row, a bad
    label (raises, with its row), loss only (no gradient), NaN and +inf."""
    from fastloss.backends.numba_cuda import crossentropy as G

    R = 37
    y, x = _data("sparse", R, C, dt, seed=30 + C)
    ign = int(y[4])
    obj = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none", ignore_class=ign)
    x_bad = x.copy()
    x_bad[9, 0] = np.nan
    x_bad[20, C - 1] = np.inf
    out = {}
    with fastloss.use_backend("cuda"):
        for staged in (False, True):
            monkeypatch.setattr(G, "STAGED", staged)
            out[staged] = (obj.value_and_grad(y, x) + obj.value_and_grad(y, x_bad)
                           + (L.SparseCategoricalCrossentropy(from_logits=True)(y, x),))
            bad = y.copy()
            bad[[13, 30]] = C + 2 if C + 2 != ign else C + 3
            with pytest.raises(ValueError, match="13"):
                L.SparseCategoricalCrossentropy(from_logits=True).value_and_grad(bad, x)
    for a, b in zip(out[False], out[True]):
        np.testing.assert_array_equal(a, b)
    cpu_l, cpu_g = obj.value_and_grad(y, x)
    ref_l, ref_g = obj.value_and_grad(y, x_bad)
    tol = 2e-5 if dt == np.float32 else 1e-10
    l, g, lb, gb, mean = out[True]
    np.testing.assert_allclose(l, cpu_l, rtol=tol, atol=tol * 1e-2)
    np.testing.assert_allclose(g, cpu_g, rtol=tol, atol=tol * 1e-2)
    np.testing.assert_allclose(lb, ref_l, rtol=tol, atol=tol * 1e-2)
    np.testing.assert_allclose(gb, ref_g, rtol=tol, atol=tol * 1e-2)
    np.testing.assert_allclose(mean, L.SparseCategoricalCrossentropy(from_logits=True)(y, x), rtol=tol)
    assert l[4] == 0 and not g[4].any()


@needs_cuda
@pytest.mark.parametrize("C", [1, 5, 10, 16, 31])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_short_dense_rows_staged_match_the_cpu_and_the_block_kernel(C, dt, monkeypatch):
    """CCE from logits below 32 classes: a thread per row over a block's
    staged logits (STAGED), against the CPU backend and the block-per-row
    kernel it replaces (STAGED False); label smoothing, per-row weights, soft
    targets, loss only, NaN / +inf / all -inf rows; several blocks and the
    grid-stride loop of the shrunk launch."""
    from fastloss.backends.numba_cuda import crossentropy as G

    R = 37
    rng = np.random.default_rng(50 + C)
    x = (rng.standard_normal((R, C)) * 3).astype(dt)
    y = rng.uniform(0, 1, (R, C)).astype(dt)
    w = np.linspace(0.5, 2.0, R)
    obj = L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction="none")
    x_bad = x.copy()
    x_bad[9, 0] = np.nan
    x_bad[20, C - 1] = np.inf
    x_bad[30, :] = -np.inf
    out = {}
    with fastloss.use_backend("cuda"):
        for staged in (False, True):
            monkeypatch.setattr(G, "STAGED", staged)
            out[staged] = (obj.value_and_grad(y, x, sample_weight=w) + obj.value_and_grad(y, x_bad)
                           + (L.CategoricalCrossentropy(from_logits=True)(y, x),))
    ref = obj.value_and_grad(y, x, sample_weight=w) + obj.value_and_grad(y, x_bad) + (
        L.CategoricalCrossentropy(from_logits=True)(y, x),)
    tol = 2e-5 if dt == np.float32 else 1e-10
    for staged in (True, False):
        for got, want in zip(out[staged], ref):
            np.testing.assert_allclose(got, want, rtol=tol, atol=tol * 1e-2)
    assert np.isnan(out[True][2][[9, 20, 30]]).all()


@needs_cuda
def test_unsupported_loss_on_cuda_says_which_exist():
    @fastloss.custom_loss
    def cubed(y_true, y_pred):
        return (y_pred - y_true) ** 3

    with fastloss.use_backend("cuda"), pytest.raises(ValueError, match="no kernel on backend 'cuda'"):
        cubed()(np.zeros((2, 2)), np.full((2, 2), 0.5))
    from numba import cuda

    with pytest.raises(ValueError, match="huber"):
        cubed()(cuda.to_device(np.zeros((2, 2))), cuda.to_device(np.full((2, 2), 0.5)))


# ---- elementwise losses (numba_cuda/elementwise.py) --------------------------
# (factory, data): "binary" labels in {0, 1} with probabilities (edges 0, 1 and
# eps included: the clipping branches) or logits; "dist" distributions (KLD);
# "count" Poisson targets; "real" regression data; "pm1" labels in {-1, 1}.
ELEMENTWISE = [
    (lambda: L.BinaryCrossentropy(), "binary"),
    (lambda: L.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), "logits"),
    (lambda: L.BinaryFocalCrossentropy(), "binary"),
    (lambda: L.BinaryFocalCrossentropy(from_logits=True, apply_class_balancing=True, gamma=0.5), "logits"),
    (lambda: L.BinaryFocalCrossentropy(label_smoothing=0.2, gamma=3.0), "binary"),
    (lambda: L.SigmoidFocalCrossEntropy(reduction="sum_over_batch_size"), "binary"),
    (lambda: L.SigmoidFocalCrossEntropy(from_logits=True, gamma=1.5, alpha=None), "logits"),
    (lambda: L.KLDivergence(), "dist"),
    (lambda: L.Poisson(), "count"),
    (lambda: L.MeanSquaredError(), "real"),
    (lambda: L.MeanAbsoluteError(), "real"),
    (lambda: L.MeanAbsolutePercentageError(), "real"),
    (lambda: L.MeanSquaredLogarithmicError(), "real"),
    (lambda: L.Huber(delta=0.5), "real"),
    (lambda: L.LogCosh(), "real"),
    (lambda: L.Hinge(), "binary"),
    (lambda: L.Hinge(reduction="sum"), "pm1"),
    (lambda: L.SquaredHinge(), "binary"),
]


def _ew_data(kind, R, K, dt, seed=0):
    rng = np.random.default_rng(seed)
    if kind in ("binary", "logits"):
        y = rng.integers(0, 2, (R, K)).astype(dt)
        if kind == "logits":
            x = rng.standard_normal((R, K)) * 4
        else:
            x = rng.uniform(0, 1, (R, K))
            x.flat[:4] = [0.0, 1.0, 1e-9, 1 - 1e-9][: x.size]
    elif kind == "dist":
        y = rng.dirichlet(np.ones(K), R).astype(dt)
        x = rng.dirichlet(np.ones(K), R)
    elif kind == "count":
        y = rng.poisson(2.0, (R, K)).astype(dt)
        x = rng.uniform(0.1, 4, (R, K))
    elif kind == "pm1":
        y = (rng.integers(0, 2, (R, K)) * 2 - 1).astype(dt)
        x = rng.standard_normal((R, K))
    else:
        y = rng.standard_normal((R, K)).astype(dt)
        x = rng.standard_normal((R, K)) * 2
        x.flat[0] = y.flat[0]  # e == 0: the kinks' gradient choice
    return y, x.astype(dt)


@needs_cuda
@pytest.mark.parametrize("make, kind", ELEMENTWISE)
@pytest.mark.parametrize("K", [1, 5, 40])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_elementwise_numpy_inputs_under_cuda_match_cpu(make, kind, K, dt):
    y, x = _ew_data(kind, 11, K, dt)
    _cuda_matches_cpu(make(), y, x, np.linspace(0.5, 2.0, 11), dt, l_atol=1e-3)


@needs_cuda
@pytest.mark.parametrize("make, kind", ELEMENTWISE[::3])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "none", "mean_with_sample_weight"])
def test_elementwise_device_inputs_match_cpu(make, kind, reduction):
    from numba import cuda

    y, x = _ew_data(kind, 9, 33, np.float32, seed=1)
    w = np.linspace(0.5, 2.0, 9).astype(np.float32)
    obj = make()
    obj.reduction = reduction
    ref_l, ref_g = obj.value_and_grad(y, x, sample_weight=w)
    l, g = obj.value_and_grad(cuda.to_device(y), cuda.to_device(x), sample_weight=w)
    to_host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
    np.testing.assert_allclose(to_host(l) if reduction == "none" else l, ref_l, rtol=2e-5)
    np.testing.assert_allclose(to_host(g), ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
def test_host_y_true_broadcasts_to_device_y_pred():
    """A host y_true of a shape that broadcasts to the device y_pred's (a
    target row, a scalar) gives the CPU values of the tiled target; losses
    that do not broadcast (cross-entropy) and a y_pred smaller than the
    broadcast shape are refused."""
    from numba import cuda

    rng = np.random.default_rng(4)
    x = rng.uniform(0.1, 0.9, (6, 5))
    for yt in (rng.uniform(0.1, 0.9, (1, 5)), np.float64(0.3)):
        for obj in (L.MeanSquaredError(), L.Huber(reduction="none"), L.CategoricalFocalCrossentropy(reduction="sum")):
            if isinstance(obj, L.CategoricalFocalCrossentropy) and np.ndim(yt) == 0:
                with pytest.raises(ValueError, match="must not broadcast along the class axis"):
                    obj.value_and_grad(yt, cuda.to_device(x))
                continue
            l, g = obj.value_and_grad(yt, cuda.to_device(x))
            rl, rg = obj.value_and_grad(np.broadcast_to(yt, x.shape).copy(), x)
            to_host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
            np.testing.assert_allclose(to_host(l), rl, rtol=1e-12)
            np.testing.assert_allclose(to_host(g), rg, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="same shape for binary_crossentropy"):
        L.BinaryCrossentropy()(x[:1], cuda.to_device(x))
    with pytest.raises(ValueError, match=r"device `y_pred` must have the broadcast shape \(6, 5\)"):
        L.MeanSquaredError()(x, cuda.to_device(x[:1]))


@needs_cuda
@pytest.mark.parametrize("K", [1, 40])
def test_elementwise_nan_stays_in_its_row(K):
    y = np.zeros((3, K), np.float32)
    x = np.full((3, K), 0.5, np.float32)
    x[1, 0] = np.nan
    with fastloss.use_backend("cuda"):
        loss, g = L.Huber(reduction="none").value_and_grad(y, x)
        total = L.MeanSquaredError()(y, x)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()
    assert np.isnan(g[1, 0]) and np.isfinite(np.delete(g.ravel(), K)).all()
    assert np.isnan(total)


@needs_cuda
def test_elementwise_hinge_label_map_is_batch_wide():
    """One label outside {0, 1} anywhere turns Keras' 2y - 1 map off for the
    whole batch, also when it sits in a row another block handles."""
    y = np.zeros((7, 3), np.float32)
    y[::2] = 1.0
    x = np.linspace(-2, 2, 21, dtype=np.float32).reshape(7, 3)
    for yy in (y, np.where(np.arange(21).reshape(7, 3) == 20, 0.5, y).astype(np.float32)):
        ref = L.Hinge(reduction="none")(yy, x)
        with fastloss.use_backend("cuda"):
            got = L.Hinge(reduction="none")(yy, x)
        np.testing.assert_allclose(got, ref, rtol=1e-6)



# ---- row losses (numba_cuda/rows.py) -------------------------------------------
ROWS = [
    (lambda: L.CategoricalCrossentropy(), "dist"),
    (lambda: L.CategoricalCrossentropy(label_smoothing=0.1, reduction="sum"), "onehot"),
    (lambda: L.SparseCategoricalCrossentropy(), "sparse"),
    (lambda: L.SparseCategoricalCrossentropy(ignore_class=1, reduction="sum_over_batch_size"), "sparse"),
    (lambda: L.CategoricalFocalCrossentropy(), "onehot"),
    (lambda: L.CategoricalFocalCrossentropy(from_logits=True, gamma=0.5, label_smoothing=0.1), "onehot_logits"),
    (lambda: L.CosineSimilarity(), "real"),
    (lambda: L.CategoricalHinge(), "onehot"),
]


def _row_data(kind, R, K, dt, seed=0):
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, K, R)
    if kind == "real":
        y = rng.standard_normal((R, K))
        x = rng.standard_normal((R, K))
        x[0] = 0.0  # a zero vector: the 1/eps branch
        return y.astype(dt), x.astype(dt)
    if kind == "onehot_logits":
        return np.eye(K, dtype=dt)[lab], (rng.standard_normal((R, K)) * 3).astype(dt)
    x = rng.dirichlet(np.ones(K), R)
    x[0, 0] = 0.0  # a clipped element
    if K > 2:
        x[1, :2] = x[1, :2].max()  # a tie for categorical hinge's max
    if kind == "sparse":
        return lab, x.astype(dt)
    y = np.eye(K)[lab] if kind == "onehot" else rng.dirichlet(np.ones(K), R)
    return y.astype(dt), x.astype(dt)


@needs_cuda
@pytest.mark.parametrize("make, kind", ROWS)
@pytest.mark.parametrize("K", [3, 40])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_row_losses_under_cuda_match_cpu(make, kind, K, dt):
    y, x = _row_data(kind, 9, K, dt)
    _cuda_matches_cpu(make(), y, x, np.linspace(0.5, 2.0, 9), dt, l_atol=1e-3)


@needs_cuda
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_categorical_hinge_infinite_scores_as_on_the_cpu(dt):
    """Terms whose factor is 0 are 0 on the GPU too (no 0 * inf NaN): a true
    class at -inf gives +inf, a wrong one at -inf drops out of the max; NaN
    inputs of either sign stay NaN (tests/test_regression.py checks the CPU
    against the limits)."""
    inf, nan = np.inf, np.nan
    rows = [[0.5, -inf, 0.2], [-inf, 2.0, 0.5], [-inf, 0.7, 0.9], [inf, 1.0, 0.0], [0.3, inf, 1.0],
            [nan, 0.5, 0.2], [-nan, 0.5, 0.2], [0.5, nan, 0.2], [0.5, -nan, 0.2], [0.5, 0.25, 0.125]]
    x = np.array(rows, dt)
    y = np.zeros_like(x)
    y[:, 1] = 1.0
    obj = L.CategoricalHinge(reduction=None)
    ref_l, ref_g = obj.value_and_grad(y, x)
    assert np.isinf(ref_l[[0, 3]]).all() and np.isnan(ref_l[5:9]).all() and np.isfinite(ref_l[[1, 2, 4, 9]]).all()
    with fastloss.use_backend("cuda"):
        got_l, got_g = obj.value_and_grad(y, x)
    np.testing.assert_allclose(got_l, ref_l, rtol=1e-6)
    np.testing.assert_allclose(got_g[:5], ref_g[:5], rtol=1e-6)
    np.testing.assert_allclose(got_g[9], ref_g[9], rtol=1e-6)


@needs_cuda
@pytest.mark.parametrize("make, kind", ROWS[::2])
def test_row_losses_device_inputs_match_cpu(make, kind):
    from numba import cuda

    y, x = _row_data(kind, 7, 33, np.float32, seed=2)
    obj = make()
    obj.reduction = "none"
    ref_l, ref_g = obj.value_and_grad(y, x)
    l, g = obj.value_and_grad(cuda.to_device(y), cuda.to_device(x))
    np.testing.assert_allclose(l.copy_to_host(), ref_l, rtol=2e-5, atol=1e-8)
    np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("K", [3, 40])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_categorical_focal_per_class_alpha_under_cuda_matches_cpu(logits, K, dt):
    """alpha per class reaches the device kernel (NumPy inputs under the cuda
    backend, then device inputs); one-number alpha afterwards on the same
    stream still reads the scalar."""
    from numba import cuda

    y, x = _row_data("onehot_logits" if logits else "onehot", 9, K, dt, seed=3)
    alpha = np.linspace(0.1, 3.0, K)
    obj = L.CategoricalFocalCrossentropy(alpha=alpha, from_logits=logits, label_smoothing=0.05, gamma=1.5)
    _cuda_matches_cpu(obj, y, x, np.linspace(0.5, 2.0, 9), dt, l_atol=1e-3)
    obj.reduction = "none"
    ref_l, ref_g = obj.value_and_grad(y, x)
    l, g = obj.value_and_grad(cuda.to_device(y), cuda.to_device(x))
    tol = 2e-5 if dt == np.float32 else 1e-10
    np.testing.assert_allclose(l.copy_to_host(), ref_l, rtol=tol, atol=tol * 1e-3)
    np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=tol, atol=tol * 1e-2)
    _cuda_matches_cpu(L.CategoricalFocalCrossentropy(alpha=0.7, from_logits=logits), y, x, None, dt, l_atol=1e-3)


@needs_cuda
def test_scce_probs_bad_label_raises_on_cuda():
    with fastloss.use_backend("cuda"), pytest.raises(ValueError, match="label"):
        L.SparseCategoricalCrossentropy()(np.array([0, 5, 1]), np.full((3, 3), 1 / 3))



# ---- box losses (numba_cuda/boxes.py) ------------------------------------------
BOXES = [
    lambda: L.GIoULoss(),
    lambda: L.GIoULoss(mode="iou", reduction="sum"),
    lambda: L.DIoULoss(box_format="xyxy"),
    lambda: L.CIoULoss(box_format="cxcywh", reduction="none"),
    lambda: L.CIoULoss(box_format="xywh"),
]


def _box_data(R, dt, seed=0):
    """Random boxes plus the degenerate ones: identical, zero-area, inverted,
    far apart, touching."""
    rng = np.random.default_rng(seed)
    lo = rng.uniform(0, 10, (R, 2))
    t = np.concatenate([lo, lo + rng.uniform(0.1, 5, (R, 2))], axis=1)
    p = t + rng.normal(0, 1.5, (R, 4))
    p[0] = t[0]  # identical
    p[1, 2:] = p[1, :2]  # zero area
    t[2] = p[2] = [1, 1, 1, 1]  # two identical zero-area boxes
    p[3] = [5, 5, 2, 2]  # inverted corners
    p[4] = t[4] + 100  # far apart
    return t.astype(dt), p.astype(dt)


@needs_cuda
@pytest.mark.parametrize("make", BOXES)
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("bcast", ["none", "true", "pred"])
def test_box_losses_under_cuda_match_cpu(make, dt, bcast):
    t, p = _box_data(13, dt)
    if bcast == "true":
        t = t[5]
    elif bcast == "pred":
        p = p[5:6]
    g = _cuda_matches_cpu(make(), t, p, np.linspace(0.5, 2.0, 13), dt, l_atol=1e-2, g_atol=1e-1)
    assert np.isfinite(g).all()


@needs_cuda
@pytest.mark.parametrize("make", BOXES[::2])
@pytest.mark.parametrize("bcast", ["none", "true", "pred"])
def test_box_losses_device_inputs_match_cpu(make, bcast):
    from numba import cuda

    t, p = _box_data(11, np.float32, seed=3)
    if bcast == "true":
        t = t[4:5]
    elif bcast == "pred":
        p = p[4]
    obj = make()
    ref_l, ref_g = obj.value_and_grad(t, p)
    l, g = obj.value_and_grad(cuda.to_device(t), cuda.to_device(p))
    to_host = lambda a: a.copy_to_host() if hasattr(a, "copy_to_host") else np.asarray(a)
    np.testing.assert_allclose(to_host(l), ref_l, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(to_host(g), ref_g, rtol=2e-5, atol=1e-6)


@needs_cuda
def test_box_nan_stays_in_its_row_on_cuda():
    t, p = _box_data(6, np.float32)
    p[2, 1] = np.nan
    with fastloss.use_backend("cuda"):
        l, g = L.GIoULoss(reduction="none").value_and_grad(t, p)
    assert np.isnan(l[2]) and np.isfinite(np.delete(l, 2)).all()
    assert np.isfinite(np.delete(g, 2, axis=0)).all()


@needs_cuda
def test_box_device_errors():
    from numba import cuda

    with pytest.raises(ValueError, match="4 coordinates"):
        L.GIoULoss()(cuda.to_device(np.zeros((3, 4), np.float32)), cuda.to_device(np.zeros((3, 5), np.float32)))
    with pytest.raises(ValueError, match="single box"):
        L.GIoULoss()(cuda.to_device(np.zeros((3, 4), np.float32)), cuda.to_device(np.zeros((2, 4), np.float32)))



# ---- triplet losses (numba_cuda/triplet.py) ------------------------------------
def _triplet_data(N, D, dt, seed=0, classes=3):
    """Embeddings with a duplicate pair (the near-duplicate recompute) and a
    label held once (an anchor without positives)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    x[3] = x[2]
    lab = rng.integers(0, classes, N)
    lab[-1] = 99
    return lab, x.astype(dt)


def _precomputed(x):
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    return d.astype(x.dtype)


TRIPLETS = [L.TripletSemiHardLoss, L.TripletHardLoss, L.TripletBatchAllLoss]


@needs_cuda
@pytest.mark.parametrize("cls", TRIPLETS)
@pytest.mark.parametrize("metric, soft, dt", [
    ("L2", False, np.float32),
    ("squared-L2", True, np.float32),
    ("angular", False, np.float32),
    ("angular", True, np.float64),
    ("precomputed", True, np.float64),
])
def test_triplet_under_cuda_match_cpu(cls, metric, soft, dt):
    lab, x = _triplet_data(11, 5, dt)
    y = _precomputed(x) if metric == "precomputed" else x
    obj = cls(distance_metric=metric, soft=soft, margin=0.7)
    ref_l, ref_g = obj.value_and_grad(lab, y)
    with fastloss.use_backend("cuda"):
        l, g = obj.value_and_grad(lab, y)
    tol = 2e-5 if dt == np.float32 else 1e-10
    np.testing.assert_allclose(l, ref_l, rtol=tol)
    np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol * 1e-2)
    assert type(g) is np.ndarray and g.dtype == dt and g.shape == y.shape


@needs_cuda
@pytest.mark.parametrize("N, D", [(13, 7), (4, 1), (1, 3)])
def test_triplet_gram_is_exact_symmetric_product(N, D):
    from numba import cuda

    from fastloss.backends.numba_cuda import triplet as T

    x = np.random.default_rng(N).standard_normal((N, D)).astype(np.float32)
    M = cuda.device_array((N, N), np.float32)
    T._launch_gram(cuda.to_device(x), M, 0)
    m = M.copy_to_host()
    np.testing.assert_array_equal(m, m.T)
    np.testing.assert_allclose(m, x.astype(np.float64) @ x.T.astype(np.float64), rtol=1e-5, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("metric", ["L2", "squared-L2", "angular"])
def test_fused_batch_hard_matches_the_gram_matrix_path(metric, monkeypatch):
    """float32 batch-hard mines inside the Gram kernel (no N x N matrix): the
    same selections, losses and gradients as the Gram-matrix path."""
    from fastloss.backends.numba_cuda import triplet as T

    lab, x = _triplet_data(13, 4, np.float32, seed=8, classes=4)
    if metric != "angular":  # (angular: 1 - cos of a near pair sits on the clip's edge, either side valid)
        x[7] = x[6] * 1.0000001  # a near pair (recomputed)
    lab[0] = 77  # a row without positives (the fallback in _hard_finish)
    obj = L.TripletHardLoss(distance_metric=metric)
    with fastloss.use_backend("cuda"):
        l1, g1 = obj.value_and_grad(lab, x)
        monkeypatch.setattr(T, "FUSED_HARD", False)
        l2, g2 = obj.value_and_grad(lab, x)
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-7)
    ref_l, ref_g = obj.value_and_grad(lab, x)
    np.testing.assert_allclose(l1, ref_l, rtol=2e-5)
    np.testing.assert_allclose(g1, ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
@pytest.mark.parametrize("cls", TRIPLETS)
@pytest.mark.parametrize("labels", ["one_class", "all_distinct"])
def test_triplet_fallbacks_on_cuda(cls, labels):
    """No negative anywhere / no positive anywhere: TF Addons' masked
    min/max fallbacks, as on the CPU."""
    _, x = _triplet_data(7, 3, np.float32, seed=4)
    lab = np.zeros(7, np.int64) if labels == "one_class" else np.arange(7)
    ref_l, ref_g = cls().value_and_grad(lab, x)
    with fastloss.use_backend("cuda"):
        l, g = cls().value_and_grad(lab, x)
    np.testing.assert_allclose(l, ref_l, rtol=2e-5)
    np.testing.assert_allclose(g, ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
@pytest.mark.parametrize("cls", [L.TripletSemiHardLoss, L.TripletHardLoss])
def test_triplet_device_inputs_stay_on_device(cls):
    from numba import cuda

    lab, x = _triplet_data(9, 4, np.float32, seed=2)
    w = np.float32(0.5)
    ref_l, ref_g = cls(reduction="sum").value_and_grad(lab, x, sample_weight=w)
    d_x = cuda.to_device(x)
    d_lab = cuda.to_device(lab.reshape(-1, 1).astype(np.int32))
    before = x.copy()
    out = cuda.device_array_like(x)
    l, g = cls(reduction="sum").value_and_grad(d_lab, d_x, sample_weight=w, grad_out=out)
    assert g is out and not isinstance(g, np.ndarray)
    np.testing.assert_allclose(l, ref_l, rtol=2e-5)
    np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=2e-5, atol=1e-7)
    np.testing.assert_array_equal(d_x.copy_to_host(), before)  # the input is not modified
    l2 = cls()(d_lab, d_x)  # loss only
    np.testing.assert_allclose(l2, cls()(lab, x), rtol=2e-5)


@needs_cuda
def test_triplet_nan_on_cuda():
    lab, x = _triplet_data(6, 3, np.float32, seed=5)
    x[4, 1] = np.nan
    with fastloss.use_backend("cuda"):
        for cls in TRIPLETS:
            l, g = cls().value_and_grad(lab, x)
            assert np.isnan(l) and np.isnan(g).all()


@needs_cuda
def test_triplet_cuda_errors():
    from numba import cuda

    lab, x = _triplet_data(6, 3, np.float32)
    with fastloss.use_backend("cuda"), pytest.raises(ValueError, match="CPU backends only"):
        L.TripletHardLoss(distance_metric=lambda e: (_precomputed(e), None))(lab, x)
    with pytest.raises(TypeError, match="integer"):
        L.TripletHardLoss()(cuda.to_device(lab.astype(np.float32)), cuda.to_device(x))
    with pytest.raises(ValueError, match="one integer label per embedding"):
        L.TripletHardLoss()(cuda.to_device(lab[:5]), cuda.to_device(x))
    with pytest.raises(ValueError, match="2-D embeddings"):
        L.TripletHardLoss()(cuda.to_device(lab), cuda.to_device(x.ravel()))
    with pytest.raises(TypeError, match="grad_out"):  # a host buffer for device inputs
        L.TripletHardLoss().value_and_grad(cuda.to_device(lab), cuda.to_device(x), grad_out=np.empty_like(x))
    with fastloss.use_backend("cuda"), pytest.raises(TypeError, match="grad_out"):
        L.TripletHardLoss().value_and_grad(lab, x, grad_out=cuda.device_array_like(x))


@needs_cuda
def test_triplet_on_a_stream_matches():
    """Under ``fastloss.cuda_stream`` the kernels and copies run on that stream."""
    from numba import cuda

    lab, x = _triplet_data(8, 3, np.float32, seed=6)
    ref_l, ref_g = L.TripletHardLoss().value_and_grad(lab, x)
    s = cuda.stream()
    with fastloss.cuda_stream(s):
        l, g = L.TripletHardLoss().value_and_grad(cuda.to_device(lab), cuda.to_device(x))
        s.synchronize()
    np.testing.assert_allclose(l, ref_l, rtol=2e-5)
    np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
def test_row_and_elementwise_losses_on_a_stream_match():
    from numba import cuda

    y, x = _data("sparse", 9, 40, np.float32, seed=3)
    obj = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    ref_l, ref_g = obj.value_and_grad(y, x)
    s = cuda.stream()
    with fastloss.cuda_stream(s):
        l, g = obj.value_and_grad(cuda.to_device(y), cuda.to_device(x))
        with fastloss.use_backend("cuda"):
            hl, hg = L.Huber().value_and_grad(x, x * 0.5)
        s.synchronize()
    np.testing.assert_allclose(l.copy_to_host(), ref_l, rtol=2e-5)
    np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=2e-5, atol=1e-7)
    rl, rg = L.Huber().value_and_grad(x, x * 0.5)
    np.testing.assert_allclose(hl, rl, rtol=2e-5)
    np.testing.assert_allclose(hg, rg, rtol=2e-5, atol=1e-7)


@needs_cuda
@pytest.mark.parametrize("make, kind", CASES)
@pytest.mark.parametrize("C", [12, 40, 100])
def test_device_inputs_with_sample_weights_match_cpu(make, kind, C):
    """The cross-entropy kernels' weighted total is summed on the device (by
    the register kernels themselves at 40 and 100 classes, by a reduction
    kernel at 12)."""
    from numba import cuda

    y, x = _data(kind, 30, C, np.float32, seed=7)  # rows over several reduction blocks
    w = np.linspace(0.0, 2.0, 30).astype(np.float32)
    obj = make()
    ref_l, ref_g = obj.value_and_grad(y, x, sample_weight=w)
    l, g = obj.value_and_grad(cuda.to_device(y), cuda.to_device(x), sample_weight=w)
    np.testing.assert_allclose(l, ref_l, rtol=2e-5)
    np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=2e-5, atol=1e-7)


@needs_cuda
@pytest.mark.parametrize("reduction", ["none", "sum_over_batch_size", "mean_with_sample_weight"])
def test_device_inputs_with_spreading_weights_match_cpu(reduction):
    """Weights that Keras' multiplication broadcasts the per-sample losses to
    (more weighted losses than losses): the kernels get each loss' summed
    weights, the "none" result is gathered on the device."""
    from numba import cuda

    rng = np.random.default_rng(4)
    a = rng.uniform(0.0, 1.0, (3, 2))
    boxes_t = np.concatenate([a, a + rng.uniform(0.1, 1.0, (3, 2))], -1).astype(np.float32)
    boxes_p = (boxes_t + rng.uniform(-0.05, 0.05, (3, 4))).astype(np.float32)
    cases = [
        (L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1, reduction=reduction),
         np.array([0, 1, 2, 1, 4, 3]), rng.normal(size=(6, 5)), (3, 6)),
        (L.MeanSquaredError(reduction=reduction), rng.normal(size=7), rng.normal(size=7), (7,)),
        (L.CategoricalFocalCrossentropy(reduction=reduction), np.eye(5)[[0, 3, 1, 4]], rng.uniform(0.05, 1.0, (4, 5)),
         (2, 4)),
        (L.GIoULoss(reduction=reduction), boxes_t, boxes_p, (2, 1, 3)),  # Keras 2's rank fix: spread
    ]
    for obj, y, x, wshape in cases:
        y = y.astype(np.float32) if y.dtype.kind == "f" else y
        x = x.astype(np.float32)
        w = rng.uniform(0.2, 2.0, wshape).astype(np.float32)
        ref_l, ref_g = obj.value_and_grad(y, x, sample_weight=w)
        l, g = obj.value_and_grad(cuda.to_device(y), cuda.to_device(x), sample_weight=w)
        l = l.copy_to_host() if hasattr(l, "copy_to_host") else l
        assert np.shape(l) == np.shape(ref_l), type(obj).__name__
        np.testing.assert_allclose(l, ref_l, rtol=2e-5, err_msg=type(obj).__name__)
        np.testing.assert_allclose(g.copy_to_host(), ref_g, rtol=2e-5, atol=1e-7, err_msg=type(obj).__name__)


# ---------------------------------------------------------------------------
# grad_hess (gradient boosting) on CUDA
# ---------------------------------------------------------------------------
GH_CASES = [
    (lambda: L.BinaryCrossentropy(), "probs01"),
    (lambda: L.BinaryCrossentropy(from_logits=True, label_smoothing=0.1), "bin"),
    (lambda: L.Poisson(), "pos"),
    (lambda: L.MeanSquaredError(), "reg"),
    (lambda: L.MeanAbsoluteError(), "reg"),
    (lambda: L.MeanAbsolutePercentageError(), "reg"),
    (lambda: L.MeanSquaredLogarithmicError(), "pos"),
    (lambda: L.Huber(delta=0.7), "reg"),
    (lambda: L.LogCosh(), "reg"),
    (lambda: L.Hinge(), "bin"),  # {0, 1} labels: mapped to {-1, 1} batch-wide
    (lambda: L.SquaredHinge(), "pm"),
    (lambda: L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), "onehot"),
    (lambda: L.SparseCategoricalCrossentropy(from_logits=True), "sparse"),
    (lambda: L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1), "sparse"),
]
GH_IDS = ["bce", "bce_logits_ls", "poisson", "mse", "mae", "mape", "msle", "huber", "log_cosh", "hinge",
          "squared_hinge", "cce_logits_ls", "scce_logits", "scce_logits_ignore"]


def _gh_data(kind, R, K, dt, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((R, K)).astype(dt)
    if kind == "probs01":
        return rng.integers(0, 2, (R, K)).astype(dt), rng.uniform(0.02, 0.98, (R, K)).astype(dt)
    if kind == "bin":
        return rng.integers(0, 2, (R, K)).astype(dt), x
    if kind == "pos":
        return np.abs(rng.standard_normal((R, K))).astype(dt), np.abs(x)
    if kind == "pm":
        return rng.choice([-1.0, 1.0], (R, K)).astype(dt), x
    if kind == "onehot":
        return np.eye(K, dtype=dt)[rng.integers(0, K, R)], x
    if kind == "sparse":
        return rng.integers(0, K, R), x
    return rng.standard_normal((R, K)).astype(dt), x


@needs_cuda
@pytest.mark.parametrize("make, kind", GH_CASES, ids=GH_IDS)
@pytest.mark.parametrize("K", [1, 7, 40])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_grad_hess_on_cuda_matches_cpu(make, kind, K, dt):
    """NumPy inputs under use_backend("cuda") and device inputs against the
    CPU backend's grad_hess (itself checked against finite differences in
    test_grad_hess.py), with per-row weights."""
    from numba import cuda

    if kind in ("onehot", "sparse") and K == 1:
        K = 2
    y, x = _gh_data(kind, 9, K, dt, seed=K)
    w = np.linspace(0.5, 2.0, 9)
    obj = make()
    ref_g, ref_h = obj.grad_hess(y, x, sample_weight=w)
    with fastloss.use_backend("cuda"):
        g1, h1 = obj.grad_hess(y, x, sample_weight=w)
    g2, h2 = obj.grad_hess(cuda.to_device(y), cuda.to_device(x), sample_weight=w)
    g2, h2 = g2.copy_to_host(), h2.copy_to_host()
    tol = 2e-5 if dt == np.float32 else 1e-12
    for g, h in ((g1, h1), (g2, h2)):
        assert g.dtype == dt and h.dtype == dt and g.shape == x.shape and h.shape == x.shape
        np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol)
        np.testing.assert_allclose(h, ref_h, rtol=tol, atol=tol)


def _softmax_grad_hess_both_ways(x, lab, soft, w, flag, nan_rows, finite_rows, monkeypatch):
    """SCCE (row 11's label ignored) and CCE (soft targets, label smoothing)
    grad_hess under use_backend("cuda") with gradhess' ``flag`` on and off,
    each against the CPU backend; the NaN rows stay NaN (zero where SCCE
    ignores the row), the finite rows finite; a bad label (row 20) raises
    with its row, ``flag`` on."""
    from fastloss.backends.numba_cuda import gradhess as GH

    K = x.shape[1]
    ign = int(lab[11])
    cases = [(L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ign), lab),
             (L.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1), soft)]
    tol = 2e-5 if x.dtype == np.float32 else 1e-12
    for obj, y in cases:
        ref = obj.grad_hess(y, x, sample_weight=w)
        got = {}
        with fastloss.use_backend("cuda"):
            for on in (True, False):
                monkeypatch.setattr(GH, flag, on)
                got[on] = obj.grad_hess(y, x, sample_weight=w)
        for on, (g, h) in got.items():
            np.testing.assert_allclose(g, ref[0], rtol=tol, atol=tol, err_msg=f"{obj} {flag}={on}")
            np.testing.assert_allclose(h, ref[1], rtol=tol, atol=tol, err_msg=f"{obj} {flag}={on}")
        g = got[True][0]
        for r in nan_rows:
            assert not g[r].any() if y is lab and lab[r] == ign else np.isnan(g[r]).all(), (obj, r)
        assert np.isfinite(g[finite_rows]).all()
    bad = lab.copy()
    bad[20] = K + 3
    monkeypatch.setattr(GH, flag, True)
    with fastloss.use_backend("cuda"), pytest.raises(ValueError, match="20"):
        L.SparseCategoricalCrossentropy(from_logits=True).grad_hess(bad, x)


@needs_cuda
@pytest.mark.parametrize("K", [1, 5, 10, 16, 31])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_grad_hess_short_rows_staged_match_the_block_kernel_and_the_cpu(K, dt, monkeypatch):
    """grad_hess of the softmax cross-entropies below 32 classes: the
    thread-per-row kernels over staged rows (GH_STAGED) against the CPU backend
    and the block-per-row kernels they replace there: several blocks, a partial
    last one and grid-stride loops (the shrunk launch), weights, an ignored
    row, soft targets with label smoothing, a NaN row, masked (-inf) logits; a
    bad label raises with its row."""
    R = 37
    rng = np.random.default_rng(K)
    x = (rng.standard_normal((R, K)) * 3).astype(dt)
    x[5, 0] = np.nan
    x[7, : max(1, K // 2)] = -np.inf
    x[7, K - 1] = 1.0  # one finite logit at least
    lab = rng.integers(0, K, R)
    lab[7] = K - 1
    soft = rng.dirichlet(np.ones(K), R).astype(dt)
    w = rng.uniform(0.5, 2.0, R)
    _softmax_grad_hess_both_ways(x, lab, soft, w, "GH_STAGED", [5], [7], monkeypatch)


@needs_cuda
@pytest.mark.parametrize("K", [32, 50, 100, 300])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_grad_hess_rows_in_registers_match_the_block_kernel_and_the_cpu(K, dt, monkeypatch):
    """grad_hess of the softmax cross-entropies from 32 classes: the register
    kernels' twins (GH_REGS; in the shrunk launch: warp mode up to 64 classes,
    block mode of 8 threads up to 128, the block-per-row kernel beyond) against
    the CPU backend and the block-per-row kernels: weights, an ignored row,
    soft targets with label smoothing, a NaN row, masked (-inf) logits, a row
    of -inf only; a bad label raises with its row."""
    R = 23
    rng = np.random.default_rng(K)
    x = (rng.standard_normal((R, K)) * 3).astype(dt)
    x[5, K // 3] = np.nan
    x[7, : K // 2] = -np.inf
    x[9, :] = -np.inf
    lab = rng.integers(0, K, R)
    lab[7] = K - 1
    soft = rng.dirichlet(np.ones(K), R).astype(dt)
    w = rng.uniform(0.5, 2.0, R)
    _softmax_grad_hess_both_ways(x, lab, soft, w, "GH_REGS", [5, 9], [7], monkeypatch)


@needs_cuda
def test_grad_hess_on_device_bad_label_and_no_read_back(monkeypatch):
    """SCCE: a bad label raises (the kernel's count, one copy back). An
    elementwise grad_hess on device inputs copies nothing back: it returns
    while the kernel runs."""
    from numba import cuda

    x = cuda.to_device(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="label"):
        L.SparseCategoricalCrossentropy(from_logits=True).grad_hess(cuda.to_device(np.array([0, 1, 3, 2])), x)
    y = cuda.to_device(np.ones((4, 3), np.float32))
    cls = type(x)
    calls = []
    orig = cls.copy_to_host
    monkeypatch.setattr(cls, "copy_to_host", lambda self, *a, **k: calls.append(1) or orig(self, *a, **k))
    g, h = L.BinaryCrossentropy(from_logits=True).grad_hess(y, x)
    assert calls == []
    monkeypatch.undo()
    np.testing.assert_allclose(g.copy_to_host(), np.full((4, 3), -0.5 / 3, np.float32), rtol=1e-6)
    np.testing.assert_allclose(h.copy_to_host(), np.full((4, 3), 0.25 / 3, np.float32), rtol=1e-6)


# The host path's caches (numba_cuda/_streams.py, device.py, crossentropy.py):
# numba-cuda spends tens of microseconds on each device-array object it makes,
# so views, reshapes and parameter vectors are made once and reused. A reused
# object must describe the same memory as a new one would.


@needs_cuda
def test_scratch_views_are_reused_and_right():
    from fastloss.backends.numba_cuda import _streams as S

    a = S.scratch("test_view", 5, np.float32, 0)
    assert S.scratch("test_view", 5, np.float32, 0) is a
    assert a.shape == (5,)
    a.copy_to_device(np.arange(5, dtype=np.float32))
    b = S.scratch("test_view", 3, np.float32, 0)  # a shorter view of the same buffer
    assert b.shape == (3,)
    np.testing.assert_array_equal(b.copy_to_host(), [0, 1, 2])
    c = S.scratch("test_view", 9, np.float32, 0)  # grown: a new buffer
    assert c.shape == (9,)
    assert S.scratch("test_view", 9, np.float64, 0).dtype == np.float64  # per dtype
    assert S.scratch("test_view", 9, np.float32, 0) is c


@needs_cuda
def test_reshapes_of_remembered_views_are_reused_and_share_memory():
    from numba import cuda

    from fastloss.backends.numba_cuda import _streams as S

    v = S.scratch("test_reshape", 6, np.float32, 0)  # scratch views are remembered
    assert S.reshape(v, 6) is v
    r = S.reshape(v, 2, 3)
    assert r.shape == (2, 3) and S.reshape(v, 2, 3) is r
    r.copy_to_device(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(v.copy_to_host(), np.arange(6))
    plain = cuda.to_device(np.arange(4.0))  # not remembered: a new reshape each time, still right
    p1, p2 = S.reshape(plain, 2, 2), S.reshape(plain, 2, 2)
    assert p1.shape == p2.shape == (2, 2)
    np.testing.assert_array_equal(p1.copy_to_host(), [[0, 1], [2, 3]])


@needs_cuda
def test_status_views_and_parameter_vectors_are_made_once():
    from fastloss.backends.numba_cuda import crossentropy as G

    buf, info, tot = G.status(0)
    assert G.status(0) == (buf, info, tot) and G.status(0)[1] is info
    info.copy_to_device(np.array([3, 7], np.int64))
    tot.copy_to_device(np.array([2.5]))
    assert G.read_status(buf, 0) == (3, 7, 2.5)
    p = np.array([0.25, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0])
    d = G._device_prm(p)
    assert G._device_prm(p.copy()) is d
    np.testing.assert_array_equal(d.copy_to_host(), p)
    q = p.copy()
    q[0] = 0.5
    assert G._device_prm(q) is not d
    np.testing.assert_array_equal(G._device_prm(q).copy_to_host(), q)


@needs_cuda
def test_parameter_vectors_beyond_the_cache_reuse_the_oldest_memory(monkeypatch):
    """Changing values (a factor from varying weights) allocate nothing past
    CONST_PER_KEY per (stream, dtype, size): the oldest vector's memory is
    rewritten (on the same stream, after the kernels queued before)."""
    from numba import cuda

    from fastloss.backends.numba_cuda import _streams as S

    monkeypatch.setattr(S, "_CONST", {})
    monkeypatch.setattr(S, "CONST_PER_KEY", 2)
    a, b, c = (np.array([v, 1.0]) for v in (1.0, 2.0, 3.0))
    da, db = S.constant(a), S.constant(b)
    assert S.constant(a) is da  # a is now the most recent
    dc = S.constant(c)  # full: b's memory, the oldest, holds c now
    assert dc is db
    np.testing.assert_array_equal(dc.copy_to_host(), c)
    np.testing.assert_array_equal(S.constant(a).copy_to_host(), a)
    d2 = S.constant(b)  # b again (evicted): into the oldest one's memory, c's (a was used after c)
    assert d2 is dc
    np.testing.assert_array_equal(d2.copy_to_host(), b)
    assert len(S._CONST[(S._handle(0), "d", 2)]) == 2
    s = cuda.stream()
    other = S.constant(b, s)  # another stream: its own vectors
    assert other is not d2
    np.testing.assert_array_equal(other.copy_to_host(stream=s), b)
    assert S.constant(np.array([1.0, 1.0], np.float32)).dtype == np.float32  # per dtype


class _CAI:
    """A caller's device array as far as device._view reads it."""

    def __init__(self, ptr, shape, stream=None, mask=None):
        self.__cuda_array_interface__ = {"shape": shape, "strides": None, "data": (ptr, False), "typestr": "<f4",
                                         "version": 3, "stream": stream, "mask": mask}


def test_views_of_caller_arrays_are_reused_by_description(monkeypatch):
    from fastloss.backends.numba_cuda import device as DV

    made = []

    def fake(desc, owner=None, sync=True):
        made.append((dict(desc), owner))
        return object()

    monkeypatch.setattr(DV.cuda, "from_cuda_array_interface", fake, raising=False)  # the simulator has none
    monkeypatch.setattr(DV, "_VIEWS", {})
    monkeypatch.setattr(DV, "VIEWS_MAX", 3)
    x = _CAI(4096, (4, 3), stream=77)
    v, h = DV._view(x)
    assert h == 77
    assert "stream" not in made[0][0] and made[0][1] is None  # no stream wrapper, owns nothing
    assert DV._view(_CAI(4096, (4, 3)))[0] is v  # same memory, same shape: the same view
    assert len(made) == 1
    assert DV._view(_CAI(4096, (3, 4)))[0] is not v  # another shape
    assert DV._view(_CAI(8192, (4, 3)))[0] is not v  # another pointer
    assert len(made) == 3
    DV._view(_CAI(1 << 20, (4, 3)))  # a fourth: the oldest goes
    assert len(DV._VIEWS) == 3
    assert DV._view(_CAI(4096, (4, 3)))[0] is not v
    m = _CAI(4096, (4, 3), mask=1)  # masked: numba-cuda refuses it; not cached
    DV._view(m)
    assert made[-1][1] is m


def test_torch_tensors_are_asked_is_cuda():
    """fastloss._validate.on_device asks a PyTorch tensor ``is_cuda`` instead of
    building its interface dict (what ``hasattr`` would do)."""
    from fastloss import _validate as V

    class Tensor:
        __module__ = "torch"

        def __init__(self, on):
            self.is_cuda = on

        @property
        def __cuda_array_interface__(self):
            raise AssertionError("built the interface dict")

    assert V.on_device(Tensor(True)) is True
    assert V.on_device(Tensor(False)) is False
    assert V.on_device(np.zeros(2)) is False
    assert V.on_device(_CAI(1, (1,))) is True


def test_every_kernel_launch_goes_through_the_launch_helper():
    """The CUDA backend launches kernels with ``_launch.launch(kern, grid,
    block, stream, *args)`` (the direct path after the first launch), never
    with ``kern[grid, block, stream](*args)``, which would take numba-cuda's
    per-launch path again (tens of microseconds each)."""
    import pathlib
    import re

    import fastloss.backends.numba_cuda as pkg

    pattern = re.compile(r",\s*(?:stream|st|s)\s*\]\s*\(")  # [grid, block, stream](: the stream last
    found = []
    for path in sorted(pathlib.Path(pkg.__file__).parent.glob("*.py")):
        if path.name == "_launch.py":  # the helper itself (its numba-cuda path)
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) and not code.lstrip().startswith(('"', "'")):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert not found, "launches outside _launch.launch:\n" + "\n".join(found)
    assert pattern.search("kern[blocks, tpb, stream](x, y)")  # the pattern finds the old form
