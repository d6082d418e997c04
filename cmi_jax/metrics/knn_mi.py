"""k-nearest-neighbour estimators of mutual information, in nats.

All distances are max-norm (Chebyshev) distances, queried with
``scipy.spatial.cKDTree``; ``psi`` is the digamma function, ``N`` the number of
rows and ``<.>`` the mean over rows.

* Continuous ``x``, continuous ``y`` -- KSG estimator 1 (Kraskov, Stoegbauer &
  Grassberger, 2004). ``eps_i`` is the distance from row i to its k-th
  neighbour in the joint space ``(x, y)``; ``n_x(i)`` / ``n_y(i)`` count the
  other rows strictly closer than ``eps_i`` in the ``x`` / ``y`` space alone:

      I(X; Y) = psi(k) + psi(N) - < psi(n_x + 1) + psi(n_y + 1) >.

* Conditional, all continuous -- Frenzel & Pompe (2007). ``eps_i`` from the
  joint space ``(x, y, z)``, counts in the ``(x, z)``, ``(y, z)`` and ``z``
  spaces:

      I(X; Y | Z) = psi(k) - < psi(n_xz + 1) + psi(n_yz + 1) - psi(n_z + 1) >.

* Continuous ``x``, discrete ``y`` -- Ross (2014). ``d_i`` is the distance from
  row i to its k-th neighbour among the rows with the same label (``N_y(i)``
  of them); ``m_i`` counts the rows of the whole data set within ``d_i``
  (including that k-th neighbour, excluding row i):

      I(X; Y) = psi(N) - < psi(N_y) > + psi(k) - < psi(m) >.

  Labels held by a single row carry no neighbour and are dropped; labels with
  ``<= k`` rows use ``k_i = N_y(i) - 1`` neighbours.

Discrete labels are not jittered: the kNN geometry of jittered labels depends
on the arbitrary label spacing, and KSG on them degenerates into counting
label-mates, which Ross' estimator does exactly.

Continuous inputs are standardised per column (MI is invariant to that, and it
balances the max-norm across columns) and receive Gaussian jitter of standard
deviation ``jitter`` (1e-10, as Kraskov et al. recommend; 0 disables it),
drawn from ``seed`` (an int or a Generator), so that repeated values -- e.g. a
collapsed code dimension -- do not give zero distances.

Estimates can come out slightly negative for independent variables; they are
returned as is (clip at 0 for display only).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
from scipy import spatial, special

from cmi_jax import validate
from cmi_jax.metrics import _shared


def _prepare(k, seed: _shared.Seed, **arrays) -> tuple:
  """``(k, jitter generator, *arrays as [N, d])`` after the shared checks."""
  k = validate.integer(k, 'k', 1)
  for name, a in arrays.items():
    a = np.asarray(a)
    a = arrays[name] = a[:, None] if a.ndim == 1 else a
    validate.arrays('', {name: (a, '[N, d]')}, '[N] is [N, 1].')
  rows = {name: len(a) for name, a in arrays.items()}
  if len(set(rows.values())) > 1:
    raise ValueError('all inputs need the same number of rows N; got '
                     + ', '.join(f'{n}: {r}' for n, r in rows.items()) + '.')
  if rows['x'] <= k:
    raise ValueError(f'a kNN estimate needs N > k rows; got N = {rows["x"]}'
                     f', k = {k}. Pass more rows or a smaller k.')
  return (k, _shared.as_generator(seed), *arrays.values())


def _continuous(a: np.ndarray, name: str, rng: np.random.Generator,
                jitter: float) -> np.ndarray:
  """Standardised, jittered float64 copy of a continuous ``[N, d]`` input."""
  a = _shared.check_codes(a, name)
  std = a.std(axis=0)
  a = (a - a.mean(axis=0)) / np.where(std > 0, std, 1.0)
  return a + jitter * rng.standard_normal(a.shape) if jitter > 0 else a


def _discrete(a: np.ndarray, name: str) -> np.ndarray:
  """``[N]`` int64 label of each row's combination of discrete columns."""
  _shared.check_labels(a, name, f'{name} is declared discrete: pass integer '
                       'labels (e.g. .astype(int)) or declare it continuous.')
  return np.unique(a, axis=0, return_inverse=True)[1].reshape(-1)


def _psi_closer(points: np.ndarray, radius: np.ndarray) -> np.ndarray:
  """``psi(n_i + 1)``, n_i the rows strictly closer than ``radius[i]`` to i."""
  # nextafter turns the tree's "<= r" into the estimators' "< eps".
  return special.digamma(spatial.cKDTree(points).query_ball_point(
      points, np.nextafter(radius, 0.0), p=np.inf, return_length=True))


