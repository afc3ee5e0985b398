"""Regression, similarity and hinge family on the C backend
(``csrc/regression.c``): the same names and contract as
``fastloss.backends.numba_cpu.regression``."""

from ._kernels import gh_kernel, loss_kernel

mse = loss_kernel("mse")
mae = loss_kernel("mae")
mape = loss_kernel("mape")
msle = loss_kernel("msle")
huber = loss_kernel("huber")
log_cosh = loss_kernel("log_cosh")
hinge = loss_kernel("hinge")
squared_hinge = loss_kernel("squared_hinge")
cosine_similarity = loss_kernel("cosine_similarity")
categorical_hinge = loss_kernel("categorical_hinge")

mse_gh = gh_kernel("mse_gh")
mae_gh = gh_kernel("mae_gh")
mape_gh = gh_kernel("mape_gh")
msle_gh = gh_kernel("msle_gh")
huber_gh = gh_kernel("huber_gh")
log_cosh_gh = gh_kernel("log_cosh_gh")
hinge_gh = gh_kernel("hinge_gh")
squared_hinge_gh = gh_kernel("squared_hinge_gh")
