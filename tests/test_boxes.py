"""Box losses (numba_cpu/boxes.py): IoU and GIoU as TF Addons' GIoULoss, DIoU
and CIoU as torchvision. Hand-computed golden values, TF Addons' docstring
example, the float64 reference (tests/reference.py) in every mode and box
format, finite differences for gradients, broadcasting identities, degenerate
boxes, NaN rows, errors, layouts, dtypes, the parallel path. Parity with the
real TF Addons is in test_tfa_boxes.py."""

import zlib

import numpy as np
import pytest

import fastloss
from fastloss import losses as L

import reference as R

MODES = ["iou", "giou", "diou", "ciou"]
FORMATS = ["yxyx", "xyxy", "xywh", "cxcywh"]
REDUCTIONS = ["sum_over_batch_size", "sum", "none"]
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}


def seed(*key):
    """A stable seed from the test's parameters (str hashes vary per process)."""
    return zlib.crc32(repr(key).encode())


def make(mode, box_format="yxyx", reduction="sum_over_batch_size"):
    if mode in ("giou", "iou"):
        return L.GIoULoss(mode=mode, reduction=reduction, box_format=box_format)
    cls = L.DIoULoss if mode == "diou" else L.CIoULoss
    return cls(box_format=box_format, reduction=reduction)


def ref(mode, yt, yp, box_format="yxyx"):
    if mode in ("giou", "iou"):
        return R.giou_loss(yt, yp, mode=mode, box_format=box_format)
    return R.REFERENCES[f"{mode}_loss"](yt, yp, box_format=box_format)


def from_xyxy(x1, y1, x2, y2, box_format):
    if box_format == "yxyx":
        cols = (y1, x1, y2, x2)
    elif box_format == "xyxy":
        cols = (x1, y1, x2, y2)
    elif box_format == "xywh":
        cols = (x1, y1, x2 - x1, y2 - y1)
    else:
        cols = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return np.stack(cols, axis=-1)


def rand_boxes(rng, shape, box_format="yxyx", dtype=np.float64, scale=10.0):
    """Random proper boxes (positive extents) in ``box_format``; pairs drawn
    this way overlap, nest or lie apart in about equal measure."""
    x1 = rng.uniform(0, scale, shape)
    y1 = rng.uniform(0, scale, shape)
    x2 = x1 + rng.uniform(0.1, scale / 2, shape)
    y2 = y1 + rng.uniform(0.1, scale / 2, shape)
    return from_xyxy(x1, y1, x2, y2, box_format).astype(dtype)


# ----------------------------------------------------------------------------- golden values

