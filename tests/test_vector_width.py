"""The Numba kernels that ask LLVM for 512-bit vectors (``_math.wide_vectors``:
the elementwise losses that evaluate exp/log per element, SCCE from logits,
the short-row CCE kernels, and the boosting kernels of the first) carry the function
attribute that does it, and on a CPU with AVX-512 their code uses the 512-bit
registers. Compiled here afresh (a kernel loaded from Numba's disk cache has
no IR to inspect), from the kernels' own Python functions."""

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit

from fastloss import _core
from fastloss._config import FASTMATH
from fastloss.backends.numba_cpu import _math, crossentropy, regression

ATTR = '"prefer-vector-width"="512"'


def _host_has_avx512():
    try:
        import llvmlite.binding as llvm

        return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")
    except Exception:  # no host feature query on this platform
        return False


def _compiled(kernel, dt, sparse=False):
    """A fresh, uncached compile of ``kernel`` (a rows kernel) for ``dt``,
    run once on small inputs; returns (IR, assembly) of that signature."""
    f = njit(fastmath=FASTMATH, error_model="numpy")(kernel.py_func)
    R, K = 64, 5
    rng = np.random.default_rng(0)
    yp = rng.standard_normal((R, K)).astype(dt)
    yt = rng.integers(0, K, R) if sparse else (rng.random((R, K)) < 0.5).astype(dt)
    prm = _core._prm(1.0 / R, K, None, None, np.dtype(dt))
    f(yt, yp, prm, np.ones(1, dt), 0, np.empty(R, dt), np.empty_like(yp), True, 0, R)
    sig = f.signatures[0]
    return f.inspect_llvm(sig), f.inspect_asm(sig)


WIDE = [
    (crossentropy.bce_logits_rows, False),
    (crossentropy.poisson_rows, False),
    (regression.log_cosh_rows, False),
    (crossentropy.scce_logits_rows, True),
    (crossentropy.cce_logits_cols, False),
    (crossentropy.cce_probs_cols, False),
]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("kernel, sparse", WIDE, ids=lambda v: getattr(v, "__name__", str(v)))
def test_wide_kernels_carry_the_attribute(kernel, sparse, dt):
    ir, asm = _compiled(kernel, dt, sparse)
    define = [ln for ln in ir.splitlines() if ln.startswith("define") and kernel.__name__ in ln]
    assert define, "the kernel's own function is in its module"
    # the attribute sits in an attribute group that the kernel's definition names
    groups = {ln.split("=", 1)[0].strip() for ln in ir.splitlines() if ln.startswith("attributes #") and ATTR in ln}
    assert groups, f"{kernel.__name__}: no function with {ATTR}"
    assert any(g.split()[-1] in d for g in groups for d in define)
    if _host_has_avx512():
        assert "zmm" in asm, f"{kernel.__name__} ({np.dtype(dt).name}): no 512-bit register used on an AVX-512 CPU"


def test_gh_kernel_carries_the_attribute():
    """A boosting (grad/Hessian) kernel of an exp/log loss opts in too."""
    f = njit(fastmath=FASTMATH, error_model="numpy")(regression.log_cosh_gh_rows.py_func)
    R, K = 64, 3
    rng = np.random.default_rng(1)
    yp = rng.standard_normal((R, K))
    prm = _core._prm(1.0, K, None, None, np.dtype(np.float64))
    f(rng.standard_normal((R, K)), yp, prm, np.ones(1), 0, np.empty_like(yp), np.empty_like(yp), 0, R)
    assert ATTR in f.inspect_llvm(f.signatures[0])


@pytest.mark.parametrize("kernel", [crossentropy.cce_logits_rows, regression.huber_rows], ids=lambda k: k.__name__)
def test_other_kernels_keep_llvms_default_width(kernel):
    """Kernels that did not opt in get no attribute: the intrinsic marks only
    the function it is compiled into (cce_logits_rows lost with 512-bit
    vectors at 30-100 classes, Huber at every size measured; see _math.py
    and crossentropy.bce_rows)."""
    ir, _ = _compiled(kernel, np.float64)
    assert ATTR not in ir
    assert _math._WIDE_ATTR == ATTR
