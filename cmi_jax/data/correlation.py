"""Joint distributions of K binary attributes with a prescribed correlation.

A *joint table* is a NumPy array of shape ``(2,) * K``: entry
``table[a_1, ..., a_K]`` is ``p(s_1=a_1, ..., s_K=a_K)``. Combinations are also
addressed by a flat index in ``[0, 2**K)`` in C order, so attribute 0 is the
most significant bit.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import validate


def joint_table(corr: float, num_attributes: int = 2) -> np.ndarray:
  """The paper's joint table of ``num_attributes`` binary attributes.

  For K = 2 this is ``[[1 + c, 1 - c], [1 - c, 1 + c]] / 4`` with ``c`` in
  ``[-1, 1]`` (``c < 0`` is the anti-correlated table). For K > 2 the all-equal
  combinations (all zeros, all ones) are favoured: the table is the mixture
  ``(1 - c) * uniform + c * uniform-over-{0...0, 1...1}``, with ``c`` in
  ``[0, 1]``; every pair of attributes then has correlation ``c`` (in the +/-1
  coding), and K = 2 reduces to the matrix above. Returns float64 ``(2,) * K``.
  """
  validate.integer(num_attributes, 'num_attributes', 2)
  low = -1.0 if num_attributes == 2 else 0.0
  if not low <= corr <= 1.0:
    raise ValueError(
        f'correlation {corr} is outside [{low:g}, 1] for {num_attributes} '
        'binary attributes; pass a value in that range.')
  uniform = np.full((2,) * num_attributes, 1.0 / 2**num_attributes)
  # Mass |c| split evenly between two combinations: the all-equal ones (flat
  # 0 and -1) for c >= 0, for c < 0 (K = 2 only) the mixed ones (flat 1, 2).
  peaks = np.zeros_like(uniform)
  peaks.flat[[0, -1] if corr >= 0 else [1, 2]] = 0.5
  return (1.0 - abs(corr)) * uniform + abs(corr) * peaks


def anti_correlation(train_corr: float, num_attributes: int) -> float:
  """The correlation of the anti-correlated test split.

  K = 2: ``-train_corr``. K > 2: 0, as :func:`joint_table` has no negative
  correlations; ``test_anti`` then equals ``test_uncorr`` in distribution.
  """
  return -float(train_corr) if num_attributes == 2 else 0.0


def split_tables(train_table: np.ndarray, train_corr: float,
                 num_attributes: int) -> dict[str, np.ndarray]:
  """The joint table of every split of the paper's protocol.

  ``train``, ``train_eval``, ``val``: ``train_table``; ``test_anti``:
  ``joint_table`` at :func:`anti_correlation`; ``test_uncorr``: at 0.
  """
  anti = anti_correlation(train_corr, num_attributes)
  return {'train': train_table, 'train_eval': train_table, 'val': train_table,
          'test_anti': joint_table(anti, num_attributes),
          'test_uncorr': joint_table(0.0, num_attributes)}


def validate_table(table: np.ndarray | Sequence) -> np.ndarray:
  """Checks a user-given joint table; returns it normalised, as float64."""
  table = np.asarray(table, dtype=np.float64)
  if (table.ndim < 1 or any(n != 2 for n in table.shape)
      or not np.all(np.isfinite(table)) or np.any(table < 0)
      or table.sum() <= 0):
    raise ValueError(
        'a joint table of K binary attributes has shape (2,)*K and finite '
        'entries >= 0, at least one positive, e.g. [[0.45, 0.05], [0.05, '
        f'0.45]] for K=2; got shape {table.shape}: {table.tolist()}.')
  return table / table.sum()


def combination_to_labels(index: np.ndarray | jax.Array,
                          num_attributes: int) -> jax.Array | np.ndarray:
  """Flat combination index ``[...]`` -> 0/1 labels ``[..., K]`` (np or jnp)."""
  xp = jnp if isinstance(index, jax.Array) else np
  shifts = xp.arange(num_attributes - 1, -1, -1)
  return (index[..., None] >> shifts) & 1


def labels_to_combination(labels: np.ndarray | jax.Array
                          ) -> jax.Array | np.ndarray:
  """Attribute labels ``[..., K]`` (0/1) -> flat combination index ``[...]``."""
  xp = jnp if isinstance(labels, jax.Array) else np
  weights = 2 ** xp.arange(labels.shape[-1] - 1, -1, -1)
  return (labels * weights).sum(-1)


def sample_combinations(rng: np.random.Generator, table: np.ndarray,
                        n: int) -> np.ndarray:
  """Draws ``n`` label vectors ``[n, K]`` (int32, 0/1) from a joint table."""
  table = validate_table(table)
  flat = rng.choice(table.size, size=n, p=table.ravel())
  return combination_to_labels(flat, table.ndim).astype(np.int32)


def sample_combinations_jax(key: jax.Array, table: jax.Array,
                            n: int) -> jax.Array:
  """JAX twin of :func:`sample_combinations`: ``[n, K]`` int32, jit-safe.

  ``table`` may be traced; its zero entries are never drawn.
  """
  # Inverse-CDF sampling: the distribution of jax.random.categorical, but
  # much faster to compile on CPU.
  cdf = jnp.cumsum(table.reshape(-1))
  u = jax.random.uniform(key, (n,), cdf.dtype) * cdf[-1]
  flat = jnp.minimum(jnp.searchsorted(cdf, u, side='right'), cdf.size - 1)
  return combination_to_labels(flat, table.ndim).astype(jnp.int32)


def joint_counts(labels: np.ndarray, num_classes: Sequence[int] | None = None
                 ) -> np.ndarray:
  """Counts, ``num_classes``-shaped, of the combinations in labels ``[N, K]``.

  Rows with a missing label (-1) are left out.
  """
  labels = np.asarray(labels)
  num_classes = tuple((2,) * labels.shape[1] if num_classes is None
                      else num_classes)
  full = labels[np.all(labels >= 0, axis=1)]
  flat = (np.ravel_multi_index(tuple(full.T), num_classes) if len(full)
          else np.zeros(0, int))
  return np.bincount(flat, minlength=int(np.prod(num_classes))).reshape(
      num_classes)


def realised_correlation(labels: np.ndarray) -> np.ndarray:
  """Pearson correlation ``[K, K]`` of labels ``[N, K]``, full rows only.

  A constant attribute gets NaN.
  """
  labels = np.asarray(labels, dtype=np.float64)
  full = labels[np.all(labels >= 0, axis=1)]
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.corrcoef(full, rowvar=False)


def combination_name(combo: Sequence[int],
                     names: Sequence[str] | None = None) -> str:
  """``'Male=1, Smiling=0'`` for a combination of K attribute values."""
  names = names or [f'attribute{k}' for k in range(len(combo))]
  return ', '.join(f'{n}={int(v)}' for n, v in zip(names, combo))


def exact_subsample_counts(available: np.ndarray, table: np.ndarray,
                           names: Sequence[str] | None = None) -> np.ndarray:
  """The largest counts ``floor(N * p)`` that fit within ``available``.

  ``N`` is the largest total with ``floor(N * p) <= available`` for every
  combination, so a sub-sample of these counts has joint frequencies equal to
  ``table`` up to rounding to whole examples. Returns int64 counts of the
  shape of ``table``; a combination with ``p > 0`` left with no example
  raises, naming it by the optional attribute ``names``.
  """
  available = np.asarray(available, dtype=np.int64)
  table = validate_table(table) if table.shape == (2,) * table.ndim else (
      np.asarray(table, np.float64) / np.sum(table))
  positive = table > 0
  total = int(np.floor(np.min(available[positive] / table[positive])))
  counts = np.floor(total * table + 1e-9).astype(np.int64)
  counts = np.minimum(counts, available)
  empty = positive & (counts == 0)
  if empty.any():  # the scarcest first: it is the one to name
    combo = np.unravel_index(np.argmin(np.where(empty, available, np.inf)),
                             table.shape)
    raise ValueError(
        f'attribute combination ({combination_name(combo, names)}) is left '
        f'with zero examples (probability {table[combo]:.3g}, '
        f'{available[combo]} rows in the data, {int(counts.sum())} in the '
        'sub-sample); use a correlation of smaller magnitude or more data.')
  return counts


def exact_combination_counts(table: np.ndarray, n: int) -> np.ndarray:
  """Counts of every combination, summing to ``n``, that follow ``table`` best.

  Largest-remainder rounding of ``n * table`` (ties to the lower flat index),
  so every count is within 1 of ``n * p``.
  """
  table = validate_table(table)
  exact = n * table.ravel()
  counts = np.floor(exact).astype(np.int64)
  order = np.argsort(-(exact - counts), kind='stable')
  counts[order[:n - counts.sum()]] += 1
  return counts.reshape(table.shape)