# (y_true, y_pred) in yxyx with each mode's loss, computed by hand:
# quarter: the predicted unit box in the corner of a 2x2 box, I = 1, U = 4 = C,
# centres (0.5, 0.5) and (1, 1): rho2 = 0.5, c2 = 8; side by side: I = 0, U = 2 = C,
# centres 1 apart, c2 = 1 + 4; diagonal neighbours: I = 0, U = 2, C = 4, rho2 = 2, c2 = 8.
GOLDEN = [
    ("identical", [0, 0, 2, 3], [0, 0, 2, 3], dict(iou=0.0, giou=0.0, diou=0.0, ciou=0.0)),
    ("quarter", [0, 0, 2, 2], [0, 0, 1, 1], dict(iou=0.75, giou=0.75, diou=0.75 + 0.5 / 8, ciou=0.75 + 0.5 / 8)),
    ("side_by_side", [0, 0, 1, 1], [0, 1, 1, 2], dict(iou=1.0, giou=1.0, diou=1.0 + 1 / 5, ciou=1.0 + 1 / 5)),
    ("diagonal", [0, 0, 1, 1], [1, 1, 2, 2], dict(iou=1.0, giou=1.5, diou=1.0 + 2 / 8, ciou=1.0 + 2 / 8)),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,yt,yp,want", GOLDEN, ids=[g[0] for g in GOLDEN])
@pytest.mark.parametrize("dtype", DTYPES)
def test_golden_values(mode, name, yt, yp, want, dtype):
    got = make(mode, reduction="none")(np.array(yt, dtype), np.array(yp, dtype))
    # eps = 1e-7 in the DIoU/CIoU denominators moves these by < 1e-6
    np.testing.assert_allclose(got, want[mode], rtol=1e-6, atol=1e-6)
    assert got.dtype == dtype and got.shape == ()


def test_golden_values_batched_and_symmetric():
    """The four golden pairs as one batch, and with y_true / y_pred swapped
    (all four losses are symmetric in their two boxes)."""
    yt = np.array([g[1] for g in GOLDEN], np.float64)
    yp = np.array([g[2] for g in GOLDEN], np.float64)
    for mode in MODES:
        want = [g[3][mode] for g in GOLDEN]
        obj = make(mode, reduction="none")
        np.testing.assert_allclose(obj(yt, yp), want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(obj(yp, yt), want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(make(mode)(yt, yp), np.mean(want), rtol=1e-6)


def test_tfa_docstring_example():
    gl = L.GIoULoss()
    boxes1 = np.array([[4.0, 3.0, 7.0, 5.0], [5.0, 6.0, 10.0, 7.0]], np.float32)
    boxes2 = np.array([[3.0, 4.0, 6.0, 8.0], [14.0, 14.0, 15.0, 15.0]], np.float32)
    got = gl(boxes1, boxes2)
    assert got.dtype == np.float32 and np.ndim(got) == 0
    np.testing.assert_allclose(got, 1.5041667, rtol=1e-6)
    np.testing.assert_allclose(gl(boxes1.astype(np.float64), boxes2.astype(np.float64)), 1.5041666666666667, rtol=1e-13)


def test_ciou_aspect_term_by_hand():
    """CIoU of a 2x2 box against a 4x2 box sharing its corner (xyxy):
    iou 1/2, centres 1 apart, c2 = 20, v = 4/pi^2 (atan(1) - atan(2))^2."""
    v = 4 / np.pi**2 * (np.arctan(1.0) - np.arctan(2.0)) ** 2
    alpha = v / (1 - 0.5 + v)
    want = 1 - 0.5 + 1 / 20 + alpha * v
    got = L.CIoULoss(box_format="xyxy", reduction="none")(np.array([0.0, 0, 2, 2]), np.array([0.0, 0, 4, 2]))
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ----------------------------------------------------------------------------- float64 reference


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("box_format", FORMATS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_reference(mode, box_format, dtype):
    rng = np.random.default_rng(seed(mode, box_format, str(dtype)))
    yt = rand_boxes(rng, 64, box_format, dtype)
    yp = rand_boxes(rng, 64, box_format, dtype)
    yp[:8] = yt[:8]  # identical boxes
    per = ref(mode, yt, yp, box_format)
    np.testing.assert_allclose(make(mode, box_format, "none")(yt, yp), per, **TOL[dtype])
    sw = rng.uniform(0.1, 2.0, 64).astype(dtype)
    for reduction in REDUCTIONS:
        got = make(mode, box_format, reduction)(yt, yp, sample_weight=sw)
        np.testing.assert_allclose(got, R.reduce(per, sw, reduction), **TOL[dtype])


@pytest.mark.parametrize("mode", MODES)
def test_formats_agree(mode):
    """The same boxes written in the four formats give the same losses."""
    rng = np.random.default_rng(7)
    x1, y1 = rng.uniform(0, 5, (2, 32)), rng.uniform(0, 5, (2, 32))
    x2, y2 = x1 + rng.uniform(0.5, 3, (2, 32)), y1 + rng.uniform(0.5, 3, (2, 32))
    vals = []
    for f in FORMATS:
        b = from_xyxy(x1, y1, x2, y2, f)
        vals.append(make(mode, f, "none")(b[0], b[1]))
    for v in vals[1:]:
        np.testing.assert_allclose(v, vals[0], rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- gradients


def _fd_target(mode, yt, box_format, sw, reduction, yp0):
    """The reduced loss as a function of y_pred, in float64 (for finite differences).
    CIoU: alpha frozen at y_pred0, as torchvision (no_grad) and fastloss do."""
    alpha = R.ciou_alpha(yt, yp0, box_format) if mode == "ciou" else None

    def f(p):
        if mode == "ciou":
            per = R.ciou_loss(yt, p, box_format, alpha=alpha)
        else:
            per = ref(mode, yt, p, box_format)
        return R.reduce(per, sw, reduction)

    return f


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("box_format", FORMATS)
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "none"])
def test_gradient_finite_differences(mode, box_format, reduction):
    rng = np.random.default_rng(seed(mode, box_format, reduction))
    n = 24
    yt = rand_boxes(rng, n, box_format)
    yp = rand_boxes(rng, n, box_format)
    sw = rng.uniform(0.5, 2.0, n)
    loss, grad = make(mode, box_format, reduction).value_and_grad(yt, yp, sample_weight=sw)
    fd = R.fd_grad(_fd_target(mode, yt, box_format, sw, reduction, yp), yp, h=1e-6)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)
    assert grad.shape == yp.shape and grad.dtype == np.float64


def test_ciou_gradient_is_torchvision_not_exact():
    """CIoU's gradient treats alpha as a constant (torchvision): it differs from
    the exact derivative of the value where the aspect ratios differ."""
    yt = np.array([[0.0, 0, 2, 2]])
    yp = np.array([[0.3, 0.2, 2.5, 5.1]])  # no coordinate ties (FD would straddle a kink)
    _, grad = L.CIoULoss(box_format="xyxy", reduction="sum").value_and_grad(yt, yp)
    exact = R.fd_grad(lambda p: R.ciou_loss(yt, p, "xyxy"), yp)
    frozen = R.fd_grad(_fd_target("ciou", yt, "xyxy", None, "sum", yp), yp)
    np.testing.assert_allclose(grad, frozen, rtol=1e-7, atol=1e-10)
    assert np.max(np.abs(grad - exact)) > 1e-4


@pytest.mark.parametrize("mode", MODES)
def test_gradient_float32_matches_float64(mode):
    rng = np.random.default_rng(3)
    yt = rand_boxes(rng, 200)
    yp = rand_boxes(rng, 200)
    obj = make(mode, reduction="sum")
    _, g64 = obj.value_and_grad(yt, yp)
    _, g32 = obj.value_and_grad(yt.astype(np.float32), yp.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=2e-4, atol=2e-5)


def test_tie_gradients_follow_tf():
    """Ties in max/min send the gradient to y_pred (TF's Maximum/Minimum
    gradients); a clamped extent passes none. Identical boxes (GIoU, sum):
    I = U = C = area, the predicted box owns every corner of the intersection
    and of the enclosure, and each corner's pulls cancel: gradient 0.

    Side by side (yxyx): true [0, 0, 1, 1], pred [0, 1, 1, 2]: I = 0 (the
    intersection's x extent is 0: its clamp passes nothing), U = 2, enclosure
    1 x 2 (C = 2) with the prediction owning y_min, y_max (ties) and x_max.
    dL/dU = -1/C = -1/2, dL/dC = U/C^2 = 1/2:
    y_min: area -1 (dU = -1), enclosure -2 (dC = -x extent 2) -> 1/2 - 1 = -1/2;
    y_max: +1/2 - ... = -1/2 + 1 = 1/2; x_min: area -1 only -> 1/2;
    x_max: area +1, enclosure +1 (y extent 1) -> -1/2 + 1/2 = 0."""
    gl = L.GIoULoss(reduction="sum")
    _, g = gl.value_and_grad(np.array([0.0, 0, 2, 3]), np.array([0.0, 0, 2, 3]))
    np.testing.assert_array_equal(g, 0.0)
    _, g = gl.value_and_grad(np.array([0.0, 0, 1, 1]), np.array([0.0, 1, 1, 2]))
    np.testing.assert_allclose(g, [-0.5, 0.5, 0.5, 0.0], atol=1e-15)


# ----------------------------------------------------------------------------- broadcasting and shapes


@pytest.mark.parametrize("mode", MODES)
def test_single_box_broadcast_equals_tiling(mode):
    rng = np.random.default_rng(11)
    one = rand_boxes(rng, 4)[0]
    many = rand_boxes(rng, 37)
    tiled = np.tile(one, (37, 1))
    sw = rng.uniform(0.5, 2, 37)
    for reduction in REDUCTIONS:
        obj = make(mode, reduction=reduction)
        # single true box against many predictions
        l1, g1 = obj.value_and_grad(one, many, sample_weight=sw)
        l2, g2 = obj.value_and_grad(tiled, many, sample_weight=sw)
        np.testing.assert_allclose(l1, l2, rtol=1e-13)
        np.testing.assert_allclose(g1, g2, rtol=1e-13, atol=1e-15)
        # single predicted box: its gradient is the sum over the pairs
        for single in (one, one[None, :]):
            l1, g1 = obj.value_and_grad(many, single, sample_weight=sw)
            l2, g2 = obj.value_and_grad(many, tiled, sample_weight=sw)
            np.testing.assert_allclose(l1, l2, rtol=1e-13)
            assert g1.shape == single.shape
            np.testing.assert_allclose(g1.reshape(4), g2.sum(axis=0), rtol=1e-11, atol=1e-14)


def test_general_broadcast_equals_tiling():
    rng = np.random.default_rng(12)
    a = rand_boxes(rng, (2, 3))
    b = rand_boxes(rng, (3,))
    obj = L.GIoULoss(reduction="sum")
    l1, g1 = obj.value_and_grad(a, b)
    l2, g2 = obj.value_and_grad(a, np.broadcast_to(b, (2, 3, 4)).copy())
    np.testing.assert_allclose(l1, l2, rtol=1e-13)
    assert g1.shape == (3, 4)
    np.testing.assert_allclose(g1, g2.sum(axis=0), rtol=1e-12)
    l3 = obj(b, a)
    np.testing.assert_allclose(l3, obj(np.broadcast_to(b, (2, 3, 4)), a), rtol=1e-13)


@pytest.mark.parametrize(
    "yt_shape,yp_shape,want",
    [
        ((5, 4), (5, 4), (5,)),
        ((1, 4), (1, 4), ()),
        ((4,), (4,), ()),
        ((2, 3, 4), (2, 3, 4), (2, 3)),
        ((2, 1, 4), (2, 1, 4), (2,)),
        ((1, 1, 4), (1, 1, 4), ()),
        ((4,), (5, 4), (5,)),
        ((5, 4), (4,), (5,)),
        ((1, 4), (5, 4), (5,)),
        ((5, 4), (1, 4), (5,)),
        ((2, 3, 4), (3, 4), (2, 3)),
        ((3, 4), (2, 3, 4), (2, 3)),
    ],
)
def test_shapes_as_tfa(yt_shape, yp_shape, want):
    """Shapes TF Addons 0.23 returns (checked against it; see test_tfa_boxes.py):
    the per-box loss is tf.squeeze'd; the gradient has y_pred's shape."""
    rng = np.random.default_rng(1)
    yt = rand_boxes(rng, yt_shape[:-1])
    yp = rand_boxes(rng, yp_shape[:-1])
    obj = L.GIoULoss(reduction="none")
    loss, grad = obj.value_and_grad(yt, yp)
    assert np.shape(loss) == want
    assert grad.shape == yp_shape
    assert np.ndim(L.GIoULoss()(yt, yp)) == 0
    np.testing.assert_allclose(loss, R.giou_loss(yt, yp), rtol=1e-12)


def test_sample_weight_keras2_rank_fix():
    """TF Addons runs on Keras 2: a (B,) weight on (B, N) losses gets a trailing
    axis; a (N, 1) weight on (N,) losses loses it."""
    rng = np.random.default_rng(2)
    yt, yp = rand_boxes(rng, (2, 3)), rand_boxes(rng, (2, 3))
    per = R.giou_loss(yt, yp)
    sw = np.array([0.5, 2.0])
    got = L.GIoULoss(reduction="none")(yt, yp, sample_weight=sw)
    np.testing.assert_allclose(got, per * sw[:, None], rtol=1e-13)
    np.testing.assert_allclose(L.GIoULoss()(yt, yp, sample_weight=sw), np.mean(per * sw[:, None]), rtol=1e-13)
    yt, yp = rand_boxes(rng, 5), rand_boxes(rng, 5)
    sw = rng.uniform(size=(5, 1))
    got = L.GIoULoss(reduction="none")(yt, yp, sample_weight=sw)
    assert got.shape == (5,)
    np.testing.assert_allclose(got, R.giou_loss(yt, yp) * sw[:, 0], rtol=1e-13)


def test_integer_inputs_cast_to_float32():
    yt = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], np.int32)
    yp = np.array([[0, 0, 1, 1], [1, 1, 2, 2]], np.int64)
    loss, grad = L.GIoULoss(reduction="none").value_and_grad(yt, yp)
    assert loss.dtype == np.float32 and grad.dtype == np.float32
    np.testing.assert_allclose(loss, [0.75, 1.5])
    np.testing.assert_allclose(fastloss.giou_loss(yt.tolist(), yp.tolist()), [0.75, 1.5])


