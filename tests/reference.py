"""Float64 NumPy reference implementations (slow, obvious, independent).

Written from the Keras 3.15 / TF Addons 0.23 formulas (see /work/shared/ANCHORS.md),
NOT from fastloss' kernels. One function per registry ``reference=`` name, each
returning the *per-sample* loss (the class axis reduced), plus ``reduce``: Keras'
``reduce_weighted_values`` (mask -> sample weight merge, rank fix, reduction).

Everything is computed in float64 whatever the input dtype.
"""

import numpy as np

EPS = 1e-7


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def squeeze_or_expand(x1, x2, expand_rank_1=True):
    """keras.src.losses.loss.squeeze_or_expand_to_same_rank."""
    x1, x2 = np.asarray(x1), np.asarray(x2)
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = np.expand_dims(x2, -1)
        else:
            x1 = np.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = np.expand_dims(x1, -1)
        else:
            x2 = np.squeeze(x2, -1)
    return x1, x2


def _dense(y_true, y_pred, axis):
    y, p = squeeze_or_expand(_f64(y_true), _f64(y_pred))
    return np.moveaxis(y, axis, -1), np.moveaxis(p, axis, -1)


def _sigmoid(x):
    x = _f64(x)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    e = np.exp(x[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def _logsumexp(x):
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    return (m + np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)))[..., 0]


def _softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis=-1, keepdims=True)


def _bce_elem(y, p):
    p = np.clip(p, EPS, 1.0 - EPS)
    return -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def _bce_logits_elem(y, x):
    return np.maximum(x, 0.0) - x * y + np.log1p(np.exp(-np.abs(x)))


