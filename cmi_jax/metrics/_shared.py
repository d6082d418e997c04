"""Shared private helpers of the metrics (conventions: package docstring)."""

from __future__ import annotations

from typing import Union

import numpy as np

from cmi_jax import validate

Seed = Union[int, np.random.Generator, None]
_BLOCK = 1024


def as_generator(seed: Seed) -> np.random.Generator:
  """A NumPy ``Generator`` from an int seed, ``None``, or a Generator (kept)."""
  if not isinstance(seed, (int, np.integer, np.random.Generator, type(None))):
    raise ValueError('seed must be an int, a numpy.random.Generator or None, '
                     f'e.g. seed=0; got {type(seed).__name__}.')
  return np.random.default_rng(seed)  # returns a Generator unchanged


def check_codes(codes, name: str = 'codes', min_rows: int = 1) -> np.ndarray:
  """Validates a finite real code matrix; returns it as float64 ``[N, D]``."""
  codes = np.asarray(codes)
  if (codes.ndim != 2 or codes.size == 0 or codes.dtype.kind not in 'iuf'
      or len(codes) < min_rows):
    raise ValueError(f'{name} must be a 2-D array [N, D] of real numbers with '
                     f'at least {min_rows} rows and D >= 1 columns; got '
                     f'{codes.dtype} {codes.shape}. Reshape a single code '
                     'dimension to [N, 1].')
  codes = codes.astype(np.float64)
  if not np.all(np.isfinite(codes)):
    bad = np.argwhere(~np.isfinite(codes))[0]
    raise ValueError(f'{name} contains NaN or inf (first at row {bad[0]}, '
                     f'column {bad[1]}); fix or drop those rows.')
  return codes


def check_labels(labels: np.ndarray, name: str, hint: str) -> np.ndarray:
  """Validates non-negative integer (or bool) labels; returns them as int64.

  ``hint``: how to fix a non-integer dtype.
  """
  if labels.dtype.kind not in 'biu':
    raise ValueError(f'{name} must hold integer class labels; got '
                     f'{labels.dtype}. {hint}')
  if np.any(labels < 0):
    raise ValueError(f'{name} has negative labels; drop unlabelled rows.')
  return labels.astype(np.int64)


def check_codes_and_factors(codes, factors, two_best: str = ''
                            ) -> tuple[np.ndarray, np.ndarray]:
  """Validates ``codes [N, D]`` and ``factors [N, K]``; float64 and int64.

  ``factors`` must hold non-negative labels, >= 2 values per column. A score
  named in ``two_best`` compares the two best code dimensions: D >= 2.
  """
  codes = check_codes(codes)
  if two_best and codes.shape[1] < 2:
    raise ValueError(f'{two_best} compares the two best code dimensions: '
                     f'codes need D >= 2 columns, not {codes.shape[1]}.')
  factors = np.asarray(factors)
  if factors.ndim != 2 or factors.shape[1] == 0 or len(factors) != len(codes):
    raise ValueError(f'factors must be [N, K], K >= 1, with the same number '
                     f'of rows N as codes {codes.shape}; got {factors.shape}.')
  factors = check_labels(factors, 'factors', 'Discretise continuous factors '
                         'first, or cast with .astype(int).')
  constant = np.flatnonzero(np.all(factors == factors[0], axis=0))
  if constant.size:
    raise ValueError(f'factors column {constant[0]} takes a single value '
                     'on all rows; drop it or use data where it varies.')
  return codes, factors


def check_cov(cov) -> np.ndarray:
  """Validates a covariance; returns it as float64 ``[D, D]``."""
  cov = np.asarray(cov, dtype=np.float64)
  validate.arrays('', {'cov': (cov, '[D, D]')}, 'A covariance is square.')
  return cov


def dense_labels(factors: np.ndarray) -> np.ndarray:
  """``dense [N, K]``: each column relabelled ``0..V_j-1``.

  ``dense[:, j]`` indexes the sorted distinct values of ``factors[:, j]``.
  """
  return np.stack(
      [np.unique(column, return_inverse=True)[1] for column in factors.T], 1)


def seeded_split(num_rows: int, test_fraction: float, seed: Seed
                 ) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
  """``(as_generator(seed), train, test)``; each part gets at least one row.

  ``num_rows >= 2``, as every checked factor holds two values.
  """
  rng = as_generator(seed)
  test_fraction = validate.number(test_fraction, 'test_fraction', 0, 1,
                                  open_low=True, open_high=True)
  num_test = min(max(int(round(num_rows * test_fraction)), 1), num_rows - 1)
  perm = rng.permutation(num_rows)
  return rng, perm[num_test:], perm[:num_test]


def active_dims(codes: np.ndarray) -> np.ndarray:
  """Mask ``[D]`` of code dimensions that are not exactly constant."""
  # Not np.var: that of a constant float column can come out as ~1e-33.
  return np.ptp(codes, axis=0) > 0