def test_functional_forms():
    rng = np.random.default_rng(4)
    yt, yp = rand_boxes(rng, 9), rand_boxes(rng, 9)
    np.testing.assert_allclose(fastloss.giou_loss(yt, yp), R.giou_loss(yt, yp), rtol=1e-12)
    np.testing.assert_allclose(fastloss.giou_loss(yt, yp, mode="iou"), R.iou_loss(yt, yp), rtol=1e-12)
    np.testing.assert_allclose(fastloss.iou_loss(yt, yp), R.iou_loss(yt, yp), rtol=1e-12)
    np.testing.assert_allclose(fastloss.diou_loss(yt, yp), R.diou_loss(yt, yp), rtol=1e-12)
    np.testing.assert_allclose(fastloss.ciou_loss(yt, yp), R.ciou_loss(yt, yp), rtol=1e-12)
    b = from_xyxy(*rand_boxes(rng, 9, "xyxy").T, "cxcywh")
    c = from_xyxy(*rand_boxes(rng, 9, "xyxy").T, "cxcywh")
    np.testing.assert_allclose(
        fastloss.ciou_loss(b, c, box_format="cxcywh", eps=1e-3), R.ciou_loss(b, c, "cxcywh", eps=1e-3), rtol=1e-12
    )
    assert fastloss.functional.giou_loss is fastloss.giou_loss


