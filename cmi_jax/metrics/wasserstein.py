"""Gaussian Wasserstein correlation of the codes (an unsupervised score of
disentanglement_lib).

Fit ``N(mu, Sigma)`` to the codes and measure the squared 2-Wasserstein
distance to the product of its marginals ``N(mu, Delta)``,
``Delta = diag Sigma``. For Gaussians with equal means,

    W2^2 = tr Sigma + tr Delta - 2 tr (Delta^{1/2} Sigma Delta^{1/2})^{1/2}
         = 2 tr Sigma - 2 sum_i sqrt(lambda_i(Delta^{1/2} Sigma Delta^{1/2})),

using ``tr Delta = tr Sigma``, in squared code units; 0 iff Sigma is diagonal.
"""

from __future__ import annotations

import numpy as np

from cmi_jax.metrics import _shared


def gaussian_wasserstein_correlation(cov) -> float:
  """``W2^2(N(0, cov), N(0, diag cov)) >= 0`` of a PSD ``cov [D, D]``."""
  cov = _shared.check_cov(cov)
  root_diag = np.sqrt(np.clip(np.diag(cov), 0.0, None))
  # Delta^{1/2} Sigma Delta^{1/2} is symmetric PSD: eigvalsh is exact and
  # stable, unlike a general matrix square root of Sigma Delta.
  eig = np.linalg.eigvalsh(cov * np.outer(root_diag, root_diag))
  value = 2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(np.clip(eig, 0.0, None)))
  return float(max(value, 0.0))


def compute_wasserstein_correlation(codes) -> dict[str, float]:
  """Gaussian Wasserstein correlation of float ``codes [N >= 2, D]``.

  Returns ``{'gaussian_wasserstein_correlation': W2^2,
  'gaussian_wasserstein_correlation_norm': W2^2 / tr Sigma in [0, 2)}`` (the
  latter 0 for constant codes).
  """
  codes = _shared.check_codes(codes, min_rows=2)
  cov = np.atleast_2d(np.cov(codes, rowvar=False))
  value = gaussian_wasserstein_correlation(cov)
  trace = np.trace(cov)
  return {'gaussian_wasserstein_correlation': value,
          'gaussian_wasserstein_correlation_norm':
              float(value / trace) if trace > 0 else 0.0}
