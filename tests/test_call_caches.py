"""The per-call shortcuts of the Python layer (small calls are dominated by it):
the cached kernel parameter vectors (``_core._prm``), the cached loss objects
of the functional API, the fast "not set" answer for FASTLOSS_BACKEND and the
validators' fast paths. Each must give the results of the slow path: a cache
keyed too coarsely would hand one call's parameters to another."""

import numpy as np
import pytest

import fastloss
from fastloss import _backend, _core, functional
from fastloss import _validate as V
from fastloss.losses import CategoricalCrossentropy, Huber

import reference as ref

F32 = np.dtype(np.float32)


def _data(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape) * 2.0


def test_prm_is_a_new_array_each_call():
    a = _core._prm(0.25, 3, {"label_smoothing": 0.1}, None, F32)
    b = _core._prm(0.5, 3, {"label_smoothing": 0.1}, None, F32)
    assert a is not b and a[0] == np.float32(0.25) and b[0] == np.float32(0.5)
    np.testing.assert_array_equal(a[1:], b[1:])
    a[:] = 7.0  # a caller writing into its vector does not reach the next call's
    c = _core._prm(0.75, 3, {"label_smoothing": 0.1}, None, F32)
    np.testing.assert_array_equal(c[1:], b[1:])
    d = _core._prm(0.75, 3, {"label_smoothing": 0.1}, None, np.dtype(np.float64))  # same items, float64
    assert d.dtype == np.float64 and d[1] == 1e-7


@pytest.mark.parametrize(
    "params, K, ignore_class, dt, moved",
    [
        ({"label_smoothing": 0.2, "ls_per_class": True}, 5, None, F32, False),
        ({"alpha": (0.1, 0.2, 0.7), "gamma": 1.5}, 3, None, np.dtype(np.float64), False),
        ({"eps": 1e-3}, 4, 2, F32, False),
        (None, 1, None, F32, True),
    ],
)
def test_prm_matches_an_uncached_build(params, K, ignore_class, dt, moved):
    _core._PRM_CACHE.clear()
    for _ in range(2):  # the first call builds and caches, the second reads the cache
        got = _core._prm(0.125, K, params, ignore_class, dt, moved)
        want = _core._prm_build(K, params, ignore_class, dt, moved)
        want[0] = 0.125
        assert got.dtype == dt
        np.testing.assert_array_equal(got, want)


def test_prm_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(_core, "_PRM_CACHE_MAX", 8)
    _core._PRM_CACHE.clear()
    for k in range(1, 30):
        _core._prm(1.0, k, {"label_smoothing": 0.1, "ls_per_class": True}, None, F32)
        assert len(_core._PRM_CACHE) <= 8


def test_prm_unhashable_parameter_is_not_cached():
    n = len(_core._PRM_CACHE)
    p = _core._prm(1.0, 2, {"eps": 1e-7, "extra": [1, 2]}, None, F32)
    assert p[1] == np.float32(1e-7) and len(_core._PRM_CACHE) == n


def test_label_smoothing_follows_the_class_count_of_each_call():
    """Label smoothing's per-class share is ls / K: one parameter dict, two
    class counts in a row, each against the float64 reference."""
    loss = CategoricalCrossentropy(label_smoothing=0.3, reduction="none")
    rng = np.random.default_rng(1)
    for K in (3, 5, 3):
        y = np.eye(K)[rng.integers(0, K, 6)]
        p = rng.random((6, K)) + 0.05
        np.testing.assert_allclose(
            loss(y, p.astype(np.float32)), ref.categorical_crossentropy(y, p, label_smoothing=0.3), rtol=2e-5
        )


def test_a_changed_attribute_changes_the_next_call():
    """Loss objects rebuild their parameters every call: an attribute changed
    after construction is used (no cache keyed on the object)."""
    y, p = _data((16, 4))
    h = Huber(reduction="none")
    for delta in (1.0, 0.3, 2.5, 1.0):
        h.delta = delta
        np.testing.assert_allclose(h(y, p), ref.huber(y, p, delta=delta), rtol=1e-12)