def test_iou_loss_class_is_giou_mode_iou():
    rng = np.random.default_rng(5)
    yt, yp = rand_boxes(rng, 16), rand_boxes(rng, 16)
    a = L.IoULoss().value_and_grad(yt, yp)
    b = L.GIoULoss(mode="iou").value_and_grad(yt, yp)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


# ----------------------------------------------------------------------------- degenerate boxes


DEGENERATE = {
    # (y_true, y_pred) yxyx
    "zero_area_pred": ([0, 0, 2, 2], [1, 1, 1, 1.5]),
    "zero_area_both_identical": ([1, 1, 1, 1], [1, 1, 1, 1]),
    "zero_area_both_apart": ([1, 1, 1, 1], [3, 3, 3, 3]),
    "line_boxes_identical": ([0, 1, 2, 1], [0, 1, 2, 1]),
    "inverted_pred": ([0, 0, 2, 2], [2, 2, 0, 0]),
    "inverted_both": ([2, 2, 0, 0], [3, 3, 1, 1]),
    "far_apart": ([0, 0, 1, 1], [1e6, 1e6, 1e6 + 1, 1e6 + 1]),
    "huge_and_tiny": ([0, 0, 1e6, 1e6], [5, 5, 5 + 1e-3, 5 + 1e-3]),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(DEGENERATE))
