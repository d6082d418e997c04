"""Shared private helpers of the metrics (conventions: package docstring)."""

from __future__ import annotations

from typing import Union

import numpy as np

from cmi_jax import validate

Seed = Union[int, np.random.Generator, None]
_BLOCK = 1024


def as_generator(seed: Seed) -> np.random.Generator:
  """A NumPy ``Generator`` from an int seed, ``None``, or a Generator (kept)."""
  if isinstance(seed, np.random.Generator):
    return seed
  if seed is None or isinstance(seed, (int, np.integer)):
    return np.random.default_rng(seed)
  raise ValueError(
      f'seed must be an int, a numpy.random.Generator or None; got '
      f'{type(seed).__name__}. Pass e.g. seed=0.')


def check_codes(codes, name: str = 'codes', min_rows: int = 1) -> np.ndarray:
  """Validates a finite real code matrix; returns it as float64 ``[N, D]``."""
  codes = np.asarray(codes)
  if codes.ndim != 2:
    raise ValueError(
        f'{name} must be a 2-D array [N, D]; got shape {codes.shape}. '
        'Reshape a single code dimension to [N, 1].')
  if codes.shape[0] == 0 or codes.shape[1] == 0:
    raise ValueError(f'{name} is empty (shape {codes.shape}); pass at least '
                     'one row and one column.')
  if not np.issubdtype(codes.dtype, np.number) or np.issubdtype(
      codes.dtype, np.complexfloating):
    raise ValueError(f'{name} must be real numbers; got dtype {codes.dtype}.')
  if codes.shape[0] < min_rows:
    raise ValueError(f'{name} needs at least {min_rows} rows here; got '
                     f'{codes.shape[0]}.')
  codes = codes.astype(np.float64)
  if not np.all(np.isfinite(codes)):
    bad = np.argwhere(~np.isfinite(codes))[0]
    raise ValueError(
        f'{name} contains NaN or inf (first at row {bad[0]}, column {bad[1]}); '
        'remove or fix those rows before computing metrics.')
  return codes


def check_factors(factors, num_rows: int | None = None,
                  name: str = 'factors') -> np.ndarray:
  """Validates non-negative labels, >= 2 values per column; int64 ``[N, K]``."""
  factors = np.asarray(factors)
  if factors.ndim != 2:
    raise ValueError(
        f'{name} must be a 2-D integer array [N, K]; got shape '
        f'{factors.shape}. Reshape a single factor to [N, 1].')
  if factors.shape[1] == 0:
    raise ValueError(f'{name} has no columns; pass at least one factor.')
  if num_rows is not None and factors.shape[0] != num_rows:
    raise ValueError(
        f'codes and {name} must have the same number of rows N; got '
        f'{num_rows} codes and {factors.shape[0]} {name} rows.')
  if not (np.issubdtype(factors.dtype, np.integer) or factors.dtype == bool):
    raise ValueError(
        f'{name} must hold integer class labels; got dtype {factors.dtype}. '
        'Discretise continuous factors first, or cast with .astype(int).')
  factors = factors.astype(np.int64)
  if np.any(factors < 0):
    column = int(np.argwhere(factors < 0)[0, 1])
    raise ValueError(
        f'{name} column {column} has negative labels (missing labels are -1); '
        'drop the unlabelled rows before computing disentanglement metrics.')
  for j in range(factors.shape[1]):
    if np.all(factors[:, j] == factors[0, j]):
      raise ValueError(
          f'{name} column {j} takes a single value ({factors[0, j]}) on all '
          f'{factors.shape[0]} rows; a constant factor carries no information. '
          'Drop that column or evaluate on data where it varies.')
  return factors


def check_codes_and_factors(codes, factors) -> tuple[np.ndarray, np.ndarray]:
  """Validates ``codes [N, D]`` and ``factors [N, K]`` together."""
  codes = check_codes(codes)
  return codes, check_factors(factors, num_rows=codes.shape[0])


def check_cov(cov) -> np.ndarray:
  """Validates a covariance; returns it as float64 ``[D, D]``."""
  cov = np.asarray(cov, dtype=np.float64)
  if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
    raise ValueError(f'cov must be a square [D, D] matrix; got {cov.shape}.')
  return cov