def test_functional_objects_follow_their_arguments():
    y, p = _data((8, 3), seed=2)
    for delta in (1.0, 0.5, 2.0, 0.5):
        np.testing.assert_allclose(fastloss.huber(y, p, delta=delta), ref.huber(y, p, delta=delta), rtol=1e-12)
    yc = np.eye(3)[[0, 2, 1, 1, 0, 2, 2, 0]]
    pc = np.abs(p) + 0.1
    for ls in (0.0, 0.2):
        np.testing.assert_allclose(
            fastloss.categorical_crossentropy(yc, pc, label_smoothing=ls),
            ref.categorical_crossentropy(yc, pc, label_smoothing=ls),
            rtol=1e-12,
        )


def test_functional_unhashable_argument_runs_uncached():
    y = np.eye(3)[[0, 2, 1]]
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    n = len(functional._OBJECTS)
    for alpha in ([0.2, 0.3, 0.5], np.array([0.5, 0.25, 0.25])):
        got = fastloss.categorical_focal_crossentropy(y, p, alpha=alpha)
        np.testing.assert_allclose(got, ref.categorical_focal_crossentropy(y, p, alpha=list(alpha)), rtol=1e-12)
    assert len(functional._OBJECTS) == n


def test_functional_bad_argument_still_raises_every_time():
    y, p = _data((4, 2))
    for _ in range(2):
        with pytest.raises(ValueError, match="delta"):
            fastloss.huber(y, p, delta=-1.0)


def test_functional_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(functional, "_OBJECTS_MAX", 4)
    functional._OBJECTS.clear()
    y, p = _data((4, 2))
    for k in range(12):
        fastloss.huber(y, p, delta=1.0 + k)
        assert len(functional._OBJECTS) <= 4


@pytest.mark.parametrize("environ_data", ["fast", "missing"])
def test_env_variable_set_and_removed_after_import(monkeypatch, environ_data):
    """FASTLOSS_BACKEND is read at each call; also where ``os.environ`` has no
    ``_data`` mapping to ask first (another Python)."""
    if environ_data == "missing":
        monkeypatch.setattr(_backend, "_ENVIRON_DATA", None)
    monkeypatch.delenv("FASTLOSS_BACKEND", raising=False)
    assert _backend._explicit() is None
    monkeypatch.setenv("FASTLOSS_BACKEND", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        fastloss.huber([1.0], [0.5])
    monkeypatch.delenv("FASTLOSS_BACKEND")
    assert _backend._explicit() is None
    np.testing.assert_allclose(fastloss.huber([1.0], [0.5]), 0.125)


@pytest.mark.parametrize("dt", ["float16", "float32", "float64", "int32", "bool"])
def test_compute_dtype_fast_path_matches_the_general_rule(dt):
    class Tensor:  # another library's array: only a dtype attribute, the general path
        dtype = np.dtype(dt)

    want = np.dtype(dt) if dt in ("float32", "float64") else F32
    assert V.compute_dtype(np.zeros(3, dt)) == want
    assert V.compute_dtype(Tensor()) == want


def test_validator_fast_paths_return_inputs_untouched_or_convert():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert V.as_float(a, "y_pred", F32) is a
    assert V.as_float(a, "y_pred", np.dtype(np.float64)).dtype == np.float64
    assert V.as_real(a, "y_true") is a
    assert V.as_real(a.astype(np.float16), "y_true").dtype == np.float32
    for axis, ndim, want in ((-1, 2, 1), (0, 3, 0), (2, 3, 2), (-3, 3, 0)):
        assert V.check_axis(axis, ndim) == want
    for axis in (2, -3):
        with pytest.raises(ValueError, match="out of range"):
            V.check_axis(axis, 2)
    with pytest.raises(ValueError, match="scalar"):
        V.check_axis(0, 0)
    with pytest.raises(TypeError, match="int"):
        V.check_axis(True, 2)


# ---- class weights: the dense table, its cache, the label mapping ------------------


def _cw_reference(class_weight, labels):
    """Keras fit's lookup, label by label: classes not listed weigh 1."""
    return np.array([float(class_weight.get(int(k), 1.0)) for k in labels])


@pytest.mark.parametrize(
    "class_weight",
    [
        {0: 0.5, 3: 2.0},  # a dense table; labels above its last key
        {2: 4.0},
        {1: 3.0, 7: 0.25, 1000: 9.0},
        {-1: 7.0, 2: 2.0},  # a negative key: the sorted-keys search
        {1 << 20: 5.0, 1: 2.0},  # a key too large for a table: the search
    ],
)
def test_class_weight_rows_match_a_lookup(class_weight):
    rng = np.random.default_rng(3)
    labels = rng.integers(-3, 12, 500).astype(np.int64)
    labels[:4] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, 1 << 20, 1000]
    for _ in range(2):  # built, then from the cache
        got = V.class_weight_rows(class_weight, labels, F32)
        assert got.dtype == F32 and got.shape == labels.shape
        np.testing.assert_array_equal(got, _cw_reference(class_weight, labels).astype(np.float32))