def histogram_discretize(codes: np.ndarray, num_bins: int) -> np.ndarray:
  """Equal-width histogram binning of each code dimension.

  Column ``i`` of float ``[N, D]`` codes is cut into B = ``num_bins`` bins of
  width ``(max_i - min_i) / B``; the maximum falls in the last bin, a constant
  column in bin 0. Returns int64 ``[N, D]`` in ``[0, B)``.
  """
  lo = codes.min(axis=0)
  width = codes.max(axis=0) - lo
  bins = np.floor((codes - lo) / np.where(width > 0, width, 1.0) * num_bins)
  return np.clip(bins.astype(np.int64), 0, num_bins - 1)


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
  """Plug-in entropy ``-sum_v p(v) log p(v)`` in nats, ``[N, A]`` -> ``[A]``.

  ``p``: the empirical frequencies of each column's non-negative labels.
  """
  p = [np.bincount(column) / labels.shape[0] for column in labels.T]
  return np.array([-np.sum(q[q > 0] * np.log(q[q > 0])) for q in p])


def discrete_mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Plug-in mutual information between every column of ``a`` and of ``b``.

  ``I(a_i; b_j) = sum_{u,v} p(u,v) log(p(u,v) / (p(u) p(v)))`` with empirical
  frequencies, in nats, for int ``a [N, A]`` and ``b [N, B]`` with values
  ``>= 0``. Returns float64 ``[A, B]``.
  """
  n, num_a = a.shape
  va = int(a.max()) + 1
  out = np.empty((num_a, b.shape[1]))
  column = np.arange(num_a) * va  # offsets that keep the columns of a apart
  for j in range(b.shape[1]):
    vb = int(b[:, j].max()) + 1
    cell = (column + a) * vb + b[:, j:j + 1]
    joint = np.bincount(cell.ravel(), minlength=num_a * va * vb).reshape(
        num_a, va, vb) / n
    product = joint.sum(2, keepdims=True) * joint.sum(1, keepdims=True)
    # 1 (a zero term) where joint = 0; product > 0 wherever joint > 0.
    ratio = np.divide(joint, product, out=np.ones_like(joint), where=joint > 0)
    out[:, j] = np.sum(joint * np.log(ratio), axis=(1, 2))
  return np.maximum(out, 0.0)  # only rounding can make a plug-in MI negative


class SameValueSampler:
  """Draws, for (factor k, row i), a random row sharing row i's value of k.

  The observational stand-in for "fix factor k, resample the others" of the
  FactorVAE and BetaVAE scores: the rows with ``factors[:, k] ==
  factors[i, k]`` are a sample of ``p(x | s_k = s_k^(i))``. Each (factor,
  value) group is a contiguous slice of one flat array of sorted rows, so a
  draw is ``flat[start[g] + floor(u * count[g])]``.
  """

  def __init__(self, dense_factors: np.ndarray):
    """``dense_factors``: int ``[N, K]`` with column j in ``[0, V_j)``."""
    n = dense_factors.shape[0]
    counts = [np.bincount(column) for column in dense_factors.T]
    self._dense = dense_factors
    self._flat = np.concatenate(
        [np.argsort(column, kind='stable') for column in dense_factors.T])
    self._count = np.concatenate(counts)
    self._start = np.concatenate(
        [j * n + np.cumsum(c) - c for j, c in enumerate(counts)])
    self._offset = np.cumsum([0] + [c.size for c in counts[:-1]])
    # Only a value shared by two rows can anchor a batch where others vary.
    self._eligible = [np.flatnonzero(c[column] >= 2)
                      for c, column in zip(counts, dense_factors.T)]

  def blocks(self, num: int, what: str, rng: np.random.Generator):
    """Yields ``(slice, factor [m])`` covering ``num`` uniform usable factors.

    A factor is usable if two rows share one of its values. Blocks of at most
    ``_BLOCK`` rows bound the callers' ``[m, L, D]`` gathers; ``what`` names
    the group the score forms (``'pair'``, ``'batch'``) in the error raised
    when no factor is usable.
    """
    usable = np.flatnonzero([rows.size > 0 for rows in self._eligible])
    if usable.size == 0:
      raise ValueError(f'no factor value is shared by two rows, so no {what} '
                       'with a fixed factor can be formed; pass more rows.')
    for start in range(0, num, _BLOCK):
      m = min(_BLOCK, num - start)
      yield slice(start, start + m), usable[rng.integers(usable.size, size=m)]

  def draw_anchors(self, factor: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """One anchor row per request, uniform among rows sharing their value.

    ``factor``: int ``[M]``, each usable; returns int ``[M]`` rows. The fixed
    value ``v`` of factor k thus has its data frequency, as in "draw v from
    p(s_k)".
    """
    anchors = np.empty(factor.shape, dtype=np.int64)
    for j in np.unique(factor):
      rows = self._eligible[j]
      anchors[factor == j] = rows[rng.integers(rows.size,
                                               size=np.sum(factor == j))]
    return anchors

  def draw(self, factor: np.ndarray, rows: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Rows ``out [M]`` with ``factors[out, k] == factors[rows, k]``, uniform.

    Drawn with replacement (the anchor itself can come out); ``factor`` (k)
    and anchor ``rows`` are int ``[M]``.
    """
    group = self._offset[factor] + self._dense[rows, factor]
    pick = np.floor(rng.random(factor.shape) * self._count[group])
    return self._flat[self._start[group] + pick.astype(np.int64)]
