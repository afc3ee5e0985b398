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

    old = G.TPB, G.MAX_BLOCKS
    G.TPB, G.MAX_BLOCKS = 8, 3
    yield
    G.TPB, G.MAX_BLOCKS = old


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


@needs_cuda
@pytest.mark.parametrize("make, kind", CASES)
@pytest.mark.parametrize("C", [5, 40])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_numpy_inputs_under_cuda_backend_match_cpu(make, kind, C, dt):
    y, x = _data(kind, 7, C, dt)
    w = np.linspace(0.5, 2.0, 7)
    obj = make()
    ref_l, ref_g = obj.value_and_grad(y, x, sample_weight=w)
    with fastloss.use_backend("cuda"):
        l, g = obj.value_and_grad(y, x, sample_weight=w)
    tol = 2e-5 if dt == np.float32 else 1e-10
    np.testing.assert_allclose(l, ref_l, rtol=tol)
    np.testing.assert_allclose(g, ref_g, rtol=tol, atol=tol * 1e-2)
    assert g.dtype == dt


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
def test_device_bad_label_raises():
    from numba import cuda

    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="label"):
        L.SparseCategoricalCrossentropy(from_logits=True)(cuda.to_device(np.array([0, 1, 3, 2])), cuda.to_device(x))


@needs_cuda
def test_nan_row_stays_in_its_row():
    x = np.zeros((3, 40), np.float32)
    x[1, 7] = np.nan
    with fastloss.use_backend("cuda"):
        loss = L.SparseCategoricalCrossentropy(from_logits=True, reduction="none")([0, 1, 2], x)
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()


@needs_cuda
def test_unsupported_loss_on_cuda_says_which_exist():
    with fastloss.use_backend("cuda"), pytest.raises(ValueError, match="cuda"):
        L.BinaryCrossentropy()(np.zeros((2, 2)), np.full((2, 2), 0.5))