def test_class_weight_table_follows_the_dict_contents():
    """The cache is keyed by the items: another dict, or the same dict changed
    in place, gets its own weights."""
    labels = np.array([0, 1, 2, 1], np.int64)
    cw = {1: 3.0}
    np.testing.assert_array_equal(V.class_weight_rows(cw, labels, F32), [1, 3, 1, 3])
    np.testing.assert_array_equal(V.class_weight_rows({1: 5.0}, labels, F32), [1, 5, 1, 5])
    cw[2] = 0.5
    np.testing.assert_array_equal(V.class_weight_rows(cw, labels, F32), [1, 3, 0.5, 3])
    cw[1] = 2.0
    np.testing.assert_array_equal(V.class_weight_rows(cw, labels, F32), [1, 2, 0.5, 2])
    got64 = V.class_weight_rows(cw, labels, np.dtype(np.float64))  # the same items in another dtype
    assert got64.dtype == np.float64
    np.testing.assert_array_equal(got64, [1, 2, 0.5, 2])


def test_class_weight_zero_keeps_its_sign_and_is_not_cached():
    labels = np.array([0, 1], np.int64)
    n = len(V._CW_TABLES)
    for z in (0.0, -0.0, 0.0):
        got = V.class_weight_rows({1: z}, labels, F32)
        assert got[1] == 0 and np.signbit(got[1]) == np.signbit(z)
    assert len(V._CW_TABLES) == n


def test_class_weight_table_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(V, "_CW_TABLES_MAX", 4)
    V._CW_TABLES.clear()
    labels = np.array([0, 1], np.int64)
    for k in range(12):
        V.class_weight_rows({1: 1.0 + k}, labels, F32)
        assert len(V._CW_TABLES) <= 4


def test_class_weight_sequence_rejects_labels_outside_it():
    for bad in (-1, 3, np.iinfo(np.int64).min):
        with pytest.raises(ValueError, match="class_weight"):
            V.class_weight_rows(np.array([1.0, 2.0, 3.0]), np.array([0, bad], np.int64), F32)


def test_class_weights_of_float_labels_round_half_to_even_and_skip_non_finite():
    """Dense 0/1-style labels as floats: rounded as np.round does (0.5 -> 0,
    1.5 -> 2, -0.5 -> 0); NaN and +-inf name no class (weight 1 in a dict)."""
    y = np.array([[0.5], [1.5], [2.5], [-0.5], [np.nan], [np.inf], [-np.inf], [1.2]])
    lab = _core._labels_for_class_weight("dense", y)
    np.testing.assert_array_equal(lab, [0, 2, 2, 0, -1, -1, -1, 1])
    cw = {0: 2.0, 1: 3.0, 2: 5.0}
    np.testing.assert_array_equal(V.class_weight_rows(cw, lab, F32), [2, 5, 5, 2, 1, 1, 1, 3])
    assert not np.isnan(y[:4]).any()  # the caller's labels are left as they were
    onehot = np.array([[0.0, 1.0, 0.0], [0.2, 0.1, 0.7]])
    np.testing.assert_array_equal(_core._labels_for_class_weight("dense", onehot), [1, 2])


def test_class_weighted_loss_matches_the_reference_in_a_loop():
    """A class-weighted BCE called repeatedly with changing labels, against the
    float64 reference weighted as Keras' fit weights it."""
    from fastloss.losses import BinaryCrossentropy

    rng = np.random.default_rng(4)
    cw = {0: 0.7, 1: 3.0}
    loss = BinaryCrossentropy(class_weight=cw, reduction="sum")
    for _ in range(3):
        y = (rng.random((32, 1)) > 0.5).astype(np.float64)
        p = rng.uniform(0.05, 0.95, (32, 1))
        w = ref.class_weight_to_sample_weight(cw, y, sparse=False)
        want = float(np.sum(ref.binary_crossentropy(y, p) * w))
        np.testing.assert_allclose(loss(y, p), want, rtol=1e-12)
