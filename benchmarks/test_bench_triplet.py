"""pytest-benchmark suite: triplet family (TripletSemiHardLoss, TripletHardLoss on
256 x 128 float32 embeddings), loss + gradient w.r.t. the embeddings, fastloss vs
TF Addons' algorithm written in TF ops (``cases.tf_triplet``; ``tf.function`` and
eager). Same procedure as test_bench_crossentropy.py::

    python -m pytest benchmarks/test_bench_triplet.py --benchmark-group-by=group \\
        --benchmark-columns=min,median,max,rounds,iterations

The real TF Addons (its own interpreter) is timed by ``python -m benchmarks.report
--cases triplet`` with FASTLOSS_TFA_PYTHON set; growth with N:
``python -m benchmarks.triplet_scaling``.
"""

import pytest

from .test_bench_crossentropy import _params, bench_case


@pytest.mark.parametrize("case,provider,backend", _params("triplet"))
def test_triplet(benchmark, case_data, case, provider, backend):
    bench_case(benchmark, case_data, case, provider, backend)