def _kth_distance(points: np.ndarray, k: int) -> np.ndarray:
  """Max-norm distance from each row to its k-th nearest other row."""
  dist, _ = spatial.cKDTree(points).query(points, k=k + 1, p=np.inf)
  return dist[:, k]


def _ksg(x: np.ndarray, y: np.ndarray, k: int) -> float:
  """KSG estimator 1 of I(X; Y) for continuous ``x [N, dx]``, ``y [N, dy]``."""
  eps = _kth_distance(np.hstack([x, y]), k)
  return float(special.digamma(k) + special.digamma(x.shape[0])
               - np.mean(_psi_closer(x, eps) + _psi_closer(y, eps)))


def _ross(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[float, int]:
  """``(Ross' I(X; Y), rows used)`` for ``x [N, d]``, labels ``[N]``."""
  _, inverse, counts = np.unique(labels, return_inverse=True,
                                 return_counts=True)
  keep = counts[inverse] > 1
  x, inverse = x[keep], inverse[keep]
  num_rows = x.shape[0]
  if num_rows == 0:
    return 0.0, 0
  label_count = counts[inverse]
  k_row = np.minimum(k, label_count - 1)
  radius = np.empty(num_rows)
  for c in np.unique(inverse):
    rows = np.flatnonzero(inverse == c)
    radius[rows] = _kth_distance(x[rows], int(k_row[rows[0]]))
  # "<= d_i" keeps the k-th label-mate itself in m_i; minus 1 drops row i.
  m = spatial.cKDTree(x).query_ball_point(
      x, np.nextafter(radius, np.inf), p=np.inf, return_length=True) - 1
  value = (special.digamma(num_rows) - np.mean(special.digamma(label_count))
           + np.mean(special.digamma(k_row)) - np.mean(special.digamma(m)))
  return float(value), num_rows


def _ross_or_raise(x: np.ndarray, labels: np.ndarray, k: int) -> float:
  value, used = _ross(x, labels, k)
  if used == 0:
    raise ValueError('every label of the discrete variable occurs once, so no '
                     'label has a neighbour; pass more rows per label.')
  return value


def _stratified(z_labels: np.ndarray, k: int, estimate) -> float:
  """``sum_v p(v) estimate(rows with z = v)``, p over the estimable groups.

  ``estimate(rows)`` returns ``(value, rows used)``.
  """
  total, weight = 0.0, 0
  for v in np.unique(z_labels):
    rows = np.flatnonzero(z_labels == v)
    value, used = estimate(rows) if rows.size > k else (0.0, 0)
    total, weight = total + used * value, weight + used
  if weight == 0:
    raise ValueError(f'no value of the discrete z has more than k = {k} rows '
                     '(and a repeated y label); pass more rows or a smaller k.')
  return total / weight


def mutual_information(x, y, *, k: int = 3, discrete_y: bool = False,
                       jitter: float = 1e-10, seed: _shared.Seed = 0) -> float:
  """kNN estimate of ``I(X; Y)`` in nats, from ``k`` neighbours.

  ``x``: continuous ``[N, dx]`` (or ``[N]``); ``y``: ``[N, dy]`` (or
  ``[N]``), continuous (KSG), or integer labels if ``discrete_y`` (Ross;
  several label columns form one joint label). A larger k lowers the
  variance and raises the bias.
  """
  k, rng, x, y = _prepare(k, seed, x=x, y=y)
  x = _continuous(x, 'x', rng, jitter)
  y = _discrete(y, 'y') if discrete_y else _continuous(y, 'y', rng, jitter)
  return _ross_or_raise(x, y, k) if discrete_y else _ksg(x, y, k)


def conditional_mutual_information(
    x, y, z, *, k: int = 3, discrete_y: bool = False, discrete_z: bool = False,
    jitter: float = 1e-10, seed: _shared.Seed = 0) -> float:
  """kNN estimate of ``I(X; Y | Z)`` in nats.

  Both continuous: Frenzel-Pompe. A discrete ``z`` splits the data,
  ``I(X; Y | Z) = sum_v p(v) I(X; Y | Z = v)``, each term a KSG or Ross
  estimate on the rows with ``z = v`` (groups too small to estimate are left
  out and ``p`` renormalised). A discrete ``y`` with a continuous ``z`` uses
  the chain rule ``I((X, Z); Y) - I(Z; Y)``, two Ross estimates. ``x`` is
  continuous ``[N, dx]``, ``y`` ``[N, dy]`` and ``z`` ``[N, dz]`` (each may be
  ``[N]``) integer labels where declared discrete.
  """
  k, rng, x, y, z = _prepare(k, seed, x=x, y=y, z=z)
  x = _continuous(x, 'x', rng, jitter)
  y = _discrete(y, 'y') if discrete_y else _continuous(y, 'y', rng, jitter)
  if discrete_z:
    z = _discrete(z, 'z')
    if discrete_y:
      return _stratified(z, k, lambda rows: _ross(x[rows], y[rows], k))
    return _stratified(
        z, k, lambda rows: (_ksg(x[rows], y[rows], k), rows.size))
  z = _continuous(z, 'z', rng, jitter)
  if discrete_y:
    return _ross_or_raise(np.hstack([x, z]), y, k) - _ross_or_raise(z, y, k)
  eps = _kth_distance(np.hstack([x, y, z]), k)  # Frenzel-Pompe
  return float(special.digamma(k) - np.mean(
      _psi_closer(np.hstack([x, z]), eps) + _psi_closer(np.hstack([y, z]), eps)
      - _psi_closer(z, eps)))


def latent_mi_report(codes, labels, subspaces: Sequence[int], *, k: int = 3,
                     max_rows: int | None = None,
                     seed: int = 0) -> dict[str, float]:
  """The paper's kNN information diagnostics of a split latent code.

  Float ``codes [N, D]`` are split into contiguous subspaces ``z_1..z_K`` of
  the ``subspaces`` sizes (summing to D), one per attribute ``s_1..s_K``: the
  columns of int ``labels [N, K]`` (-1: missing). The ordered dict has, in
  nats (1-based keys):

  * ``'I(z{a};z{b})'`` for a < b -- what classic disentanglement removes;
  * ``'I(z{a};s{j})'`` for all a, j -- how much each subspace knows about
    each attribute (Ross' estimator);
  * ``'I(z{a};z{b}|s{m})'`` for a < b and every m -- dependence left once the
    attribute m is known (0 for a code that satisfies the CMI criterion
    with respect to s_m);
  * ``'I(z{a};s{j}|s{a})'`` for a != j -- what z_a knows about another
    attribute beyond its own one (0 when z_a carries no shortcut).

  Each term uses the rows where every label it mentions is present and equals
  the matching direct call on those rows (same ``seed``). ``max_rows``: if
  set, a random subset of this many rows (drawn from ``seed``) bounds the
  cost.
  """
  k = validate.integer(k, 'k', 1)
  codes = _shared.check_codes(codes)
  labels = np.asarray(labels)
  if (labels.ndim != 2 or labels.dtype.kind not in 'iu' or np.any(labels < -1)
      or len(labels) != len(codes)):
    raise ValueError(f'labels must be an integer array [N, K] of classes, -1 '
                     f'for a missing label, with the same N as codes '
                     f'{codes.shape}; got {labels.dtype} {labels.shape}.')
  sizes = tuple(int(s) for s in subspaces)
  if (len(sizes) != labels.shape[1] or any(s <= 0 for s in sizes)
      or sum(sizes) != codes.shape[1]):
    raise ValueError(f'subspaces must give a positive size per label column '
                     f'summing to D = {codes.shape[1]}; got {sizes}.')
  if max_rows is not None and validate.integer(
      max_rows, 'max_rows', k + 1) < codes.shape[0]:
    rows = np.sort(np.random.default_rng(seed).choice(
        codes.shape[0], size=max_rows, replace=False))
    codes, labels = codes[rows], labels[rows]
  z = np.split(codes, np.cumsum(sizes)[:-1], axis=1)
  num, opts = len(sizes), dict(k=k, seed=seed)

  def rows_with(*columns: int) -> np.ndarray:  # mutual_information checks N
    return np.all(labels[:, list(columns)] >= 0, axis=1)

  pairs = list(itertools.combinations(range(num), 2))
  report = {f'I(z{a + 1};z{b + 1})': mutual_information(z[a], z[b], **opts)
            for a, b in pairs}
  for a, j in itertools.product(range(num), repeat=2):
    m = rows_with(j)
    report[f'I(z{a + 1};s{j + 1})'] = mutual_information(
        z[a][m], labels[m, j], discrete_y=True, **opts)
  for (a, b), c in itertools.product(pairs, range(num)):
    m = rows_with(c)
    report[f'I(z{a + 1};z{b + 1}|s{c + 1})'] = conditional_mutual_information(
        z[a][m], z[b][m], labels[m, c], discrete_z=True, **opts)
  for a, j in itertools.permutations(range(num), 2):
    m = rows_with(j, a)
    report[f'I(z{a + 1};s{j + 1}|s{a + 1})'] = conditional_mutual_information(
        z[a][m], labels[m, j], labels[m, a], discrete_y=True, discrete_z=True,
        **opts)
  return report
