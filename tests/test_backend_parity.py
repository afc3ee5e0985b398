"""C backend vs Numba backend, kernel by kernel, driven by the registry.

For every registry entry and every variant that has a kernel on both CPU
backends (loss kernels and grad_hess kernels), on float32 and float64, with and
without weights, on the serial and the parallel path, the two backends must
agree to rounding: loss, total (through every reduction), gradient, Hessian;
NaN and inf inputs give NaN/inf in the same places; bad labels give the same
ValueError text. The inputs deliberately leave the losses' domains (clip
regions, exact 0 and 1, huge logits): the two implementations must make the
same choices there too.

The independent references (float64 NumPy, finite differences, published
values) are checked on EVERY backend by the family test files (tests/conftest.py
runs them once per backend); this file pins the two backends to each other.
"""

import zlib

import numpy as np
import pytest

import fastloss
from fastloss import _core, _registry

pytestmark = pytest.mark.skipif(
    not {"numba", "c"} <= set(fastloss.available_backends()),
    reason="needs both the numba and the c backend",
)

LOSS_VARIANTS = ("probs", "logits")
GH_VARIANTS = ("gh", "gh_logits")


def _pairs(kinds):
    out = []
    for name in sorted(_registry.REGISTRY):
        spec = _registry.REGISTRY[name]
        both = set(spec.kernels.get("numba", {})) & set(spec.kernels.get("c", {}))
        out += [(name, v) for v in kinds if v in both]
    return out


def test_every_numba_cpu_kernel_has_a_c_twin():
    """A loss family on main without C kernels is a gap the parity suite would
    silently skip: list them here (the boxes/triplet families are added with
    their C twins)."""
    missing = [
        (n, v)
        for n, s in _registry.REGISTRY.items()
        for v in s.kernels.get("numba", {})
        if v not in s.kernels.get("c", {})
    ]
    assert missing == []


def _params(name, variant, gamma):
    p = {"alpha": 0.3, "gamma": gamma}
    if _registry.REGISTRY[name].family == "crossentropy":
        # not for the regression family: no regression loss takes label smoothing, and
        # y * 0.9 + 0.05 on real-valued targets cancels (FMA or not then decides digits)
        p["label_smoothing"] = 0.1
    if name in ("categorical_crossentropy", "categorical_focal_crossentropy"):
        p["ls_per_class"] = True
    if name == "categorical_focal_crossentropy":
        p["flag"] = 1.0 if variant == "logits" else 0.0
    elif name == "binary_focal_crossentropy":
        p["flag"] = 1.0
    if name == "huber":
        p["alpha"] = 0.8
    return p


def _inputs(spec, variant, rng, R, K, dt, specials, labels):
    logits = "logits" in variant
    if logits:
        yp = rng.normal(0.0, 4.0, (R, K))
    elif spec.family == "crossentropy":
        yp = rng.uniform(-0.05, 1.05, (R, K))  # both clip regions and the interior
    else:
        yp = rng.normal(0.0, 2.0, (R, K))
    flat = yp.reshape(-1)
    n = flat.size
    idx = rng.choice(n, size=min(n, 12), replace=False)
    edge = [0.0, 1.0, 1e-7, 1.0 - 1e-7, -0.0, 60.0, -60.0, 200.0, -200.0, 0.5, 2.0, -1.0]
    flat[idx] = edge[: len(idx)]
    if specials:
        idx = rng.choice(n, size=min(n, 4), replace=False)
        vals = [np.nan] * 4 if specials == "nan" else [np.inf, -np.inf, np.inf, -np.inf]
        flat[idx] = vals[: len(idx)]
    yp = yp.astype(dt)
    if spec.layout == "sparse":
        yt = rng.integers(0, K, R)
        if labels == "ignore":
            yt[::3] = 2
    elif labels == "binary":
        yt = rng.integers(0, 2, (R, K)).astype(dt)
    elif spec.family == "crossentropy":
        yt = rng.uniform(0.0, 1.0, (R, K)).astype(dt)
    else:
        yt = rng.normal(0.0, 2.0, (R, K)).astype(dt)
        yt.reshape(-1)[:: 7] = 0.0  # MAPE's eps floor, cosine's zero rows
    return yt, yp


