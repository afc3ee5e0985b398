"""TF Addons GIoULoss oracle: run under an interpreter that has tensorflow-addons
(e.g. /opt/tfa/bin/python).

    python tfa_boxes_oracle.py IN.npz OUT.npz

IN.npz holds ``spec`` (a JSON string: a list of cases, each ``{"mode",
"reduction", "weighted"}``) and per case ``i`` the arrays ``yt_i``, ``yp_i``
and, if weighted, ``sw_i``. OUT.npz gets ``loss_i``
(``tfa.losses.GIoULoss(mode, reduction)(yt, yp, sample_weight)``) and
``grad_i`` (tf.GradientTape gradient of the summed loss w.r.t. y_pred, taken
as TF does for integer y_pred: through the float32 cast inside TFA's function,
i.e. w.r.t. ``tf.cast(y_pred, float32)``). Also ``doc``: TFA's docstring example.

Imports happen inside main() so that collecting this file (pytest
--doctest-modules) never needs TensorFlow Addons.
"""

import json
import os
import sys


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    warnings.filterwarnings("ignore")
    import numpy as np
    import tensorflow as tf
    import tensorflow_addons as tfa

    src, dst = argv[1], argv[2]
    data = np.load(src)
    spec = json.loads(str(data["spec"]))
    out = {}
    for i, c in enumerate(spec):
        yt = data[f"yt_{i}"]
        yp = data[f"yp_{i}"]
        sw = data[f"sw_{i}"] if c.get("weighted") else None
        obj = tfa.losses.GIoULoss(mode=c["mode"], reduction=c["reduction"])
        x = tf.constant(yp if yp.dtype.kind == "f" else yp.astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = obj(tf.constant(yt), x, sample_weight=None if sw is None else tf.constant(sw))
            s = tf.reduce_sum(v)
        g = tape.gradient(s, x)
        out[f"loss_{i}"] = np.asarray(v.numpy())
        out[f"grad_{i}"] = np.zeros(x.shape, x.dtype.as_numpy_dtype) if g is None else g.numpy()
    gl = tfa.losses.GIoULoss()
    out["doc"] = gl(
        tf.constant([[4.0, 3.0, 7.0, 5.0], [5.0, 6.0, 10.0, 7.0]]),
        tf.constant([[3.0, 4.0, 6.0, 8.0], [14.0, 14.0, 15.0, 15.0]]),
    ).numpy()
    out["versions"] = np.array(json.dumps({"tf": tf.__version__, "tfa": tfa.__version__}))
    np.savez(dst, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