def dense_labels(factors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(dense [N, K], num_values [K])``: each column relabelled ``0..V_j-1``.

  ``dense[:, j]`` indexes the sorted distinct values of ``factors[:, j]``.
  """
  dense = np.empty_like(factors, dtype=np.int64)
  num_values = np.empty(factors.shape[1], dtype=np.int64)
  for j in range(factors.shape[1]):
    values, dense[:, j] = np.unique(factors[:, j], return_inverse=True)
    num_values[j] = values.size
  return dense, num_values


def seeded_split(num_rows: int, test_fraction: float, seed: Seed
                 ) -> tuple[np.random.Generator, np.ndarray, np.ndarray]:
  """``(as_generator(seed), train, test)``; each part gets at least one row."""
  rng = as_generator(seed)
  test_fraction = validate.number(test_fraction, 'test_fraction', 0, 1,
                                  open_low=True, open_high=True)
  if num_rows < 2:
    raise ValueError(
        f'a train/test split needs at least 2 rows; got {num_rows}.')
  num_test = int(round(num_rows * test_fraction))
  num_test = min(max(num_test, 1), num_rows - 1)
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
  safe = np.where(width > 0, width, 1.0)
  bins = np.floor((codes - lo) / safe * num_bins).astype(np.int64)
  return np.clip(bins, 0, num_bins - 1)


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
  """Plug-in entropy ``-sum_v p(v) log p(v)`` in nats, ``[N, A]`` -> ``[A]``.

  ``p``: the empirical frequencies of each column's non-negative labels.
  """
  out = np.empty(labels.shape[1])
  for j in range(labels.shape[1]):
    p = np.bincount(labels[:, j]) / labels.shape[0]
    p = p[p > 0]
    out[j] = -np.sum(p * np.log(p))
  return out


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
    cell = (column[None, :] + a) * vb + b[:, j:j + 1]
    joint = np.bincount(cell.ravel(), minlength=num_a * va * vb)
    joint = joint.reshape(num_a, va, vb) / n
    pa = joint.sum(axis=2, keepdims=True)
    pb = joint.sum(axis=1, keepdims=True)
    product = pa * pb  # > 0 wherever joint > 0
    ratio = np.where(joint > 0, joint / np.where(product > 0, product, 1.0),
                     1.0)
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
    n, k = dense_factors.shape
    self._dense = dense_factors
    orders, starts, counts, offsets = [], [], [], [0]
    for j in range(k):
      column = dense_factors[:, j]
      orders.append(np.argsort(column, kind='stable'))
      count = np.bincount(column)
      counts.append(count)
      starts.append(j * n + np.concatenate([[0], np.cumsum(count)[:-1]]))
      offsets.append(offsets[-1] + count.size)
    self._flat = np.concatenate(orders)
    self._start = np.concatenate(starts)
    self._count = np.concatenate(counts)
    self._offset = np.asarray(offsets[:-1])
    # Only a value shared by two rows can anchor a batch where others vary.
    self._eligible = [
        np.flatnonzero(counts[j][dense_factors[:, j]] >= 2) for j in range(k)]

  @property
  def usable_factors(self) -> np.ndarray:
    """Indices of the factors with at least one value shared by two rows."""
    return np.asarray(
        [j for j, rows in enumerate(self._eligible) if rows.size > 0],
        dtype=np.int64)

  def blocks(self, num: int, what: str, rng: np.random.Generator):
    """Yields ``(slice, factor [m])`` covering ``num`` uniform usable factors.

    Blocks of at most ``_BLOCK`` rows bound the callers' ``[m, L, D]`` gathers;
    ``what`` names the group the score forms (``'pair'``, ``'batch'``) in the
    error raised when no factor is usable.
    """
    usable = self.usable_factors
    if usable.size == 0:
      raise ValueError(
          f'no factor value is shared by two rows, so no {what} with a fixed '
          'factor can be formed; pass more rows.')
    for start in range(0, num, _BLOCK):
      m = min(_BLOCK, num - start)
      yield slice(start, start + m), usable[rng.integers(usable.size, size=m)]

  def draw_anchors(self, factor: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """One anchor row per request, uniform among rows sharing their value.

    ``factor``: int ``[M]``, each in ``usable_factors``; returns int ``[M]``
    rows. The fixed value ``v`` of factor k thus has its data frequency, as in
    "draw v from p(s_k)".
    """
    anchors = np.empty(factor.shape, dtype=np.int64)
    for j in np.unique(factor):
      mask = factor == j
      rows = self._eligible[j]
      anchors[mask] = rows[rng.integers(rows.size, size=int(mask.sum()))]
    return anchors

  def draw(self, factor: np.ndarray, rows: np.ndarray,
           rng: np.random.Generator,
           size: tuple[int, ...] | None = None) -> np.ndarray:
    """Rows ``out`` with ``factors[out, k] == factors[rows, k]``, uniform.

    Drawn with replacement (the anchor itself can come out); ``factor`` (k),
    anchor ``rows`` and ``size`` broadcast to the output shape.
    """
    shape = np.broadcast_shapes(np.shape(factor), np.shape(rows),
                                size if size is not None else ())
    factor = np.broadcast_to(factor, shape)
    rows = np.broadcast_to(rows, shape)
    group = self._offset[factor] + self._dense[rows, factor]
    pick = np.floor(rng.random(factor.shape) * self._count[group])
    return self._flat[self._start[group] + pick.astype(np.int64)]
