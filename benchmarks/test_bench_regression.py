"""pytest-benchmark suite: regression family (Huber, LogCosh), loss + gradient, float32,
fastloss vs TensorFlow. Same procedure as test_bench_crossentropy.py::

    python -m pytest benchmarks/test_bench_regression.py --benchmark-group-by=group
"""

import pytest

from .test_bench_crossentropy import _params, bench_case


@pytest.mark.parametrize("case,provider,backend", _params("regression"))
def test_regression(benchmark, case_data, case, provider, backend):
    bench_case(benchmark, case_data, case, provider, backend)
