"""Evaluation metrics: kNN information estimates and disentanglement scores.

Every disentanglement metric is a pure NumPy/scikit-learn function
``compute_<name>(codes, factors, ...) -> dict`` of named float scores, with an
explicit ``seed`` where it samples. ``codes`` is a finite float ``[N, D]``
array, one column per code dimension; ``factors`` an int ``[N, K]`` array of
ground-truth labels, used as categories (only equality counts), each column
with >= 2 values and no negative label (-1 marks a missing label: drop those
rows first). Information is in nats.

Defaults follow disentanglement_lib's definitions, so scores compare with
published numbers; ``sap_scale_free`` and ``beta_vae_scale_free`` do not move
with the scale of the code. One difference from disentanglement_lib: IRS
treats labels as categories, where dlib bins them into 20 histogram bins
(identical for factors with <= 20 values).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

from cmi_jax.metrics.beta_vae import compute_beta_vae
from cmi_jax.metrics.dci import compute_dci, disentanglement_completeness
from cmi_jax.metrics.factor_vae import compute_factor_vae
from cmi_jax.metrics.irs import compute_irs
from cmi_jax.metrics.knn_mi import (
    conditional_mutual_information, latent_mi_report, mutual_information)
from cmi_jax.metrics.mig import compute_mig
from cmi_jax.metrics.sap import compute_sap
from cmi_jax.metrics.total_correlation import compute_total_correlation
from cmi_jax.metrics.total_correlation import gaussian_total_correlation
from cmi_jax.metrics.wasserstein import compute_wasserstein_correlation
from cmi_jax.metrics.wasserstein import gaussian_wasserstein_correlation

# name -> (function, takes factors, takes a seed)
_METRICS = {
    'dci': (compute_dci, True, True),
    'mig': (compute_mig, True, False),
    'sap': (compute_sap, True, True),
    'sap_scale_free': (functools.partial(compute_sap, variant='scale_free'),
                       True, True),
    'irs': (compute_irs, True, False),
    'factor_vae': (compute_factor_vae, True, True),
    'beta_vae': (compute_beta_vae, True, True),
    'beta_vae_scale_free': (
        functools.partial(compute_beta_vae, variant='scale_free'), True, True),
    'total_correlation': (compute_total_correlation, False, False),
    'wasserstein': (compute_wasserstein_correlation, False, False),
}

METRIC_NAMES = tuple(_METRICS)


def compute_all(codes, factors, seed: int = 0, *,
                options: Mapping[str, Mapping[str, Any]] | None = None
                ) -> dict[str, float]:
  """Runs every disentanglement metric on ``codes [N, D >= 2]``, ``factors``.

  Every sampling metric gets the same ``seed``, so each result equals the
  direct call ``compute_<name>(codes, factors, seed=seed)``. ``options``:
  per-metric keyword overrides by name in ``METRIC_NAMES``, e.g.
  ``{'dci': {'model': 'random_forest'}}``. Returns a flat dict
  ``'<metric>/<score>' -> float``, e.g. ``'dci/disentanglement'``.
  """
  options = dict(options or {})
  if unknown := set(options) - set(_METRICS):
    raise ValueError(f'options names unknown metrics {sorted(unknown)}; valid '
                     f'names are {list(METRIC_NAMES)}.')
  scores: dict[str, float] = {}
  for name, (fn, takes_factors, takes_seed) in _METRICS.items():
    kwargs = {'seed': seed} if takes_seed else {}
    kwargs.update(options.get(name, {}))
    args = (codes, factors) if takes_factors else (codes,)
    for key, value in fn(*args, **kwargs).items():
      scores[f'{name}/{key}'] = float(value)
  return scores


__all__ = [
    'METRIC_NAMES', 'compute_all', 'compute_beta_vae', 'compute_dci',
    'compute_factor_vae', 'compute_irs', 'compute_mig', 'compute_sap',
    'compute_total_correlation', 'compute_wasserstein_correlation',
    'conditional_mutual_information', 'disentanglement_completeness',
    'gaussian_total_correlation', 'gaussian_wasserstein_correlation',
    'latent_mi_report', 'mutual_information']
