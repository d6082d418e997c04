"""Gaussian total correlation of the codes (unsupervised; as in the
"unsupervised scores" of disentanglement_lib, Locatello et al., 2019).

Fit a Gaussian ``N(mu, Sigma)`` to the codes. Its total correlation is the KL
divergence to the product of its marginals ``N(mu, diag Sigma)``:

    TC = KL(N(mu, Sigma) || N(mu, diag Sigma))
       = 0.5 * (sum_i log Sigma_ii - log det Sigma)        [nats],

zero iff the code dimensions are uncorrelated, +inf if one dimension is an
exact linear function of the others.
"""

from __future__ import annotations

import numpy as np

from cmi_jax.metrics import _shared


def gaussian_total_correlation(cov) -> float:
  """TC in nats of a PSD ``cov [D, D]`` with a positive diagonal."""
  cov = _shared.check_cov(cov)
  diag = np.diag(cov)
  if np.any(diag <= 0):
    raise ValueError('cov has a non-positive variance on its diagonal; drop '
                     'constant code dimensions first.')
  # Correlation form: TC = -0.5 log det(corr), better conditioned than
  # subtracting two large log-determinants.
  scale = np.sqrt(diag)
  sign, logdet = np.linalg.slogdet(cov / np.outer(scale, scale))
  return float(max(-0.5 * logdet, 0.0)) if sign > 0 else float('inf')


def compute_total_correlation(codes) -> dict[str, float]:
  """``{'gaussian_total_correlation': TC}`` of float ``codes [N >= 2, D]``.

  Constant dimensions are dropped: they add nothing to the TC and would make
  ``log Sigma_ii`` undefined. Fewer than two others give 0.
  """
  codes = _shared.check_codes(codes, min_rows=2)
  active = _shared.active_dims(codes)
  if active.sum() < 2:
    return {'gaussian_total_correlation': 0.0}
  cov = np.cov(codes[:, active], rowvar=False)
  return {'gaussian_total_correlation': gaussian_total_correlation(cov)}
