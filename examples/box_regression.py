"""Bounding-box regression with fastloss' box losses: a linear box head fitted
by plain gradient descent on NumPy arrays, with GIoU (TF Addons' GIoULoss) and
CIoU (torchvision's values) side by side.

Each sample has a feature vector; its true box is an (unknown) linear function
of the features. The head predicts boxes as ``cxcywh`` (centre, width, height);
``value_and_grad`` gives the loss and d loss / d boxes in one kernel pass, and
the chain rule through the linear head is one matrix product.

Run: python examples/box_regression.py
"""

import numpy as np

from fastloss.losses import CIoULoss, GIoULoss, IoULoss

rng = np.random.default_rng(0)
n, d = 4096, 16
X = rng.standard_normal((n, d)).astype(np.float32)
W_true = rng.standard_normal((d, 4)).astype(np.float32) * 0.3
b_true = np.array([10.0, 10.0, 4.0, 3.0], np.float32)  # centres near (10, 10), sizes near 4 x 3
Y = X @ W_true + b_true
Y[:, 2:] = np.abs(Y[:, 2:]) + 0.5  # proper boxes: positive width and height

iou = IoULoss(box_format="cxcywh")
for loss in (GIoULoss(box_format="cxcywh"), CIoULoss(box_format="cxcywh")):
    W = np.zeros((d, 4), np.float32)
    b = np.array([8.0, 12.0, 2.0, 2.0], np.float32)  # a start that overlaps some targets
    grad = np.empty((n, 4), np.float32)  # reused across steps
    steps = 300
    for step in range(steps + 1):
        lr = 0.5 * (1 - step / (steps + 1))  # linear decay: at a fixed rate plain GD oscillates
        P = X @ W + b
        value, _ = loss.value_and_grad(Y, P, grad_out=grad)
        W -= lr * (X.T @ grad)  # d loss / d W = X^T (d loss / d P)
        b -= lr * grad.sum(axis=0)
        if step % 100 == 0:
            print(f"{type(loss).__name__:8s} step {step:3d}: loss {value:.4f}  mean IoU {1 - iou(Y, P):.3f}")
    final_iou = 1 - iou(Y, X @ W + b)
    assert final_iou > 0.95, final_iou
    print(f"{type(loss).__name__:8s} final mean IoU {final_iou:.3f}")
