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


def _pairs(kinds, layouts=None):
    """(name, variant) with a kernel on both CPU backends; the box layout (its own
    data and shapes, test_box_kernels_agree) only where asked for."""
    out = []
    for name in sorted(_registry.REGISTRY):
        spec = _registry.REGISTRY[name]
        if (spec.layout == "boxes") != (layouts == "boxes"):
            continue
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


# (3000, 3): many blocks of short rows (the C driver's short-row pass); the last two run in parallel
SHAPES = [(7, 5), (1, 1), (3000, 3), (40000, 1), (120, 300)]
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


# ---- boxes -----------------------------------------------------------------------

BOX_FORMATS = ("yxyx", "xyxy", "xywh", "cxcywh")


def _box_corners(rng, n):
    """(n, 4) corners (lo_a, lo_b, hi_a, hi_b) in float64: proper boxes, half of
    them on an integer grid (exact ties between predicted and true corners,
    touching and identical boxes), and a few degenerate ones (zero extent,
    inverted corners)."""
    lo = rng.uniform(0.0, 10.0, (n, 2))
    hi = lo + rng.uniform(0.1, 5.0, (n, 2))
    c = np.concatenate([lo, hi], axis=1)
    grid = rng.random(n) < 0.5
    g_lo = rng.integers(0, 6, (n, 2)).astype(np.float64)
    g = np.concatenate([g_lo, g_lo + rng.integers(1, 4, (n, 2))], axis=1)
    c[grid] = g[grid]
    k = rng.choice(n, size=min(n, 3), replace=False)
    if len(k) > 0:
        c[k[0], 2] = c[k[0], 0]  # zero extent along a
    if len(k) > 1:
        c[k[1], 3] = c[k[1], 1] - 1.5  # inverted along b
    if len(k) > 2:
        c[k[2]] = c[k[2], [0, 1, 0, 1]]  # a point
    return c


def _to_format(c, fmt):
    a0, b0, a1, b1 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    if fmt == "xywh":
        cols = (a0, b0, a1 - a0, b1 - b0)
    elif fmt == "cxcywh":
        cols = ((a0 + a1) / 2, (b0 + b1) / 2, a1 - a0, b1 - b0)
    else:  # yxyx / xyxy: the same corner order (every loss is symmetric in the axes)
        cols = (a0, b0, a1, b1)
    return np.stack(cols, axis=1)


def _box_inputs(rng, nt, npred, fmt, dt, specials):
    n = max(nt, npred)
    ct = _box_corners(rng, nt)
    cp = _box_corners(rng, npred)
    if nt == npred:
        same = rng.choice(n, size=min(n, 2), replace=False)
        cp[same] = ct[same]  # identical boxes: loss 0, every corner a tie
    yt = _to_format(ct, fmt)
    yp = _to_format(cp, fmt)
    if specials:
        v = [np.nan, np.nan] if specials == "nan" else [np.inf, -np.inf]
        tgt = yp if npred == n else yt
        rows = rng.choice(n, size=min(n, 2), replace=False)
        for r, x in zip(rows, v):
            tgt[r, rng.integers(0, 4)] = x
    return yt.astype(dt), yp.astype(dt)


# (rows of y_true, rows of y_pred): one box per row, one box broadcast on
# either side; 20000 rows (80000 elements) take the parallel path.
BOX_SHAPES = [(9, 9), (1, 1), (1, 9), (9, 1), (20000, 20000), (1, 20000), (20000, 1)]


@pytest.mark.parametrize("name,variant", _pairs(LOSS_VARIANTS, "boxes"))
@pytest.mark.parametrize("dt", [np.float32, np.float64], ids=["f32", "f64"])
def test_box_kernels_agree(name, variant, dt):
    rng = np.random.default_rng(_seed(name, variant, dt))
    for nt, npred in BOX_SHAPES:
        n = max(nt, npred)
        big = n > 1000
        for fmt in BOX_FORMATS:
            for specials in (None, "nan") if big else SPECIALS:
                yt, yp = _box_inputs(rng, nt, npred, fmt, dt, specials)
                exact = specials != "inf"
                params = {"flag": float(BOX_FORMATS.index(fmt))}
                for sw, reduction in ((None, "none"), (rng.uniform(0.0, 2.0, n), "mean_with_sample_weight"),
                                      (0.7, "sum_over_batch_size")):
                    what = (f"{name} yt({nt},4) yp({npred},4) {fmt} specials={specials} "
                            f"sw={type(sw).__name__} {reduction}")

                    def call():
                        return _core.compute(name, yt, yp, variant=variant, params=params, sample_weight=sw,
                                             reduction=reduction, want_grad=True)

                    lc, gc = _run("c", call)
                    ln, gn = _run("numba", call)
                    _close(lc, ln, dt, what + " loss", exact)
                    _close(gc, gn, dt, what + " grad", exact)
                    assert gc.shape == gn.shape == yp.shape, what
                    assert np.asarray(lc).dtype == np.asarray(ln).dtype == dt
                    assert gc.dtype == gn.dtype == dt
                l0 = _run("c", lambda: _core.compute(name, yt, yp, variant=variant, params=params,
                                                     reduction="sum")[0])
                l1 = _run("numba", lambda: _core.compute(name, yt, yp, variant=variant, params=params,
                                                         reduction="sum")[0])
                _close(l0, l1, dt, f"{name} yt({nt},4) yp({npred},4) {fmt} sum, no grad", exact)


def test_box_inputs_not_modified():
    rng = np.random.default_rng(11)
    yt, yp = _box_inputs(rng, 3000, 1, "cxcywh", np.float32, None)
    keep_t, keep_p = yt.copy(), yp.copy()
    with fastloss.use_backend("c"):
        loss, g = fastloss.losses.CIoULoss(box_format="cxcywh").value_and_grad(yt, yp)
    np.testing.assert_array_equal(yt, keep_t)
    np.testing.assert_array_equal(yp, keep_p)
    assert g.shape == (1, 4)
