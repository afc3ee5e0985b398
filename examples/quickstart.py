"""fastloss in a few lines: Keras-compatible losses and their gradients on NumPy.

Run: python examples/quickstart.py
"""

import numpy as np

import fastloss
from fastloss.losses import BinaryCrossentropy, SparseCategoricalCrossentropy

rng = np.random.default_rng(0)

# A batch of logits for 4 samples and 3 classes, and integer labels.
logits = rng.standard_normal((4, 3)).astype(np.float32)
labels = np.array([0, 2, 1, 2])

scce = SparseCategoricalCrossentropy(from_logits=True)
print("loss:", scce(labels, logits))

# Loss and gradient w.r.t. the logits from one fused pass.
loss, grad = scce.value_and_grad(labels, logits)
print("grad:\n", grad)

# Per-sample losses, as keras.losses.sparse_categorical_crossentropy returns them.
print("per sample:", fastloss.sparse_categorical_crossentropy(labels, logits, from_logits=True))

# Weights and reductions work as in Keras; class_weight maps labels to weights.
bce = BinaryCrossentropy(reduction="mean_with_sample_weight", class_weight={1: 3.0})
y_true = np.array([[1.0], [0.0], [1.0]], dtype=np.float32)
y_prob = np.array([[0.9], [0.2], [0.4]], dtype=np.float32)
print("weighted BCE:", bce(y_true, y_prob, sample_weight=[1.0, 1.0, 0.5]))

# In a hot loop, reuse the gradient buffer.
buf = np.empty_like(logits)
for step in range(3):
    loss, g = scce.value_and_grad(labels, logits, grad_out=buf)
    logits -= 0.5 * g * len(labels)  # plain gradient descent on the logits
    print(f"step {step}: loss {loss:.4f}")
