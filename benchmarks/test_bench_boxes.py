"""pytest-benchmark suite: box family (TF Addons' GIoULoss, mode "giou", mean over
boxes), loss + gradient, float32, fastloss vs TensorFlow (TF Addons' function
body in TF ops; the real TF Addons runs in its own interpreter, through
``python -m benchmarks.report``). Same procedure as test_bench_crossentropy.py::

    python -m pytest benchmarks/test_bench_boxes.py --benchmark-group-by=group
"""

import pytest

from .test_bench_crossentropy import _params, bench_case


@pytest.mark.parametrize("case,provider,backend", _params("boxes"))
def test_boxes(benchmark, case_data, case, provider, backend):
    bench_case(benchmark, case_data, case, provider, backend)
