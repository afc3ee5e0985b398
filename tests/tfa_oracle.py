"""TF Addons oracle: run under an interpreter that has tensorflow-addons (e.g. /opt/tfa/bin/python).

    python tfa_oracle.py IN.npz OUT.npz

IN.npz holds ``spec`` (a JSON string: a list of cases, each
``{"alpha", "gamma", "from_logits", "reduction", "weighted"}``) and per case ``i``
the arrays ``yt_i``, ``yp_i`` and, if weighted, ``sw_i``. OUT.npz gets ``loss_i``
(``tfa.losses.SigmoidFocalCrossEntropy(...)(yt, yp, sample_weight)``) and ``grad_i``
(tf.GradientTape gradient of the summed loss w.r.t. y_pred), in y_pred's dtype.
Also writes ``doc_f32``/``doc_f64``: the TFA docstring example in float32/float64.

Imports happen inside main() so that collecting this file (pytest --doctest-modules)
never needs TensorFlow Addons.
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
        obj = tfa.losses.SigmoidFocalCrossEntropy(
            from_logits=c["from_logits"], alpha=c["alpha"], gamma=c["gamma"], reduction=c["reduction"]
        )
        x = tf.constant(yp)
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = obj(tf.constant(yt.astype(yp.dtype)), x, sample_weight=None if sw is None else tf.constant(sw))
            s = tf.reduce_sum(v)
        out[f"loss_{i}"] = np.asarray(v.numpy())
        out[f"grad_{i}"] = tape.gradient(s, x).numpy()
    fl = tfa.losses.SigmoidFocalCrossEntropy()
    yt = [[1.0], [1.0], [0.0]]
    out["doc_f32"] = fl(yt, np.array([[0.97], [0.91], [0.03]], np.float32)).numpy()
    out["doc_f64"] = fl(np.array(yt), np.array([[0.97], [0.91], [0.03]], np.float64)).numpy()
    out["versions"] = np.array(json.dumps({"tf": tf.__version__, "tfa": tfa.__version__}))
    np.savez(dst, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
