"""Interventional Robustness Score (Suter, Miladinovic, Schoelkopf & Bauer,
2019, "Robustly Disentangled Causal Mechanisms").

A code dimension ``z_i`` that encodes factor ``s_j`` should not move when the
other factors (the nuisances) change while ``s_j`` stays fixed. Observationally,
the rows sharing a value ``v`` of ``s_j`` are the data "with ``s_j`` fixed to
v", and the paper's EMPIDA (expected maximal post-interventional deviation) of
``z_i`` is estimated as

    EMPIDA_ij = mean_v  q_{rows: s_j = v} | z_i - E[z_i | s_j = v] |,

with ``q`` the ``diff_quantile`` quantile (the paper's supremum is ``q = 1``;
0.99 is robust to outliers). It is normalised by the largest deviation of
``z_i`` from its overall mean, ``M_i = max_rows |z_i - E[z_i]|``:

    IRS_ij = 1 - EMPIDA_ij / M_i,    IRS_i = max_j IRS_ij,
    IRS    = sum_i M_i IRS_i / sum_i M_i   (over non-constant dimensions).

IRS measures robustness, not informativeness: a pure-noise dimension scores
``1 - q_0.99 / max``, small but not 0. All-constant codes score 0.
"""

from __future__ import annotations

import numpy as np

from cmi_jax import validate
from cmi_jax.metrics import _shared


def compute_irs(codes, factors, *,
                diff_quantile: float = 0.99) -> dict[str, float]:
  """IRS of float ``codes [N, D]`` for int ``factors [N, K]``; ``q`` in (0, 1].

  Returns ``{'irs': score <= 1, 'num_active_dims': non-constant dimensions}``.
  """
  codes, factors = _shared.check_codes_and_factors(codes, factors)
  validate.number(diff_quantile, 'diff_quantile', 0, 1, open_low=True,
                  hint="Use 1.0 for the paper's supremum.")
  active = _shared.active_dims(codes)
  if not active.any():
    return {'irs': 0.0, 'num_active_dims': 0.0}
  z = codes[:, active]
  max_dev = np.max(np.abs(z - z.mean(axis=0)), axis=0)  # M_i, [D'] > 0
  empida = np.zeros((z.shape[1], factors.shape[1]))
  for j, column in enumerate(factors.T):
    groups = [z[column == v] for v in np.unique(column)]
    empida[:, j] = np.mean([np.quantile(np.abs(g - g.mean(axis=0)),
                                        diff_quantile, axis=0)
                            for g in groups], axis=0)
  per_dim = np.max(1.0 - empida / max_dev[:, None], axis=1)
  return {'irs': float(np.sum(per_dim * max_dev) / np.sum(max_dev)),
          'num_active_dims': float(active.sum())}
