"""Mutual Information Gap (Chen et al., 2018, "Isolating Sources of
Disentanglement in VAEs").

For every factor ``s_j`` the MIG is the gap between the two code dimensions that
know most about it, normalised by the factor's entropy:

    MIG_j = (I(z_(1); s_j) - I(z_(2); s_j)) / H(s_j),
    MIG   = (1/K) sum_j MIG_j,

where ``z_(1), z_(2)`` are the code dimensions with the largest and second
largest ``I(z_i; s_j)``: plug-in estimates on the codes cut into ``num_bins``
equal-width bins per dimension (disentanglement_lib's histogram estimator).
MIG lies in ``[0, 1]``: 1 when one dimension determines ``s_j`` and no other
shares any information with it.
"""

from __future__ import annotations

import numpy as np

from cmi_jax import validate
from cmi_jax.metrics import _shared


def compute_mig(codes, factors, *, num_bins: int = 20) -> dict[str, float]:
  """MIG of float ``codes [N, D >= 2]`` for int ``factors [N, K]``.

  Returns ``{'mig': MIG, 'mig_factor_<j>': MIG_j for each factor}``.
  """
  codes, factors = _shared.check_codes_and_factors(codes, factors, 'MIG')
  num_bins = validate.integer(num_bins, 'num_bins', 2)
  dense = _shared.dense_labels(factors)
  binned = _shared.histogram_discretize(codes, num_bins)
  mi = _shared.discrete_mutual_information(binned, dense)  # [D, K]
  entropy = _shared.discrete_entropy(dense)  # [K], > 0 by the factor check
  top_two = -np.sort(-mi, axis=0)[:2]  # [2, K], descending
  per_factor = (top_two[0] - top_two[1]) / entropy
  return {'mig': float(np.mean(per_factor)),
          **{f'mig_factor_{j}': float(v) for j, v in enumerate(per_factor)}}
