"""TF Addons oracle for the triplet losses: run under an interpreter that has
tensorflow-addons (e.g. /opt/tfa/bin/python).

    python tfa_triplet_oracle.py IN.npz OUT.npz

IN.npz holds ``spec`` (a JSON list of cases ``{"kind": "semihard" | "hard",
"margin", "soft", "metric": "L2" | "squared-L2" | "angular" | "dot", "weight":
float or null}``; ``"dot"`` is the callable ``x @ x^T`` of TFA's docstring) and
per case ``i`` the arrays ``lab_i`` (int labels) and ``emb_i`` (float32
embeddings). OUT.npz gets ``loss_i`` (``tfa.losses.TripletSemiHardLoss(...)``
or ``TripletHardLoss(...)`` called as ``obj(lab, emb, sample_weight=weight)``)
and ``grad_i`` (tf.GradientTape gradient of the loss w.r.t. the embeddings),
plus ``doc``: TFA's four docstring values.

Imports happen inside main() so that collecting this file never needs TFA.
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

    def dot(x):
        return tf.linalg.matmul(x, x, transpose_b=True)

    src, dst = argv[1], argv[2]
    data = np.load(src)
    spec = json.loads(str(data["spec"]))
    out = {}
    for i, c in enumerate(spec):
        lab = tf.constant(data[f"lab_{i}"])
        x = tf.constant(data[f"emb_{i}"])
        metric = dot if c["metric"] == "dot" else c["metric"]
        if c["kind"] == "semihard":
            obj = tfa.losses.TripletSemiHardLoss(margin=c["margin"], distance_metric=metric)
        else:
            obj = tfa.losses.TripletHardLoss(margin=c["margin"], soft=c["soft"], distance_metric=metric)
        w = c.get("weight")
        with tf.GradientTape() as tape:
            tape.watch(x)
            v = obj(lab, x, sample_weight=None if w is None else tf.constant(w, x.dtype))
            s = tf.reduce_sum(v)
        out[f"loss_{i}"] = np.asarray(v.numpy())
        out[f"grad_{i}"] = tape.gradient(s, x).numpy()
    y_true = tf.convert_to_tensor([0, 0])
    y_pred = tf.convert_to_tensor([[0.0, 1.0], [1.0, 0.0]])
    out["doc"] = np.array(
        [
            tfa.losses.triplet_semihard_loss(y_true, y_pred, distance_metric="L2").numpy(),
            tfa.losses.triplet_semihard_loss(y_true, y_pred, distance_metric=dot).numpy(),
            tfa.losses.triplet_hard_loss(y_true, y_pred, distance_metric="L2").numpy(),
            tfa.losses.triplet_hard_loss(y_true, y_pred, distance_metric=dot).numpy(),
        ]
    )
    out["versions"] = np.array(json.dumps({"tf": tf.__version__, "tfa": tfa.__version__}))
    np.savez(dst, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