# --------------------------------------------------------------------------- losses


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y, p = _dense(y_true, y_pred, axis)
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    e = _bce_logits_elem(y, p) if from_logits else _bce_elem(y, p)
    return e.mean(axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y, p = _dense(y_true, y_pred, axis)
    C = p.shape[-1]
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / C
    if from_logits:
        return y.sum(-1) * _logsumexp(p) - (y * p).sum(-1)
    q = p / p.sum(axis=-1, keepdims=True)
    q = np.clip(q, EPS, 1.0 - EPS)
    return -(y * np.log(q)).sum(-1)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    p = np.moveaxis(_f64(y_pred), axis, -1)
    lab = np.asarray(y_true)
    if lab.ndim == p.ndim and lab.shape[axis] == 1:
        lab = np.squeeze(lab, axis=axis)
    lab = _f64(lab)
    assert lab.shape == p.shape[:-1], (lab.shape, p.shape)
    valid = np.ones(lab.shape, bool) if ignore_class is None else lab != ignore_class
    li = np.where(valid, lab, 0).astype(np.int64)
    if from_logits:
        picked = np.take_along_axis(p, li[..., None], -1)[..., 0]
        out = _logsumexp(p) - picked
    else:
        c = np.clip(p, EPS, 1.0 - EPS)
        picked = np.take_along_axis(c, li[..., None], -1)[..., 0]
        out = np.log(c.sum(-1)) - np.log(picked)
    return np.where(valid, out, 0.0)


def sparse_mask(y_true, y_pred, ignore_class, axis=-1):
    """Keras' mask for SCCE with ignore_class (True = counted)."""
    lab = np.asarray(y_true)
    if lab.ndim == np.ndim(y_pred) and lab.shape[axis] == 1:
        lab = np.squeeze(lab, axis=axis)
    return lab != ignore_class


def binary_focal_crossentropy(
    y_true,
    y_pred,
    apply_class_balancing=False,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
):
    y, p = _dense(y_true, y_pred, axis)
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        # Keras 3 on TensorFlow: its sigmoid keeps the logits and the
        # cross-entropy is taken from them (no clip)
        bce = _bce_logits_elem(y, p)
        p = _sigmoid(p)
    else:
        bce = _bce_elem(y, p)
    p_t = y * p + (1.0 - y) * (1.0 - p)
    f = np.power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        f = (y * alpha + (1.0 - y) * (1.0 - alpha)) * f
    return f.mean(axis=-1)


def categorical_focal_crossentropy(
    y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1
):
    y, p = _dense(y_true, y_pred, axis)
    C = p.shape[-1]
    if label_smoothing:
        y = y * (1.0 - label_smoothing) + label_smoothing / C
    if from_logits:
        p = _softmax(p)
    q = p / p.sum(axis=-1, keepdims=True)
    q = np.clip(q, EPS, 1.0 - EPS)
    return (alpha * np.power(1.0 - q, gamma) * (-y * np.log(q))).sum(-1)


def sigmoid_focal_crossentropy(y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False):
    """TF Addons: Keras-2 binary_crossentropy (note +eps inside the logs), SUM over last axis."""
    y, p = squeeze_or_expand(_f64(y_true), _f64(y_pred))
    if from_logits:
        ce = _bce_logits_elem(y, p)
        prob = _sigmoid(p)
    else:
        pc = np.clip(p, EPS, 1.0 - EPS)
        ce = -(y * np.log(pc + EPS) + (1.0 - y) * np.log(1.0 - pc + EPS))
        prob = p
    p_t = y * prob + (1.0 - y) * (1.0 - prob)
    a = (y * alpha + (1.0 - y) * (1.0 - alpha)) if alpha else 1.0
    m = np.power(1.0 - p_t, gamma) if gamma else 1.0
    return (a * m * ce).sum(axis=-1)


def kl_divergence(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    y = np.clip(y, EPS, 1.0)
    p = np.clip(p, EPS, 1.0)
    return (y * np.log(y / p)).sum(-1)


def poisson(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return (p - y * np.log(p + EPS)).mean(-1)


# --------------------------------------------------------------------------- reduction


def reduce(values, sample_weight=None, reduction="sum_over_batch_size", mask=None):
    """keras.src.losses.loss.reduce_weighted_values, in float64.

    Differences kept on purpose (fastloss' documented choice): an empty batch
    reduces to 0.0 for the reducing modes.
    """
    if reduction is None:
        reduction = "none"
    values = _f64(values)
    sw = None if sample_weight is None else _f64(sample_weight)
    if mask is not None:
        mask = np.asarray(mask, bool)
        if reduction in ("mean", "sum_over_batch_size"):
            total = float(mask.size)
            valid = float(mask.sum())
            mw = total / valid if valid else 0.0
            fm = np.where(mask, mw, 0.0)
        else:
            fm = mask.astype(np.float64)
        if sw is not None:
            fm, sw = squeeze_or_expand(fm, sw)
            sw = sw * fm
        else:
            sw = fm
    raw = values
    if sw is not None:
        raw, sw = squeeze_or_expand(values, sw)
        values = raw * sw
    if reduction == "none" or values.ndim == 0:
        return values
    if values.size == 0:
        return np.float64(0.0)
    total = values.sum()
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sw is not None:
        # the ratio is the same for the weights times a power of two (exact):
        # scaled so that the largest is in [0.5, 1), products with subnormal
        # weights do not underflow (hypothesis: w = 5e-324, 0.693 * w == w)
        m = float(np.max(np.abs(sw)))
        if 0.0 < m < np.inf:
            sw = np.ldexp(sw, -np.frexp(m)[1])
            total = (raw * sw).sum()
        div = sw.sum()
    else:
        div = float(values.size)
    return total / div if div != 0 else np.float64(0.0)


def class_weight_to_sample_weight(class_weight, y_true, sparse):
    """keras fit's mapping: sparse labels directly; dense: argmax (last dim != 1) or squeeze; round."""
    y = np.asarray(y_true)
    if sparse:
        lab = y  # caller passes one label per loss element
    elif y.shape[-1] != 1:
        lab = np.argmax(y, axis=-1)
    else:
        lab = y[..., 0]
    lab = np.round(lab).astype(np.int64)
    if isinstance(class_weight, dict):
        return np.vectorize(lambda k: float(class_weight.get(int(k), 1.0)), otypes=[float])(lab)
    cw = _f64(class_weight)
    return cw[lab]


# --------------------------------------------------------------------------- finite differences


def fd_grad(f, x, h=1e-6):
    """Central finite differences of scalar f at float64 array x."""
    x = _f64(x).copy()
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        fp = float(np.sum(f(x)))
        x[i] = old - h
        fm = float(np.sum(f(x)))
        x[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


REFERENCES = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_focal_crossentropy": binary_focal_crossentropy,
    "categorical_focal_crossentropy": categorical_focal_crossentropy,
    "sigmoid_focal_crossentropy": sigmoid_focal_crossentropy,
    "kl_divergence": kl_divergence,
    "poisson": poisson,
}


# =========================================================================== regression family
# Regression, similarity and hinge losses (Keras 3.15 keras/src/losses/losses.py),
# float64, per-sample (mean over the last axis unless noted). Independent of the
# kernels: written from the Keras formulas with NumPy.


def mean_squared_error(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return ((y - p) ** 2).mean(-1)


def mean_absolute_error(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return np.abs(y - p).mean(-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return 100.0 * (np.abs(y - p) / np.maximum(np.abs(y), EPS)).mean(-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return ((np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum(y, EPS))) ** 2).mean(-1)


def huber(y_true, y_pred, delta=1.0):
    y, p = _dense(y_true, y_pred, -1)
    e = p - y
    a = np.abs(e)
    return np.where(a <= delta, 0.5 * e * e, delta * a - 0.5 * delta * delta).mean(-1)


def _log_cosh_elem(x):
    """log(cosh(x)) to float64 precision: -log1p(-tanh(x)**2) / 2 for small |x|
    (no cancellation), |x| + log1p(exp(-2|x|)) - log 2 otherwise (no overflow)."""
    a = np.abs(x)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        small = -0.5 * np.log1p(-np.tanh(a) ** 2)
        big = a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)
    return np.where(a < 0.5, small, big)


def log_cosh(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return _log_cosh_elem(p - y).mean(-1)


def _l2_normalize(x):
    """keras.ops.nn.normalize: x * min(rsqrt(sum x**2), 1/eps) (zero vector -> 0)."""
    n = np.sqrt((x * x).sum(-1, keepdims=True))
    return x / np.maximum(n, EPS)


def cosine_similarity(y_true, y_pred, axis=-1):
    y, p = _dense(y_true, y_pred, axis)
    return -(_l2_normalize(y) * _l2_normalize(p)).sum(-1)


def _hinge_labels(y):
    """convert_binary_labels_to_hinge: 2y - 1 when EVERY label is 0 or 1."""
    return 2.0 * y - 1.0 if np.all((y == 0) | (y == 1)) else y


def hinge(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return np.maximum(1.0 - _hinge_labels(y) * p, 0.0).mean(-1)


def squared_hinge(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    return (np.maximum(1.0 - _hinge_labels(y) * p, 0.0) ** 2).mean(-1)


def categorical_hinge(y_true, y_pred):
    y, p = _dense(y_true, y_pred, -1)
    pos = (y * p).sum(-1)
    neg = ((1.0 - y) * p).max(-1)
    return np.maximum(neg - pos + 1.0, 0.0)


REFERENCES.update(
    mean_squared_error=mean_squared_error,
    mean_absolute_error=mean_absolute_error,
    mean_absolute_percentage_error=mean_absolute_percentage_error,
    mean_squared_logarithmic_error=mean_squared_logarithmic_error,
    huber=huber,
    log_cosh=log_cosh,
    cosine_similarity=cosine_similarity,
    hinge=hinge,
    squared_hinge=squared_hinge,
    categorical_hinge=categorical_hinge,
)


# =========================================================================== boxes
# IoU / GIoU: TF Addons 0.23 ``giou_loss`` (tensorflow_addons/losses/giou_loss.py);
# DIoU / CIoU: torchvision ``distance_box_iou_loss`` / ``complete_box_iou_loss``
# (eps = 1e-7). Float64, broadcast like TF, per-box loss squeezed like TFA's
# ``tf.squeeze``. fastloss' documented choices beyond the originals: extents
# clamped at 0 in every mode, CIoU's atan(w / h) as arctan2(w, h).


def box_corners(boxes, box_format="yxyx"):
    """(x1, y1, x2, y2) in float64 from boxes in ``box_format``."""
    b = _f64(boxes)
    u0, u1, u2, u3 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    if box_format == "yxyx":
        return u1, u0, u3, u2
    if box_format == "xyxy":
        return u0, u1, u2, u3
    if box_format == "xywh":
        return u0, u1, u0 + u2, u1 + u3
    if box_format == "cxcywh":
        return u0 - 0.5 * u2, u1 - 0.5 * u3, u0 + 0.5 * u2, u1 + 0.5 * u3
    raise ValueError(box_format)


def _div_no_nan(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


def _box_parts(y_true, y_pred, box_format):
    x1, y1, x2, y2 = box_corners(y_pred, box_format)
    X1, Y1, X2, Y2 = box_corners(y_true, box_format)
    w, h = np.maximum(0.0, x2 - x1), np.maximum(0.0, y2 - y1)
    W, H = np.maximum(0.0, X2 - X1), np.maximum(0.0, Y2 - Y1)
    iw = np.maximum(0.0, np.minimum(x2, X2) - np.maximum(x1, X1))
    ih = np.maximum(0.0, np.minimum(y2, Y2) - np.maximum(y1, Y1))
    inter = iw * ih
    union = w * h + W * H - inter
    dcw = np.maximum(x2, X2) - np.minimum(x1, X1)  # torchvision's enclosure (DIoU diagonal)
    dch = np.maximum(y2, Y2) - np.minimum(y1, Y1)
    return dict(x1=x1, y1=y1, x2=x2, y2=y2, X1=X1, Y1=Y1, X2=X2, Y2=Y2, w=w, h=h, W=W, H=H,
                inter=inter, union=union, cw=np.maximum(0.0, dcw), ch=np.maximum(0.0, dch), dcw=dcw, dch=dch)


def _tfa_squeeze(v):
    v = np.asarray(v)
    return np.squeeze(v) if v.ndim else v


def giou_loss(y_true, y_pred, mode="giou", box_format="yxyx"):
    d = _box_parts(y_true, y_pred, box_format)
    iou = _div_no_nan(d["inter"], d["union"])
    if mode == "iou":
        return _tfa_squeeze(1.0 - iou)
    c = d["cw"] * d["ch"]
    return _tfa_squeeze(1.0 - (iou - _div_no_nan(c - d["union"], c)))


def iou_loss(y_true, y_pred, box_format="yxyx"):
    return giou_loss(y_true, y_pred, mode="iou", box_format=box_format)


def _diou_parts(y_true, y_pred, box_format, eps):
    d = _box_parts(y_true, y_pred, box_format)
    iou = d["inter"] / (d["union"] + eps)
    diag = d["dcw"] ** 2 + d["dch"] ** 2 + eps
    xp, yp = (d["x1"] + d["x2"]) / 2, (d["y1"] + d["y2"]) / 2
    xg, yg = (d["X1"] + d["X2"]) / 2, (d["Y1"] + d["Y2"]) / 2
    dist = (xp - xg) ** 2 + (yp - yg) ** 2
    return d, iou, 1.0 - iou + dist / diag


def diou_loss(y_true, y_pred, box_format="yxyx", eps=EPS):
    return _tfa_squeeze(_diou_parts(y_true, y_pred, box_format, eps)[2])


def ciou_loss(y_true, y_pred, box_format="yxyx", eps=EPS, alpha=None):
    """``alpha``: a fixed value (array) instead of v / (1 - iou + v + eps), to
    differentiate the loss the way torchvision does (alpha under no_grad)."""
    d, iou, dl = _diou_parts(y_true, y_pred, box_format, eps)
    v = (4 / np.pi**2) * (np.arctan2(d["W"], d["H"]) - np.arctan2(d["w"], d["h"])) ** 2
    a = v / (1.0 - iou + v + eps) if alpha is None else alpha
    return _tfa_squeeze(dl + a * v)


def ciou_alpha(y_true, y_pred, box_format="yxyx", eps=EPS):
    d, iou, _ = _diou_parts(y_true, y_pred, box_format, eps)
    v = (4 / np.pi**2) * (np.arctan2(d["W"], d["H"]) - np.arctan2(d["w"], d["h"])) ** 2
    return v / (1.0 - iou + v + eps)


REFERENCES.update(giou_loss=giou_loss, iou_loss=iou_loss, diou_loss=diou_loss, ciou_loss=ciou_loss)
# ---------------------------------------------------------------------------
# Triplet losses: TF Addons 0.23 ``triplet.py``/``metric_learning.py`` followed
# literally (the N^2 x N tiling of semi-hard mining included), in float64.
# Slow (O(N^3) memory): for the small batches of the tests. Returns the batch
# loss exactly as TFA would, NaN for "no positive pair" included.
# ---------------------------------------------------------------------------


def triplet_distances(emb, distance_metric="L2"):
    """The pairwise distance matrix of TFA's metrics; L2 from the differences
    (exact, unlike the Gram formula), diagonal 0 for L2/squared-L2."""
    x = _f64(emb)
    if callable(distance_metric):
        return _f64(distance_metric(x))
    if distance_metric == "precomputed":
        return x
    if distance_metric in ("L2", "squared-L2"):
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        d = d2 if distance_metric == "squared-L2" else np.sqrt(d2)
        np.fill_diagonal(d, 0.0)
        return d
    if distance_metric == "angular":
        n = x / np.sqrt(np.maximum((x * x).sum(1, keepdims=True), 1e-12))
        return np.maximum(1.0 - n @ n.T, 0.0)
    raise ValueError(distance_metric)


def _masked_maximum(data, mask):
    mins = data.min(1, keepdims=True)
    return ((data - mins) * mask).max(1, keepdims=True) + mins


def _masked_minimum(data, mask):
    maxs = data.max(1, keepdims=True)
    return ((data - maxs) * mask).min(1, keepdims=True) + maxs


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def triplet_semihard(labels, emb, margin=1.0, distance_metric="L2", soft=False):
    """tfa.losses.triplet_semihard_loss (``soft``: fastloss' softplus variant)."""
    lab = np.asarray(labels).reshape(-1, 1)
    pdist = triplet_distances(emb, distance_metric)
    B = lab.shape[0]
    adjacency = lab == lab.T
    adjacency_not = ~adjacency
    pdist_tile = np.tile(pdist, (B, 1))
    mask = np.tile(adjacency_not, (B, 1)) & (pdist_tile > pdist.T.reshape(-1, 1))
    mask_final = (mask.astype(np.float64).sum(1, keepdims=True) > 0.0).reshape(B, B).T
    neg_out = _masked_minimum(pdist_tile, mask.astype(np.float64)).reshape(B, B).T
    neg_in = np.tile(_masked_maximum(pdist, adjacency_not.astype(np.float64)), (1, B))
    semi = np.where(mask_final, neg_out, neg_in)
    mask_pos = adjacency.astype(np.float64) - np.eye(B)
    with np.errstate(invalid="ignore", divide="ignore"):
        if soft:
            per = _softplus(pdist - semi) * mask_pos
        else:
            per = np.maximum((margin + pdist - semi) * mask_pos, 0.0)
        return per.sum() / mask_pos.sum()


def triplet_hard(labels, emb, margin=1.0, distance_metric="L2", soft=False):
    """tfa.losses.triplet_hard_loss."""
    lab = np.asarray(labels).reshape(-1, 1)
    pdist = triplet_distances(emb, distance_metric)
    B = lab.shape[0]
    adjacency = lab == lab.T
    hard_neg = _masked_minimum(pdist, (~adjacency).astype(np.float64))
    hard_pos = _masked_maximum(pdist, adjacency.astype(np.float64) - np.eye(B))
    if soft:
        per = _softplus(hard_pos - hard_neg)
    else:
        per = np.maximum(hard_pos - hard_neg + margin, 0.0)
    return per.mean()


def triplet_batch_all(labels, emb, margin=1.0, distance_metric="L2", soft=False):
    """fastloss' batch-all loss: every (a, p, n); hinge: sum / #(l > 0) (0 if
    none); soft: mean of softplus(d_ap - d_an) over all valid triplets."""
    lab = np.asarray(labels).reshape(-1)
    d = triplet_distances(emb, distance_metric)
    B = lab.shape[0]
    same = lab[:, None] == lab[None, :]
    pos = same & ~np.eye(B, dtype=bool)
    valid = pos[:, :, None] & ~same[:, None, :]  # [a, p, n]
    z = d[:, :, None] - d[:, None, :]
    if soft:
        n = valid.sum()
        return _softplus(z)[valid].sum() / n if n else 0.0
    l = np.maximum(margin + z, 0.0) * valid
    n = (l > 0).sum()
    return l.sum() / n if n else 0.0


REFERENCES.update(
    triplet_semihard=triplet_semihard,
    triplet_hard=triplet_hard,
    triplet_batch_all=triplet_batch_all,
)
