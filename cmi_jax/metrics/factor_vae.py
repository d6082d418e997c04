"""FactorVAE score (Kim & Mnih, 2018, "Disentangling by Factorising"),
observational version.

One *vote* is made as follows:

1. pick a factor k uniformly and an anchor row uniformly among the rows whose
   value of ``s_k`` is shared by another row; take
   ``batch_size`` rows (with replacement) among the rows sharing the anchor's
   value of ``s_k`` -- the data's version of "a batch with factor k fixed";
2. divide every code dimension by its standard deviation over the whole
   (train) data, so all dimensions are on one scale;
3. the vote is ``(argmin_d Var_batch[z_d / std_d], k)``, over the active
   (non-constant) dimensions: the dimension that moves least when k is fixed.

The classifier is a majority vote: dimension d predicts the factor it was most
often paired with in the training votes. The score is its accuracy on the
training votes and on evaluation votes built from held-out rows. Chance level is
about ``1/K``; a code with one dimension per factor scores 1.
"""

from __future__ import annotations

import numpy as np

from cmi_jax.metrics import _common

# Votes gathered per vectorised block: bounds the [block, batch_size, D] gather.
_BLOCK = 1024


def _votes(codes: np.ndarray, dense: np.ndarray, num_votes: int,
           batch_size: int, rng: np.random.Generator) -> np.ndarray:
  """Vote counts ``[D', K]`` from ``num_votes`` fixed-factor batches.

  Args:
    codes: float ``[N, D']`` active codes, already divided by their global std.
    dense: int ``[N, K]`` factor labels relabelled to ``0..V_j-1``.
    num_votes: number of batches (votes).
    batch_size: rows per batch L >= 2.
    rng: random generator.
  """
  sampler = _common.SameValueSampler(dense)
  usable = sampler.require_usable_factors('batch')
  counts = np.zeros((codes.shape[1], dense.shape[1]), dtype=np.int64)
  for start in range(0, num_votes, _BLOCK):
    m = min(_BLOCK, num_votes - start)
    factor = usable[rng.integers(usable.size, size=m)]
    anchor = sampler.draw_anchors(factor, rng)
    rows = sampler.draw(factor[:, None], anchor[:, None], rng,
                        size=(m, batch_size))  # [m, L]
    local_var = codes[rows].var(axis=1, ddof=1)  # [m, D']
    np.add.at(counts, (np.argmin(local_var, axis=1), factor), 1)
  return counts


def compute_factor_vae(codes, factors, *, batch_size: int = 64,
                       num_train: int = 10000, num_eval: int = 5000,
                       test_fraction: float = 0.25,
                       seed: _common.Seed = 0) -> dict[str, float]:
  """FactorVAE score of a representation.

  Args:
    codes: float ``[N, D]`` codes.
    factors: int ``[N, K]`` factor labels, each column with >= 2 values.
    batch_size: rows per fixed-factor batch (64 in Kim & Mnih).
    num_train: votes that train the majority-vote classifier.
    num_eval: votes that evaluate it.
    test_fraction: share of rows held out to build the evaluation votes; the
      global std and the training votes use the other rows.
    seed: int or ``numpy.random.Generator``.

  Returns:
    ``{'train_accuracy', 'eval_accuracy'}`` in [0, 1] and
    ``'num_active_dims'``. With no active dimension both accuracies are 0.

  Raises:
    ValueError: on malformed inputs, ``batch_size < 2`` or vote counts < 1.
  """
  codes, factors = _common.check_codes_and_factors(codes, factors)
  batch_size = _common.check_positive_int(batch_size, 'batch_size', minimum=2)
  num_train = _common.check_positive_int(num_train, 'num_train')
  num_eval = _common.check_positive_int(num_eval, 'num_eval')
  rng = _common.as_generator(seed)
  train, test = _common.split_indices(codes.shape[0], test_fraction, rng)
  global_std = codes[train].std(axis=0, ddof=1)
  active = global_std > 0
  if not active.any():
    return {'train_accuracy': 0.0, 'eval_accuracy': 0.0,
            'num_active_dims': 0.0}
  scaled = codes[:, active] / global_std[active]
  dense, _ = _common.dense_labels(factors)
  train_votes = _votes(scaled[train], dense[train], num_train, batch_size, rng)
  eval_votes = _votes(scaled[test], dense[test], num_eval, batch_size, rng)
  # Majority vote; ties go to the lowest factor index (np.argmax).
  classifier = np.argmax(train_votes, axis=1)  # [D'] -> factor
  dims = np.arange(classifier.size)
  return {
      'train_accuracy': float(train_votes[dims, classifier].sum() / num_train),
      'eval_accuracy': float(eval_votes[dims, classifier].sum() / num_eval),
      'num_active_dims': float(active.sum()),
  }
