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

from cmi_jax.metrics import _common


def gaussian_total_correlation(cov) -> float:
  """``0.5 * (sum_i log cov_ii - log det cov)`` in nats.

  Args:
    cov: symmetric positive semi-definite ``[D, D]`` with a positive diagonal.

  Returns:
    TC >= 0; ``inf`` when ``cov`` is singular.
  """
  cov = np.asarray(cov, dtype=np.float64)
  if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
    raise ValueError(f'cov must be a square [D, D] matrix; got {cov.shape}.')
  diag = np.diag(cov)
  if np.any(diag <= 0):
    raise ValueError(
        'cov has a non-positive variance on its diagonal; drop constant code '
        'dimensions first.')
  # Correlation form: TC = -0.5 log det(corr), better conditioned than
  # subtracting two large log-determinants.
  scale = np.sqrt(diag)
  sign, logdet = np.linalg.slogdet(cov / np.outer(scale, scale))
  if sign <= 0:
    return float('inf')
  return float(max(-0.5 * logdet, 0.0))


def compute_total_correlation(codes) -> dict[str, float]:
  """Gaussian total correlation of a representation.

  Constant code dimensions are dropped: a constant is independent of
  everything and adds nothing to the TC (and would make ``log Sigma_ii``
  undefined). All-constant or one-dimensional codes give 0.

  Args:
    codes: float ``[N, D]`` codes, N >= 2.

  Returns:
    ``{'gaussian_total_correlation': TC in nats, >= 0, possibly inf}``.

  Raises:
    ValueError: on malformed codes or N < 2.
  """
  codes = _common.check_codes(codes, min_rows=2)  # for a covariance
  active = _common.active_dims(codes)
  if active.sum() < 2:
    return {'gaussian_total_correlation': 0.0}
  cov = np.cov(codes[:, active], rowvar=False)
  return {'gaussian_total_correlation': gaussian_total_correlation(cov)}