@pytest.mark.parametrize("dtype", DTYPES)
def test_degenerate_boxes_finite(mode, case, dtype):
    yt, yp = (np.array(v, dtype) for v in DEGENERATE[case])
    loss, grad = make(mode, reduction="sum").value_and_grad(yt, yp)
    assert np.isfinite(loss) and np.all(np.isfinite(grad)), (loss, grad)
    if mode in ("iou", "giou"):
        assert 0.0 <= loss <= 2.0
    elif "inverted" not in case:  # DIoU's centre term <= 1 needs proper boxes
        assert 0.0 <= loss <= 3.0
    if dtype == np.float64:
        want = ref(mode, yt, yp)
        np.testing.assert_allclose(loss, want, rtol=1e-9, atol=1e-12)


def test_degenerate_values_by_hand():
    """TF Addons' divide_no_nan: identical zero-area boxes have IoU 0, GIoU 0
    (loss 1) and no gradient; DIoU/CIoU (eps) likewise give 1; an inverted
    box has zero extent (TFA's clamp); boxes a million apart give GIoU loss
    ~2 and DIoU loss ~2 (rho2 / c2 -> 1/2 along a diagonal... here both axes)."""
    z = np.array([1.0, 1, 1, 1])
    for mode in MODES:
        loss, grad = make(mode, reduction="sum").value_and_grad(z, z)
        assert loss == 1.0
        np.testing.assert_array_equal(grad, 0.0)
    # inverted prediction inside a 2x2 box: zero extent -> iou 0; C = 4 = U -> giou 0
    np.testing.assert_allclose(L.GIoULoss()(np.array([0.0, 0, 2, 2]), np.array([2.0, 2, 0, 0])), 1.0)
    far = DEGENERATE["far_apart"]
    g = L.GIoULoss()(np.array(far[0]), np.array(far[1]))
    np.testing.assert_allclose(g, 2.0, atol=1e-11)
    # centres (0.5, 0.5) and (1e6 + .5, ...): rho2 = 2e12, c2 = 2 (1e6 + 1)^2
    d = L.DIoULoss()(np.array(far[0]), np.array(far[1]))
    np.testing.assert_allclose(d, 1.0 + 2e12 / (2 * (1e6 + 1) ** 2 + 1e-7), rtol=1e-12)


