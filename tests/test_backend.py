"""Backend selection: available_backends, set_backend, use_backend, FASTLOSS_BACKEND."""

import numpy as np
import pytest

import fastloss
from fastloss import losses as L


@pytest.fixture(autouse=True)
def _reset(monkeypatch):
    monkeypatch.delenv("FASTLOSS_BACKEND", raising=False)
    fastloss.set_backend(None)
    yield
    fastloss.set_backend(None)


def _call():
    return L.CategoricalCrossentropy()([[0, 1]], np.array([[0.3, 0.7]]))


def test_available_backends():
    av = fastloss.available_backends()
    assert av == ["numba"]
    av.append("junk")  # a copy: mutating it changes nothing
    assert fastloss.available_backends() == ["numba"]


def test_default_is_numba():
    assert fastloss.current_backend() == "numba"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)


def test_set_backend():
    fastloss.set_backend("numba")
    assert fastloss.current_backend() == "numba"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    fastloss.set_backend(None)
    assert fastloss.current_backend() == "numba"


def test_use_backend_context_restores():
    with fastloss.use_backend("numba") as name:
        assert name == "numba"
        assert fastloss.current_backend() == "numba"
        np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    assert fastloss.current_backend() == "numba"


def test_use_backend_restores_after_exception():
    with pytest.raises(RuntimeError):
        with fastloss.use_backend("numba"):
            raise RuntimeError("boom")
    assert fastloss.current_backend() == "numba"


@pytest.mark.parametrize("name", ["c", "cuda"])
def test_unavailable_backend_raises_listing_available(name):
    with pytest.raises(ValueError, match="numba") as ei:
        fastloss.set_backend(name)
    assert name in str(ei.value)
    with pytest.raises(ValueError, match="numba"):
        with fastloss.use_backend(name):
            pass
    assert fastloss.current_backend() == "numba"


@pytest.mark.parametrize("name", ["tensorflow", "NUMBA_X", "", "gpu"])
def test_unknown_backend_raises(name):
    with pytest.raises(ValueError, match="numba"):
        fastloss.set_backend(name)
    with pytest.raises(ValueError):
        with fastloss.use_backend(name):
            pass


def test_failed_set_backend_keeps_previous_choice():
    fastloss.set_backend("numba")
    with pytest.raises(ValueError):
        fastloss.set_backend("cuda")
    assert fastloss.current_backend() == "numba"


def test_env_variable(monkeypatch):
    monkeypatch.setenv("FASTLOSS_BACKEND", "numba")
    assert fastloss.current_backend() == "numba"
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    monkeypatch.setenv("FASTLOSS_BACKEND", " NUMBA ")
    assert fastloss.current_backend() == "numba"


@pytest.mark.parametrize("name", ["c", "cuda", "bogus"])
def test_env_variable_unavailable_raises_on_use(monkeypatch, name):
    monkeypatch.setenv("FASTLOSS_BACKEND", name)
    with pytest.raises(ValueError, match="numba"):
        _call()


def test_explicit_choice_beats_env(monkeypatch):
    monkeypatch.setenv("FASTLOSS_BACKEND", "cuda")
    with fastloss.use_backend("numba"):
        np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
    fastloss.set_backend("numba")
    np.testing.assert_allclose(_call(), -np.log(0.7), rtol=1e-12)
