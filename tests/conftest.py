"""Every loss test runs on every CPU backend.

The test modules in ``PER_BACKEND_MODULES`` (and any module marked
``pytestmark = pytest.mark.per_backend``) get each of their tests once per CPU
backend in ``fastloss.available_backends()`` (``[numba]``, ``[c]`` in the test
id); the backend is selected with ``fastloss.set_backend`` around the test. A
test whose loss has no kernel on a backend (a family whose C twin is not
written yet) is skipped there, with the reason, instead of failing.
"""

import pytest

import fastloss

PER_BACKEND_MODULES = {
    "test_crossentropy",
    "test_regression",
    "test_grad_hess",
    "test_edge_cases",
    "test_errors",
    "test_identities",
    "test_properties",
    "test_boosting",
    "test_keras_parity",
    "test_tfa_parity",
    "test_boxes",
    "test_tfa_boxes",
    "test_triplet",
    "test_triplet_tfa",
}
CPU_BACKENDS = [b for b in fastloss.available_backends() if b in ("numba", "c")]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "per_backend: run each test of this module once per available CPU backend (tests/conftest.py)"
    )


def _per_backend(node):
    mod = getattr(node, "module", None)
    name = getattr(mod, "__name__", "").rpartition(".")[2]
    return name in PER_BACKEND_MODULES or node.get_closest_marker("per_backend") is not None


def pytest_generate_tests(metafunc):
    if "fl_backend" in metafunc.fixturenames and _per_backend(metafunc.definition):
        metafunc.parametrize("fl_backend", CPU_BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def fl_backend(request):
    """The CPU backend this test runs on (None outside the per-backend modules)."""
    name = getattr(request, "param", None)
    if name is None:
        yield None
        return
    fastloss.set_backend(name)
    try:
        yield name
    finally:
        fastloss.set_backend(None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("fl_backend") if callspec else None
    exc = outcome.excinfo[1] if outcome.excinfo else None
    if backend and isinstance(exc, ValueError) and f"has no kernel on backend {backend!r}" in str(exc):
        outcome.force_exception(pytest.skip.Exception(f"no {backend} kernel: {exc}", _use_item_location=True))