def test_ciou_zero_height_is_the_limit():
    """atan(w / h) as atan2(w, h): a zero-height box has angle pi/2 (torchvision:
    w / 0 = inf, atan(inf) = pi/2, the same), a point box 0 (torchvision: NaN)."""
    yt = np.array([0.0, 0, 2, 2])  # yxyx: w = h = 2, angle pi/4
    flat = np.array([1.0, 0, 1, 2])  # h = 0, w = 2
    loss, grad = L.CIoULoss(reduction="sum").value_and_grad(yt, flat)
    d, iou, dl = R._diou_parts(yt, flat, "yxyx", 1e-7)
    v = 4 / np.pi**2 * (np.pi / 4 - np.pi / 2) ** 2
    np.testing.assert_allclose(loss, dl + v / (1 - iou + v + 1e-7) * v, rtol=1e-12)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("mode", MODES)
def test_nan_stays_in_its_row(mode):
    rng = np.random.default_rng(6)
    yt, yp = rand_boxes(rng, 10), rand_boxes(rng, 10)
    yp[3, 2] = np.nan
    yt[7, 0] = np.nan
    loss, grad = make(mode, reduction="none").value_and_grad(yt, yp)
    assert np.isnan(loss[3]) and np.isnan(loss[7])
    ok = np.ones(10, bool)
    ok[[3, 7]] = False
    np.testing.assert_allclose(loss[ok], ref(mode, yt[ok], yp[ok]), rtol=1e-12)
    assert np.all(np.isfinite(grad[ok]))
    assert np.isnan(make(mode)(yt, yp))