def _close(a, b, dt, what, exact_specials=True):
    """``exact_specials``: NaN and +-inf in the same places. Off for inputs
    holding inf, where inf - inf, 0 * inf and friends make NaN or inf depending
    on how a compiler orders the arithmetic (Numba's fastmath reassociates):
    then both must be non-finite in the same places."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    assert a.shape == b.shape, what
    if exact_specials:
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{what}: NaN positions")
        np.testing.assert_array_equal(np.isposinf(a), np.isposinf(b), err_msg=f"{what}: +inf positions")
        np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b), err_msg=f"{what}: -inf positions")
    else:
        np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b), err_msg=f"{what}: non-finite positions")
    fin = np.isfinite(a) & np.isfinite(b)
    if not fin.any():
        return
    scale = max(1.0, float(np.max(np.abs(b[fin]))))
    if np.dtype(dt) == np.float32:
        rtol, atol = 5e-5, 5e-6 * scale
    else:
        rtol, atol = 1e-11, 1e-13 * scale
    np.testing.assert_allclose(a[fin], b[fin], rtol=rtol, atol=atol, err_msg=what)


def _run(backend, fn):
    with fastloss.use_backend(backend):
        return fn()


SHAPES = [(7, 5), (1, 1), (40000, 1), (120, 300)]  # the last two take the parallel path
SPECIALS = (None, "nan", "inf")


def _seed(name, variant, dt):
    return zlib.crc32(f"{name}/{variant}/{np.dtype(dt).name}".encode())


def _combos(spec, name):
    """(R, K, specials, labels): every combination on the small shapes, a few on
    the parallel ones (they exercise the chunking, not new element math)."""
    out = []
    for R, K in SHAPES:
        if name == "cosine_similarity" and K == 1:
            continue  # cos = +-1 exactly: the gradient is 0 up to cancellation noise
        big = R * K > 1000
        for specials in (None, "nan") if big else SPECIALS:
            for labels in ("binary", "soft", "ignore"):
                if labels == "ignore" and spec.layout != "sparse":
                    continue
                if big and labels == "binary" and spec.layout != "sparse":
                    continue
                out.append((R, K, specials, labels))
    return out


@pytest.mark.parametrize("name,variant", _pairs(LOSS_VARIANTS))
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_loss_kernels_agree(name, variant, dt):
    spec = _registry.REGISTRY[name]
    rng = np.random.default_rng(_seed(name, variant, dt))
    for R, K, specials, labels in _combos(spec, name):
        yt, yp = _inputs(spec, variant, rng, R, K, dt, specials, labels)
        ic = 2 if labels == "ignore" else None
        exact = specials != "inf"
        for gamma in (2.0, 1.5, 0.5, 0.0) if "focal" in name and R * K < 1000 else (2.0,):
            params = _params(name, variant, gamma)
            for sw, reduction in ((None, "none"), (rng.uniform(0.0, 2.0, R), "mean_with_sample_weight"),
                                  (0.7, "sum_over_batch_size")):
                what = (f"{name}/{variant} {R}x{K} specials={specials} labels={labels} gamma={gamma} "
                        f"sw={type(sw).__name__} {reduction}")

                def call():
                    return _core.compute(
                        name, yt, yp, variant=variant, params=params, sample_weight=sw,
                        reduction=reduction, want_grad=True, ignore_class=ic,
                    )

                lc, gc = _run("c", call)
                ln, gn = _run("numba", call)
                _close(lc, ln, dt, what + " loss", exact)
                _close(gc, gn, dt, what + " grad", exact)
                assert np.asarray(lc).dtype == np.asarray(ln).dtype == dt
                assert gc.dtype == gn.dtype == dt
            # the loss alone (want_grad=False: the scratch-buffer path)
            l0 = _run("c", lambda: _core.compute(name, yt, yp, variant=variant, params=params,
                                                 reduction="sum", ignore_class=ic)[0])
            l1 = _run("numba", lambda: _core.compute(name, yt, yp, variant=variant, params=params,
                                                     reduction="sum", ignore_class=ic)[0])
            _close(l0, l1, dt, f"{name}/{variant} {R}x{K} sum, no grad", exact)


@pytest.mark.parametrize("name,variant", _pairs(GH_VARIANTS))
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_grad_hess_kernels_agree(name, variant, dt):
    spec = _registry.REGISTRY[name]
    rng = np.random.default_rng(_seed(name, variant + "gh", dt))
    for R, K, specials, labels in _combos(spec, name):
        yt, yp = _inputs(spec, variant, rng, R, K, dt, specials, labels)
        ic = 2 if labels == "ignore" else None
        exact = specials != "inf"
        params = _params(name, variant, 2.0)
        for sw in (None, rng.uniform(0.0, 2.0, R), 0.7):
            what = f"{name}/{variant} {R}x{K} specials={specials} labels={labels} sw={type(sw).__name__}"

            def call():
                return _core.grad_hess(name, yt, yp, variant=variant, params=params,
                                       sample_weight=sw, ignore_class=ic)

            gc, hc = _run("c", call)
            gn, hn = _run("numba", call)
            _close(gc, gn, dt, what + " grad", exact)
            _close(hc, hn, dt, what + " hess", exact)


SPARSE = [(n, v) for n, v in _pairs(LOSS_VARIANTS + GH_VARIANTS) if _registry.REGISTRY[n].layout == "sparse"]


@pytest.mark.parametrize("name,variant", SPARSE)
@pytest.mark.parametrize("R,K", [(6, 4), (20000, 3)], ids=["serial", "parallel"])
@pytest.mark.parametrize("ic", [None, 1])
def test_bad_labels_same_error(name, variant, R, K, ic):
    rng = np.random.default_rng(5)
    yt = rng.integers(0, K, R)
    yt[R // 2] = K + 3
    yt[-1] = -4
    yp = rng.normal(size=(R, K)).astype(np.float32)
    gh = variant.startswith("gh")

    def call():
        if gh:
            return _core.grad_hess(name, yt, yp, variant=variant, ignore_class=ic)
        return _core.compute(name, yt, yp, variant=variant, want_grad=True, reduction="sum", ignore_class=ic)

    msgs = []
    for b in ("c", "numba"):
        with pytest.raises(ValueError) as ei:
            _run(b, call)
        msgs.append(str(ei.value))
    assert msgs[0] == msgs[1]
    assert f"{K + 3}" in msgs[0] and str(R // 2) in msgs[0]


def test_inputs_not_modified_and_grad_out_used():
    rng = np.random.default_rng(3)
    yt = rng.integers(0, 10, 500)
    yp = rng.normal(size=(500, 10)).astype(np.float32)
    keep = yp.copy()
    buf = np.empty_like(yp)
    with fastloss.use_backend("c"):
        loss, g = fastloss.losses.SparseCategoricalCrossentropy(from_logits=True).value_and_grad(yt, yp, grad_out=buf)
    assert g is buf
    np.testing.assert_array_equal(yp, keep)
    with fastloss.use_backend("numba"):
        loss2, g2 = fastloss.losses.SparseCategoricalCrossentropy(from_logits=True).value_and_grad(yt, yp)
    _close(loss, loss2, np.float32, "loss")
    _close(g, g2, np.float32, "grad")
