"""Time a TF Addons loss (loss + gradient) and print JSON rows.

Run under an interpreter that has ``tensorflow-addons`` (TFA needs TF <= 2.15,
so it usually lives in its own environment), e.g.::

    /opt/tfa/bin/python benchmarks/tfa_runner.py --sizes 1048576x1 --repeats 7
    /opt/tfa/bin/python benchmarks/tfa_runner.py --kernel giou --sizes 1048576x4
    /opt/tfa/bin/python benchmarks/tfa_runner.py --kernel triplet_semihard --sizes 256x128

``--kernel``: ``sigmoid_focal`` (``SigmoidFocalCrossEntropy()``, the default),
``giou`` (``GIoULoss()``, sizes ``Nx4``), ``triplet_semihard`` (``TripletSemiHardLoss()``) or ``triplet_hard``
(``TripletHardLoss()``); sizes are ``NxC`` (triplets: N embeddings of dimension C).

``python -m benchmarks.report`` does this itself when ``FASTLOSS_TFA_PYTHON``
names such an interpreter. Output: one JSON list on stdout, one row per
(size, provider) with provider ``tfa_function`` (``tf.function`` of
GradientTape + the TFA loss object) or ``tfa_eager``;
conversion of the NumPy inputs and ``.numpy()`` of both results are inside the
timed call, as for the in-process TF providers. Same data (seed), timing and
peak-memory method as the report (``_timing.py``, ``cases.py``).
"""

import argparse
import json
import os
import platform
import sys
import warnings


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="sigmoid_focal",
                    choices=("sigmoid_focal", "giou", "triplet_semihard", "triplet_hard"))
    ap.add_argument("--sizes", default="1048576x1", help="comma-separated NxC sizes (giou: Nx4; triplets: NxD)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--min-time", type=float, default=0.05)
    args = ap.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import _timing  # noqa: E402  (stdlib + NumPy only)
    import cases  # noqa: E402

    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow as tf
        import tensorflow_addons as tfa

    tf.get_logger().setLevel("ERROR")
    loss_obj = {
        "sigmoid_focal": tfa.losses.SigmoidFocalCrossEntropy,
        "giou": tfa.losses.GIoULoss,
        "triplet_semihard": tfa.losses.TripletSemiHardLoss,
        "triplet_hard": tfa.losses.TripletHardLoss,
    }[args.kernel]()

    def value_and_grad(yt, yp):
        with tf.GradientTape() as tape:
            tape.watch(yp)
            loss = loss_obj(yt, yp)
        return loss, tape.gradient(loss, yp)

    compiled = tf.function(value_and_grad)

    rows = []
    for size in [s for s in args.sizes.split(",") if s]:
        n, c = (int(v) for v in size.lower().split("x"))
        case = cases.Case(args.kernel, n, c)
        y_true, y_pred = cases.make_data(case)
        ref = cases.reference(case, y_true, y_pred)

        def make(fn):
            def run():
                loss, grad = fn(tf.convert_to_tensor(y_true), tf.convert_to_tensor(y_pred))
                return loss.numpy(), grad.numpy()

            return run

        fns = {"tfa_function": make(compiled), "tfa_eager": make(value_and_grad)}
        # Time first: the first call of each is the warm-up (tracing) figure.
        stats = _timing.time_interleaved(fns, repeats=args.repeats, min_time=args.min_time)
        errs = {name: cases.max_rel_err(ref, fn()) for name, fn in fns.items()}
        for name, fn in fns.items():
            peak, method = _timing.peak_memory(fn)
            row = {
                "kernel": case.kernel,
                "provider": name,
                "backend": "",
                "size": case.size,
                "n_elements": case.n_elements,
                "dtype": "float32",
                **stats[name],
                "peak_mem_bytes": peak,
                "mem_method": method,
                "floor_bytes": cases.floor_bytes(case, y_true, y_pred),
                "max_rel_err": errs[name],
                "python": platform.python_version(),
                "numpy": np.__version__,
                "tensorflow": tf.__version__,
                "tfa": tfa.__version__,
            }
            rows.append(row)
        del y_true, y_pred, ref
    json.dump(rows, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