# ----------------------------------------------------------------------------- errors


def test_errors_name_the_argument():
    gl = L.GIoULoss()
    with pytest.raises(ValueError, match="`y_pred` must hold boxes of 4"):
        gl(np.zeros((3, 4)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="`y_true` must hold boxes of 4"):
        gl(np.zeros((3, 5)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="`y_pred` must hold boxes of 4"):
        gl(np.zeros(4), np.float32(1.0))
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(3, 4\).*broadcast"):
        gl(np.zeros((5, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="`mode`"):
        L.GIoULoss(mode="diou")
    with pytest.raises(ValueError, match="`box_format`"):
        L.GIoULoss(box_format="xxyy")
    with pytest.raises(ValueError, match="`box_format`"):
        L.CIoULoss(box_format=None)
    with pytest.raises(ValueError, match="`reduction`"):
        L.DIoULoss(reduction="avg")
    with pytest.raises(ValueError, match="`eps`"):
        L.CIoULoss(eps=-1.0)
    with pytest.raises(ValueError, match="`sample_weight`"):
        gl(np.zeros((5, 4)), np.zeros((5, 4)), sample_weight=np.ones(3))
    with pytest.raises(TypeError, match="`y_true`"):
        gl(np.array(["a", "b", "c", "d"]), np.zeros(4))
    with pytest.raises(ValueError, match="grad_hess"):
        gl.grad_hess(np.zeros((2, 4)), np.zeros((2, 4)))


def test_grad_out_checked_and_used():
    rng = np.random.default_rng(8)
    yt, yp = rand_boxes(rng, 6, dtype=np.float32), rand_boxes(rng, 6, dtype=np.float32)
    gl = L.GIoULoss()
    l0, g0 = gl.value_and_grad(yt, yp)
    buf = np.full_like(yp, 7.0)
    l1, g1 = gl.value_and_grad(yt, yp, grad_out=buf)
    assert g1 is buf and l1 == l0
    np.testing.assert_array_equal(buf, g0)
    one = np.full(4, 7.0, np.float32)
    _, g2 = gl.value_and_grad(yt, yp[0], grad_out=one)
    assert g2 is one
    np.testing.assert_allclose(one, gl.value_and_grad(yt, np.tile(yp[0], (6, 1)))[1].sum(0), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="grad_out"):
        gl.value_and_grad(yt, yp, grad_out=np.empty((6, 4), np.float64))


# ----------------------------------------------------------------------------- layouts, dtypes, inputs


@pytest.mark.parametrize("mode", MODES)
def test_noncontiguous_inputs_and_not_modified(mode):
    rng = np.random.default_rng(9)
    yt = np.asfortranarray(rand_boxes(rng, 20))
    big = rand_boxes(rng, 40)
    yp = big[::2]
    yt0, big0 = yt.copy(), big.copy()
    obj = make(mode)
    l1, g1 = obj.value_and_grad(yt, yp)
    l2, g2 = obj.value_and_grad(np.ascontiguousarray(yt), np.ascontiguousarray(yp))
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(yt, yt0)
    np.testing.assert_array_equal(big, big0)
    # y_pred's columns in reverse order, read through a negative stride
    np.testing.assert_allclose(obj(yt[:, ::-1][:, ::-1], yp), l1, rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_follows_y_pred(dtype):
    rng = np.random.default_rng(10)
    yt = rand_boxes(rng, 5, dtype=np.float64)
    yp = rand_boxes(rng, 5, dtype=dtype)
    for mode in MODES:
        loss, grad = make(mode).value_and_grad(yt, yp)
        assert loss.dtype == dtype and grad.dtype == dtype
    assert L.GIoULoss(dtype="float64")(yt.astype(np.float32), yp.astype(np.float32)).dtype == np.float64


def test_empty_batch():
    for mode in MODES:
        loss, grad = make(mode).value_and_grad(np.zeros((0, 4)), np.zeros((0, 4)))
        assert loss == 0.0 and grad.shape == (0, 4)
        assert make(mode, reduction="none")(np.zeros((0, 4)), np.zeros((0, 4))).shape == (0,)
        loss, grad = make(mode).value_and_grad(np.zeros((0, 4)), np.zeros(4))
        np.testing.assert_array_equal(grad, 0.0)


def test_config_round_trip():
    gl = L.GIoULoss(mode="iou", box_format="xywh", reduction="sum")
    cfg = gl.get_config()
    assert cfg["mode"] == "iou" and cfg["box_format"] == "xywh" and cfg["reduction"] == "sum"
    assert L.GIoULoss.from_config(cfg).get_config() == cfg
    c = L.CIoULoss(eps=1e-5, box_format="cxcywh")
    assert L.CIoULoss.from_config(c.get_config()).get_config() == c.get_config()
    assert "box_format='cxcywh'" in repr(c)


# ----------------------------------------------------------------------------- parallel path


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_parallel_path(mode, dtype):
    """Enough boxes for the prange path (rows split across threads, blocks of
    rows inside each), per-row weights; a single broadcast predicted box sums
    its gradient across the chunks."""
    rng = np.random.default_rng(13)
    n = 50_003
    yt = rand_boxes(rng, n, "xywh", dtype)
    yp = rand_boxes(rng, n, "xywh", dtype)
    sw = rng.uniform(0.5, 1.5, n).astype(dtype)
    obj = make(mode, "xywh", "sum_over_batch_size")
    loss, grad = obj.value_and_grad(yt, yp, sample_weight=sw)
    per = ref(mode, yt, yp, "xywh")
    rt = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(loss, R.reduce(per, sw, "sum_over_batch_size"), rtol=rt)
    none = make(mode, "xywh", "none")(yt, yp)
    np.testing.assert_allclose(none, per, rtol=5 * rt, atol=5 * rt)
    _, g1 = obj.value_and_grad(yt, yp[0], sample_weight=sw)
    _, g2 = obj.value_and_grad(yt, np.tile(yp[0], (n, 1)), sample_weight=sw)
    np.testing.assert_allclose(g1, g2.astype(np.float64).sum(axis=0), rtol=20 * rt, atol=1e-6)
    # serial and parallel paths agree row by row
    _, gs = obj.value_and_grad(yt[:1000], yp[:1000], sample_weight=sw[:1000])
    _, gp = make(mode, "xywh", "sum").value_and_grad(yt, yp, sample_weight=sw)
    np.testing.assert_allclose(gs * 1000, gp[:1000], rtol=5 * rt, atol=1e-6)


# ----------------------------------------------------------------------------- property test

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

# Coordinates drawn from a mix of a small integer grid (ties, zero extents,
# identical and inverted boxes) and floats of very different sizes. Not below
# 1e-3 in magnitude: boxes whose areas underflow (extents ~1e-154 in float64)
# overflow the reciprocals (documented in numba_cpu/boxes.py).
_coord = st.one_of(
    st.integers(-2, 3).map(float),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) >= 1e-3),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)), elements=_coord),
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(4)), elements=_coord),
    st.sampled_from(MODES),
    st.sampled_from(FORMATS),
)
def test_any_finite_boxes(yt, yp, mode, box_format):
    """Any finite boxes: finite loss and gradient, the reference's values, the
    TFA bounds for IoU/GIoU, and y_true/y_pred symmetry of the value."""
    n = min(len(yt), len(yp))
    yt, yp = yt[:n], yp[:n]
    obj = make(mode, box_format, "none")
    loss, grad = obj.value_and_grad(yt, yp)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(loss, ref(mode, yt, yp, box_format), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(obj(yp, yt), loss, rtol=1e-9, atol=1e-9)
    if mode in ("iou", "giou"):
        assert np.all((loss >= 0) & (loss <= 2 + 1e-12))
