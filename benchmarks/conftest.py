"""pytest-benchmark fixtures for the fastloss suites (``python -m pytest benchmarks``)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest  # noqa: E402

from . import cases as C  # noqa: E402


@pytest.fixture(scope="session")
def case_data():
    """``get(case) -> (y_true, y_pred, float64 reference)``; keeps only the latest case
    in memory (the parametrization is case-major) so big cases do not pile up."""
    cache = {}

    def get(case):
        if case.id not in cache:
            cache.clear()
            y_true, y_pred = C.make_data(case)
            cache[case.id] = (y_true, y_pred, C.reference(case, y_true, y_pred))
        return cache[case.id]

    yield get
    cache.clear()
