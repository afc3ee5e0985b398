"""Cross-entropy family on the C backend (``csrc/crossentropy.c``): the same
names and contract as ``fastloss.backends.numba_cpu.crossentropy``."""

from ._kernels import gh_kernel, loss_kernel

bce_probs = loss_kernel("bce_probs")
bce_logits = loss_kernel("bce_logits")
binary_focal = loss_kernel("binary_focal")
binary_focal_logits = loss_kernel("binary_focal_logits")
sigmoid_focal = loss_kernel("sigmoid_focal")
sigmoid_focal_logits = loss_kernel("sigmoid_focal_logits")
kl_divergence = loss_kernel("kl_divergence")
poisson = loss_kernel("poisson")
cce_logits = loss_kernel("cce_logits")
cce_probs = loss_kernel("cce_probs")
categorical_focal = loss_kernel("categorical_focal")
scce_logits = loss_kernel("scce_logits", sparse=True)
scce_probs = loss_kernel("scce_probs", sparse=True)

bce_gh = gh_kernel("bce_gh")
bce_logits_gh = gh_kernel("bce_logits_gh")
poisson_gh = gh_kernel("poisson_gh")
cce_logits_gh = gh_kernel("cce_logits_gh")
scce_logits_gh = gh_kernel("scce_logits_gh", sparse=True)
