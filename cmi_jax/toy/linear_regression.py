r"""Linear-Gaussian regression under correlation shift, in closed form.

The paper's first theory experiment (Table 1, Figures 2 and 3), for K >= 2
attributes. All variables are zero-mean Gaussian:

* attributes ``s ~ N(0, Sigma_s)`` in R^K (the paper's ``Sigma_s(c)`` is
  :func:`attribute_covariance`; any symmetric positive-definite one is
  allowed);
* noise ``eps ~ N(0, sigma^2 I_K)``, independent of ``s``;
* inputs ``x = A [s; eps]`` in R^D, mixing ``A`` ``[D, 2K]``, default
  ``[I I]`` (``x = s + eps``);
* latents ``z = W x`` (encoder ``W``, ``[L, D]``) and predictions
  ``s_hat = R z`` (readout ``R``, ``[K, L]``). A *split* readout has
  ``L = K`` and ``R = diag(r)``: latent ``z_k`` is read by head ``k`` only.

With ``Sigma_u = Cov([s; eps]) = blockdiag(Sigma_s, sigma^2 I)`` and the
linear predictor ``s_hat = M x`` (``M = R W``):

  Cov(x) = A Sigma_u A^T,   Cov(x, s) = A Sigma_u [I; 0],
  E (s - M x)(s - M x)^T = Sigma_s - M Cov(x, s) - Cov(s, x) M^T + M Cov(x) M^T

Units: MSEs are in squared attribute units and, as in the paper, *summed*
over the K attributes: ``MSE = E||s - s_hat||^2``; ``*_mse_mean`` is
``MSE / K``. The variance explained is ``1 - MSE / tr Sigma_s``.

The compared solutions (:data:`MODELS`), fitted at the training correlation:
``regression`` (:func:`optimal_regression`), ``mi0`` (:func:`mi0_solution`),
``cmi0`` (:func:`cmi0_solution`) and ``reference``
(:func:`reference_solution`).

Shapes: ``K`` attributes, ``D`` input dimensions, ``L`` latent dimensions,
``N`` samples; samples are rows (``[N, K]``, ``[N, D]``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import numpy as np
import scipy.stats

from cmi_jax import validate

MODELS = ('regression', 'mi0', 'cmi0', 'reference')
METRICS = ('train_mse', 'test_mse', 'train_mse_mean', 'test_mse_mean',
           'train_ve', 'test_ve')

# Relative eigenvalue floor below which a covariance counts as singular.
_SINGULAR_RTOL = 1e-12


def _check_num_attributes(num_attributes) -> int:
  return validate.integer(num_attributes, 'num_attributes', 2,
                          hint='One latent subspace per attribute.')


def _check_corr(corr, num_attributes: int, name: str) -> float:
  corr = float(corr)
  if not math.isfinite(corr) or abs(corr) >= 1.0:
    raise ValueError(
        f'{name} must satisfy |c| < 1 for a non-degenerate Gaussian; got '
        f'{corr!r}. Pass a value in (-1, 1), e.g. 0.8.')
  lowest = -1.0 / (num_attributes - 1)
  if corr <= lowest:
    raise ValueError(
        f'{name} = {corr}: Sigma_s with all pairwise correlations c is not '
        f'positive definite for K={num_attributes} attributes (its smallest '
        f'eigenvalue is 1 + (K-1) c = {1 + (num_attributes - 1) * corr:.3g}); '
        f'pass c > -1/(K-1) = {lowest:.4g}.')
  return corr


def attribute_covariance(corr: float, num_attributes: int = 2) -> np.ndarray:
  r"""The paper's attribute covariance ``Sigma_s(c) = (1 - c) I + c 11^T``.

  Unit variances, every pair correlated by ``c``. Its eigenvalues are
  ``1 + (K - 1) c`` (along ``1``) and ``1 - c`` (K - 1 times), so it is
  positive definite iff ``-1 / (K - 1) < c < 1``.

  Returns:
    float64 ``[K, K]``.

  Raises:
    ValueError: if ``c`` is outside ``(-1 / (K - 1), 1)``.
  """
  num_attributes = _check_num_attributes(num_attributes)
  corr = _check_corr(corr, num_attributes, 'correlation')
  eye = np.eye(num_attributes)
  return (1.0 - corr) * eye + corr * np.ones_like(eye)


def default_mixing(num_attributes: int = 2) -> np.ndarray:
  """The paper's mixing ``A = [I_K  I_K]`` (so ``x = s + eps``), ``[K, 2K]``."""
  num_attributes = _check_num_attributes(num_attributes)
  eye = np.eye(num_attributes)
  return np.concatenate([eye, eye], axis=1)


def _check_positive_definite(matrix: np.ndarray, name: str, fix: str) -> None:
  eigenvalues = np.linalg.eigvalsh(matrix)
  if eigenvalues[0] <= _SINGULAR_RTOL * max(eigenvalues[-1], 1e-300):
    raise ValueError(
        f'{name} is not positive definite (eigenvalues '
        f'{np.array2string(eigenvalues, precision=4)}); {fix}.')


@dataclasses.dataclass(frozen=True, eq=False)
class LinearGaussianSetting:
  """One data distribution ``(Sigma_s, sigma^2, A)``; validated on creation.

  Attributes:
    attribute_cov: ``Sigma_s``, float64 ``[K, K]``, symmetric positive
      definite, K >= 2.
    noise_var: ``sigma^2 >= 0``, the variance of every noise coordinate.
    mixing: ``A``, float64 ``[D, 2K]``; ``None`` means ``[I I]``. ``Cov(x)``
      must be positive definite (``A`` of full row rank, enough noise).
  """
  attribute_cov: np.ndarray
  noise_var: float
  mixing: np.ndarray | None = None

  def __post_init__(self):
    cov = np.asarray(self.attribute_cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] < 2:
      raise ValueError(
          f'attribute_cov must be a square [K, K] matrix with K >= 2; got '
          f'shape {cov.shape}. Use attribute_covariance(c, K).')
    if not np.all(np.isfinite(cov)):
      raise ValueError('attribute_cov has non-finite entries; pass a finite '
                       'covariance matrix.')
    if not np.allclose(cov, cov.T, rtol=0, atol=1e-12 * np.abs(cov).max()):
      raise ValueError('attribute_cov is not symmetric; pass (S + S.T) / 2 or '
                       'a proper covariance matrix.')
    _check_positive_definite(
        cov, 'attribute_cov Sigma_s',
        'attributes must have a non-degenerate joint Gaussian; for equal '
        'pairwise correlations c use -1/(K-1) < c < 1')
    noise_var = float(self.noise_var)
    if not math.isfinite(noise_var) or noise_var < 0:
      raise ValueError(
          f'noise_var is a variance and must be finite and >= 0; got '
          f'{self.noise_var!r}.')
    num_attributes = cov.shape[0]
    mixing = (default_mixing(num_attributes) if self.mixing is None
              else np.asarray(self.mixing, dtype=np.float64))
    if mixing.ndim != 2 or mixing.shape[1] != 2 * num_attributes:
      raise ValueError(
          f'mixing A maps [s; eps] (length 2K = {2 * num_attributes}) to x, so '
          f'its shape must be [D, {2 * num_attributes}]; got {mixing.shape}.')
    if not np.all(np.isfinite(mixing)):
      raise ValueError('mixing A has non-finite entries.')
    object.__setattr__(self, 'attribute_cov', cov)
    object.__setattr__(self, 'noise_var', noise_var)
    object.__setattr__(self, 'mixing', mixing)
    _check_positive_definite(
        input_covariance(self), 'Cov(x) = A Sigma_u A^T',
        'A must have full row rank D <= 2K, and noise_var > 0 if A needs the '
        'noise to have rank D')

  @property
  def num_attributes(self) -> int:
    """K."""
    return self.attribute_cov.shape[0]

  @property
  def input_dim(self) -> int:
    """D."""
    return self.mixing.shape[0]


def make_setting(corr: float, noise_var: float, num_attributes: int = 2,
                 mixing: np.ndarray | None = None) -> LinearGaussianSetting:
  """The paper's setting: ``Sigma_s(c)``, noise ``sigma^2``, mixing ``A``.

  ``c`` in ``(-1/(K-1), 1)``, ``sigma^2 >= 0`` in squared attribute units,
  ``A`` ``[D, 2K]`` (default ``[I I]``).
  """
  return LinearGaussianSetting(attribute_covariance(corr, num_attributes),
                               noise_var, mixing)


def source_covariance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Sigma_u = blockdiag(Sigma_s, sigma^2 I_K)``, ``[2K, 2K]``."""
  k = setting.num_attributes
  cov = np.zeros((2 * k, 2 * k))
  cov[:k, :k] = setting.attribute_cov
  cov[k:, k:] = setting.noise_var * np.eye(k)
  return cov


def input_covariance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Cov(x) = A Sigma_u A^T``, ``[D, D]``."""
  return setting.mixing @ source_covariance(setting) @ setting.mixing.T


def input_attribute_covariance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Cov(x, s) = A Sigma_u [I; 0] = A[:, :K] Sigma_s``, ``[D, K]``."""
  k = setting.num_attributes
  return setting.mixing[:, :k] @ setting.attribute_cov


def attribute_variance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Var(s_k)``, ``[K]`` (all ones in the paper's setting)."""
  return np.diag(setting.attribute_cov).copy()


def sample(setting: LinearGaussianSetting, num_samples: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Draws ``N >= 1`` i.i.d. pairs ``(s, x)`` of the model.

  Returns:
    ``s`` float64 ``[N, K]`` and ``x = [s, eps] A^T`` float64 ``[N, D]``.
  """
  validate.integer(num_samples, 'num_samples', 1)
  k = setting.num_attributes
  chol = np.linalg.cholesky(setting.attribute_cov)
  s = rng.standard_normal((num_samples, k)) @ chol.T
  eps = math.sqrt(setting.noise_var) * rng.standard_normal((num_samples, k))
  x = np.concatenate([s, eps], axis=1) @ setting.mixing.T
  return s, x


def _check_encoder(setting: LinearGaussianSetting, encoder) -> np.ndarray:
  encoder = np.asarray(encoder, dtype=np.float64)
  if encoder.ndim != 2 or encoder.shape[1] != setting.input_dim:
    raise ValueError(
        f'encoder W maps x (D = {setting.input_dim}) to z, so its shape must '
        f'be [L, {setting.input_dim}]; got {encoder.shape}.')
  return encoder


def latent_covariance(setting: LinearGaussianSetting,
                      encoder: np.ndarray) -> np.ndarray:
  """``Cov(z) = W Cov(x) W^T``; ``W`` ``[L, D]`` -> ``[L, L]``."""
  encoder = _check_encoder(setting, encoder)
  return encoder @ input_covariance(setting) @ encoder.T


def _check_given(setting: LinearGaussianSetting,
                 given: Sequence[int] | None) -> list[int]:
  k = setting.num_attributes
  if given is None:
    return list(range(k))
  given = [int(i) for i in given]
  if any(not 0 <= i < k for i in given) or len(set(given)) != len(given):
    raise ValueError(
        f'given must list distinct attribute indices in [0, {k}); got {given}.')
  return given


def conditional_latent_covariance(
    setting: LinearGaussianSetting, encoder: np.ndarray,
    given: Sequence[int] | None = None) -> np.ndarray:
  r"""``Cov(z | s_G)`` for ``z = W x``, the Gaussian conditional covariance.

    Cov(z | s_G) = W [Cov(x) - Cov(x, s_G) Cov(s_G)^{-1} Cov(s_G, x)] W^T,

  independent of the value of ``s_G``. ``given`` lists the attribute indices
  ``G``; ``None`` means all of ``s``, ``[]`` none. ``W`` ``[L, D]`` ->
  float64 ``[L, L]``.
  """
  encoder = _check_encoder(setting, encoder)
  given = _check_given(setting, given)
  cov_x = input_covariance(setting)
  if given:
    cross = input_attribute_covariance(setting)[:, given]
    cov_given = setting.attribute_cov[np.ix_(given, given)]
    cov_x = cov_x - cross @ np.linalg.solve(cov_given, cross.T)
  return encoder @ cov_x @ encoder.T


def subspace_mutual_information(
    setting: LinearGaussianSetting, encoder: np.ndarray,
    given: Sequence[int] | None = ()) -> np.ndarray:
  r"""``I(z_k ; z_-k | s_G)`` in nats for every one-dimensional latent ``z_k``.

  For jointly Gaussian variables with conditional covariance ``C``
  (:func:`conditional_latent_covariance`),

    I(z_k ; z_-k | s_G) = (log C_kk + log det C_{-k,-k} - log det C) / 2.

  ``W`` ``[L, D]``, L >= 2, must make ``C`` positive definite; ``given`` as
  there (the default ``()`` gives the unconditional MI). Returns float64
  ``[L]``, >= 0 up to rounding.
  """
  cov = conditional_latent_covariance(setting, encoder, given)
  num_latents = cov.shape[0]
  if num_latents < 2:
    raise ValueError('subspace_mutual_information needs L >= 2 latents; got '
                     f'L = {num_latents}.')
  sign, logdet = np.linalg.slogdet(cov)
  if sign <= 0:
    raise ValueError('Cov(z | s_G) is singular, so the mutual information is '
                     'infinite; use an encoder W of full row rank.')
  info = np.empty(num_latents)
  for k in range(num_latents):
    rest = [j for j in range(num_latents) if j != k]
    _, logdet_rest = np.linalg.slogdet(cov[np.ix_(rest, rest)])
    info[k] = 0.5 * (math.log(cov[k, k]) + logdet_rest - logdet)
  return info


class LinearSolution(NamedTuple):
  """A linear model ``s_hat = R W x``.

  Attributes:
    encoder: ``W`` float64 ``[L, D]``.
    readout: ``R`` float64 ``[K, L]`` (diagonal for a split readout).
  """
  encoder: np.ndarray
  readout: np.ndarray

  @property
  def predictor(self) -> np.ndarray:
    """``M = R W``, float64 ``[K, D]``."""
    return self.readout @ self.encoder


def _check_predictor(setting: LinearGaussianSetting, predictor) -> np.ndarray:
  if isinstance(predictor, LinearSolution):
    predictor = predictor.predictor
  predictor = np.asarray(predictor, dtype=np.float64)
  shape = (setting.num_attributes, setting.input_dim)
  if predictor.shape != shape:
    raise ValueError(
        f'predictor M maps x to s_hat, so its shape must be [K, D] = '
        f'{list(shape)}; got {predictor.shape}. (For s_hat = R z with z = W x '
        f'pass R @ W or a LinearSolution.)')
  return predictor


def error_covariance(setting: LinearGaussianSetting,
                     predictor: np.ndarray | LinearSolution) -> np.ndarray:
  """``E[(s - M x)(s - M x)^T]`` (module docstring), float64 ``[K, K]``.

  ``predictor`` is ``M`` ``[K, D]`` or a :class:`LinearSolution`.
  """
  m = _check_predictor(setting, predictor)
  cross = m @ input_attribute_covariance(setting)
  return (setting.attribute_cov - cross - cross.T
          + m @ input_covariance(setting) @ m.T)


def mse(setting: LinearGaussianSetting,
        predictor: np.ndarray | LinearSolution,
        per_attribute: bool = False) -> float | np.ndarray:
  """Exact mean squared error of ``s_hat = M x`` under ``setting``.

  Returns:
    ``E ||s - M x||^2``, summed over attributes as in the paper (float), or
    float64 ``[K]`` if ``per_attribute``. Squared attribute units.
  """
  errors = np.diag(error_covariance(setting, predictor)).copy()
  return errors if per_attribute else float(errors.sum())


def variance_explained(setting: LinearGaussianSetting,
                       predictor: np.ndarray | LinearSolution,
                       per_attribute: bool = False) -> float | np.ndarray:
  """Exact variance explained ``1 - MSE / Var(s)`` of ``s_hat = M x``.

  Returns:
    ``1 - E||s - M x||^2 / tr Sigma_s`` (float), or
    ``1 - E(s_k - s_hat_k)^2 / Var(s_k)``, float64 ``[K]``, if
    ``per_attribute``. Dimensionless, <= 1.
  """
  errors = mse(setting, predictor, per_attribute=True)
  variances = attribute_variance(setting)
  if per_attribute:
    return 1.0 - errors / variances
  return float(1.0 - errors.sum() / variances.sum())


def optimal_regression(setting: LinearGaussianSetting) -> LinearSolution:
  """Least-squares readout ``M = Cov(s, x) Cov(x)^{-1}``, encoder ``I_D``."""
  cov_x = input_covariance(setting)
  readout = np.linalg.solve(cov_x, input_attribute_covariance(setting)).T
  return LinearSolution(np.eye(setting.input_dim), readout)


def split_readout(setting: LinearGaussianSetting,
                  encoder: np.ndarray) -> np.ndarray:
  """Optimal split readout ``r_k = Cov(s_k, z_k) / Var(z_k)`` for ``z = W x``.

  Head k sees only ``z_k``, so it is the scalar regression of ``s_k`` on
  ``z_k``. ``W`` is ``[K, D]``; returns ``r`` float64 ``[K]``.
  """
  encoder = _check_encoder(setting, encoder)
  if encoder.shape[0] != setting.num_attributes:
    raise ValueError(
        f'a split readout needs one latent per attribute, so W must be '
        f'[K, D] = [{setting.num_attributes}, {setting.input_dim}]; got '
        f'{encoder.shape}.')
  variances = np.einsum('kd,de,ke->k', encoder, input_covariance(setting),
                        encoder)
  if np.any(variances <= 0):
    raise ValueError(
        f'latents {np.flatnonzero(variances <= 0).tolist()} have zero '
        'variance (zero rows of W); give every row of W a non-zero x-direction.')
  covariances = np.einsum('kd,dk->k', encoder,
                          input_attribute_covariance(setting))
  return covariances / variances


def split_solution(setting: LinearGaussianSetting,
                   encoder: np.ndarray) -> LinearSolution:
  """``W`` ``[K, D]`` with its optimal split readout ``diag(r)``, ``[K, K]``."""
  encoder = np.asarray(encoder, dtype=np.float64)
  return LinearSolution(encoder, np.diag(split_readout(setting, encoder)))


def whitening(setting: LinearGaussianSetting) -> np.ndarray:
  """Symmetric whitening ``Cov(x)^{-1/2}``, float64 ``[D, D]``."""
  eigenvalues, eigenvectors = np.linalg.eigh(input_covariance(setting))
  return (eigenvectors / np.sqrt(eigenvalues)) @ eigenvectors.T


class _WhitenedSplitRisk:
  """Mean split-readout training MSE of ``W = rows Cov(x)^{-1/2}``.

  Called on orthonormal ``rows`` ``[..., K, D]`` (the first K rows of ``Q``),
  returns ``[...]``. Uses ``Var(s_k) - Cov(s_k, z_k)^2 / Var(z_k)`` rather
  than assuming ``Var(z_k) = 1``, so it stays exact when rounding drifts the
  rows off orthonormality.
  """

  def __init__(self, setting: LinearGaussianSetting):
    whiten = whitening(setting)
    self.num_attributes = setting.num_attributes
    self._gram = whiten @ input_covariance(setting) @ whiten  # ~ I_D
    self._cross = whiten @ input_attribute_covariance(setting)  # [D, K]
    self._variances = attribute_variance(setting)

  def __call__(self, rows: np.ndarray) -> np.ndarray:
    variances = np.einsum('...kd,de,...ke->...k', rows, self._gram, rows)
    covariances = np.einsum('...kd,dk->...k', rows, self._cross)
    return (self._variances - covariances**2 / variances).mean(axis=-1)


def _givens_step(objective: _WhitenedSplitRisk, rotation: np.ndarray, i: int,
                 j: int, num_grid: int, num_zoom: int = 5
                 ) -> tuple[np.ndarray, float]:
  """Best rotation of rows ``i, j`` of ``rotation`` by one angle.

  The split MSE is pi-periodic in the angle (a rotation by pi flips the signs
  of two latents, which their readouts absorb), so a grid over
  ``[-pi/2, pi/2)`` is refined ``num_zoom`` times, each round re-gridding
  +-1 spacing around the best angle. The angle 0 is on the grid, so a step
  never makes the objective worse.
  """
  k = objective.num_attributes
  top = rotation[:k]

  def rotated_top(theta):
    # Only the first K rows enter the objective; row j matters only if j < K.
    theta = np.asarray(theta, dtype=np.float64)
    cos, sin = np.cos(theta)[..., None], np.sin(theta)[..., None]
    rows = np.broadcast_to(top, theta.shape + top.shape).copy()
    rows[..., i, :] = cos * rotation[i] - sin * rotation[j]
    if j < k:
      rows[..., j, :] = sin * rotation[i] + cos * rotation[j]
    return rows

  # Vectorised grids rather than a scalar Brent search: five rounds of 64
  # reach ~1e-8 rad (MSE error ~1e-16).
  step = np.pi / num_grid
  grid = -np.pi / 2 + step * np.arange(num_grid)
  values = objective(rotated_top(grid))
  best = int(np.argmin(values))
  theta, value = float(grid[best]), float(values[best])
  for _ in range(num_zoom):
    grid = theta + np.linspace(-step, step, num_grid + 1)
    values = objective(rotated_top(grid))
    best = int(np.argmin(values))
    if values[best] < value:
      theta, value = float(grid[best]), float(values[best])
    step *= 2.0 / num_grid
  cos, sin = math.cos(theta), math.sin(theta)
  rotation = rotation.copy()
  rotation[i], rotation[j] = (cos * rotation[i] - sin * rotation[j],
                              sin * rotation[i] + cos * rotation[j])
  return rotation, value


def best_rotation(setting: LinearGaussianSetting, num_restarts: int | None = None,
                  seed: int = 0, num_grid: int = 64, max_sweeps: int = 200,
                  tol: float = 1e-14) -> np.ndarray:
  r"""Orthogonal ``Q`` minimising the split training MSE of ``Q_K Cov(x)^{-1/2}``.

  Objective: ``f(Q) = mean_k [Var(s_k) - (b_k . q_k)^2]`` with ``q_k`` the
  k-th row of ``Q`` and ``b_k`` the k-th row of ``Cov(s, x) Cov(x)^{-1/2}``
  (only the first K rows of ``Q`` matter).

  Method: Givens-angle coordinate descent. A sweep rotates rows ``i, j`` of
  ``Q`` by the best angle for every plane ``i < K``, ``i < j < D``; ``f``
  never increases, and sweeps stop when one gains less than ``tol``. For
  ``D = 2`` one step from ``Q = I`` searches all rotations. For ``D > 2``
  descent can stall at a local optimum, so it restarts from ``Q = I`` and
  ``num_restarts - 1`` Haar-random rotations and keeps the best. Determinant
  -1 is not needed: it is a rotation plus a sign flip the readout absorbs.

  Args:
    setting: the training distribution.
    num_restarts: starting points; default 1 for D = 2, else 8.
    seed: seed of the random starting rotations.
    num_grid: angles in the grid of each 1-D search.
    max_sweeps: cap on sweeps per restart.
    tol: minimum MSE gain of a sweep to continue.

  Returns:
    ``Q`` float64 ``[D, D]``, orthogonal.
  """
  dim = setting.input_dim
  if dim < setting.num_attributes:
    raise ValueError(
        f'MI=0 needs K = {setting.num_attributes} independent latents, but x '
        f'has only D = {dim} dimensions; use a mixing A with at least K rows.')
  if num_restarts is None:
    num_restarts = 1 if dim == 2 else 8
  if int(num_restarts) < 1 or int(num_grid) < 4:
    raise ValueError(f'need num_restarts >= 1 and num_grid >= 4; got '
                     f'{num_restarts} and {num_grid}.')
  objective = _WhitenedSplitRisk(setting)
  k = setting.num_attributes
  planes = [(i, j) for i in range(k) for j in range(i + 1, dim)]
  rng = np.random.default_rng(seed)
  starts = [np.eye(dim)] + [
      scipy.stats.special_ortho_group.rvs(dim, random_state=rng)
      for _ in range(int(num_restarts) - 1)]
  best_q, best_value = None, np.inf
  for rotation in starts:
    value = float(objective(rotation[:k]))
    for _ in range(max_sweeps):
      before = value
      for i, j in planes:
        rotation, value = _givens_step(objective, rotation, i, j, num_grid)
      if before - value <= tol:
        break
    if value < best_value:
      best_q, best_value = rotation, value
  # Products of many Givens rotations drift from orthogonality by rounding;
  # the polar factor is the nearest orthogonal matrix.
  u, _, vt = np.linalg.svd(best_q)
  return u @ vt


def mi0_solution(setting: LinearGaussianSetting, num_restarts: int | None = None,
                 seed: int = 0) -> LinearSolution:
  """Best split-readout model with unconditionally independent latents.

  For Gaussians ``I(z_k; z_-k) = 0`` iff ``Cov(z)`` is diagonal; rescaling a
  latent does not change its split MSE, so ``Cov(z) = I`` without loss of
  generality, i.e. ``W = Q_K Cov(x)^{-1/2}`` with ``Q_K`` the first K rows of
  an orthogonal ``Q`` (from :func:`best_rotation`), with its optimal split
  readout.

  Returns:
    :class:`LinearSolution`, encoder ``[K, D]``, diagonal readout ``[K, K]``.
  """
  rotation = best_rotation(setting, num_restarts=num_restarts, seed=seed)
  encoder = rotation[:setting.num_attributes] @ whitening(setting)
  return split_solution(setting, encoder)


def cmi0_solution(setting: LinearGaussianSetting,
                  encoder: np.ndarray | None = None,
                  rtol: float = 1e-10) -> LinearSolution:
  """Split-readout model whose latents are independent given the attributes.

  Default ``W = I`` (needs ``D = K``): with ``A = [I I]``,
  ``z_k = s_k + eps_k``, so ``Cov(z | s) = sigma^2 I`` is diagonal and
  ``I(z_k; z_-k | s) = 0``; the readout is the optimal split readout.

  Args:
    setting: the training distribution.
    encoder: ``W`` ``[K, D]``; default ``I_K``.
    rtol: tolerance on the off-diagonal of ``Cov(z | s)``, relative to its
      largest diagonal entry.

  Returns:
    :class:`LinearSolution`, encoder ``[K, D]``, diagonal readout ``[K, K]``.

  Raises:
    ValueError: if ``W Cov(x | s) W^T`` is not diagonal.
  """
  k = setting.num_attributes
  if encoder is None:
    if setting.input_dim != k:
      raise ValueError(
          f'the default CMI=0 encoder W = I needs D = K; x has D = '
          f'{setting.input_dim} and K = {k}. Pass an encoder [K, D] with '
          'W Cov(x|s) W^T diagonal.')
    encoder = np.eye(k)
  cov = conditional_latent_covariance(setting, encoder, given=None)
  off = cov - np.diag(np.diag(cov))
  if np.abs(off).max() > rtol * max(np.abs(np.diag(cov)).max(), 1e-300):
    raise ValueError(
        f'W Cov(x|s) W^T has off-diagonal entries up to {np.abs(off).max():.3g}'
        ', so the latents are not independent given s (CMI != 0) for this '
        'mixing A; pass an encoder that diagonalises Cov(x|s).')
  return split_solution(setting, encoder)


def reference_solution(noise_var: float, num_attributes: int = 2,
                       mixing: np.ndarray | None = None) -> LinearSolution:
  """The full regression fitted at correlation 0 (same noise and mixing).

  The best one can do without a spurious correlation to exploit.
  """
  return optimal_regression(make_setting(0.0, noise_var, num_attributes, mixing))


def fit_models(train_setting: LinearGaussianSetting,
               num_restarts: int | None = None,
               seed: int = 0) -> dict[str, LinearSolution]:
  """All four compared solutions, keyed by :data:`MODELS`.

  ``reference`` uses ``Sigma_s = I`` with ``train_setting``'s noise and
  mixing. Raises ``ValueError`` if ``D != K`` (no default CMI=0 encoder).
  """
  return {
      'regression': optimal_regression(train_setting),
      'mi0': mi0_solution(train_setting, num_restarts=num_restarts, seed=seed),
      'cmi0': cmi0_solution(train_setting),
      'reference': reference_solution(train_setting.noise_var,
                                      train_setting.num_attributes,
                                      train_setting.mixing),
  }


def table1(train_corr: float = 0.8, noise_var: float = 0.1,
           test_corr: float = 0.0, num_attributes: int = 2,
           mixing: np.ndarray | None = None, num_restarts: int | None = None,
           seed: int = 0) -> dict[str, dict[str, float]]:
  """The paper's Table 1: train/test MSE and variance explained per model.

  Each model is fitted at ``train_corr`` (``reference``: at 0) and evaluated
  exactly; ``train_*`` on the distribution it was fitted on, ``test_*`` at
  ``test_corr``. Units as in the module docstring; VE is a fraction.
  ``num_restarts`` and ``seed`` go to :func:`best_rotation`.

  Returns:
    ``{model: {metric: float}}`` for model in :data:`MODELS` and metric in
    :data:`METRICS`.
  """
  num_attributes = _check_num_attributes(num_attributes)
  _check_corr(train_corr, num_attributes, 'train_corr')
  _check_corr(test_corr, num_attributes, 'test_corr')
  train = make_setting(train_corr, noise_var, num_attributes, mixing)
  test = make_setting(test_corr, noise_var, num_attributes, mixing)
  uncorrelated = make_setting(0.0, noise_var, num_attributes, mixing)
  models = fit_models(train, num_restarts=num_restarts, seed=seed)
  table = {}
  for name, solution in models.items():
    fitted_on = uncorrelated if name == 'reference' else train
    train_mse, test_mse = mse(fitted_on, solution), mse(test, solution)
    table[name] = {
        'train_mse': train_mse,
        'test_mse': test_mse,
        'train_mse_mean': train_mse / num_attributes,
        'test_mse_mean': test_mse / num_attributes,
        'train_ve': variance_explained(fitted_on, solution),
        'test_ve': variance_explained(test, solution),
    }
  return table


def _check_grid(values, name: str) -> np.ndarray:
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f'{name} must be a non-empty 1-D sequence; got shape '
                     f'{values.shape}.')
  return values


def noise_correlation_sweep(noise_vars: Sequence[float],
                            train_corrs: Sequence[float],
                            test_corr: float = 0.0, num_attributes: int = 2,
                            mixing: np.ndarray | None = None,
                            num_restarts: int | None = None,
                            seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
  """Train and test MSE over a grid of noise levels x training correlations.

  The paper's Figure 2: for every ``(sigma^2, c)`` of ``noise_vars``
  ``[N_noise]`` x ``train_corrs`` ``[N_corr]``, as :func:`table1`.
  ``reference`` does not depend on ``c`` and is repeated along that axis.

  Returns:
    ``{'train_mse': {model: [N_noise, N_corr]}, 'test_mse': {...}}`` with model
    in :data:`MODELS`, float64.
  """
  noise_vars = _check_grid(noise_vars, 'noise_vars')
  train_corrs = _check_grid(train_corrs, 'train_corrs')
  num_attributes = _check_num_attributes(num_attributes)
  _check_corr(test_corr, num_attributes, 'test_corr')
  for corr in train_corrs:
    _check_corr(corr, num_attributes, 'every entry of train_corrs')
  shape = (noise_vars.size, train_corrs.size)
  result = {split: {name: np.empty(shape) for name in MODELS}
            for split in ('train_mse', 'test_mse')}
  for a, noise_var in enumerate(noise_vars):
    test = make_setting(test_corr, noise_var, num_attributes, mixing)
    uncorrelated = make_setting(0.0, noise_var, num_attributes, mixing)
    for b, corr in enumerate(train_corrs):
      train = make_setting(corr, noise_var, num_attributes, mixing)
      models = fit_models(train, num_restarts=num_restarts, seed=seed)
      for name, solution in models.items():
        fitted_on = uncorrelated if name == 'reference' else train
        result['train_mse'][name][a, b] = mse(fitted_on, solution)
        result['test_mse'][name][a, b] = mse(test, solution)
  return result


def prediction_scatter(train_corr: float = 0.8, noise_var: float = 0.1,
                       test_corr: float = 0.0, num_attributes: int = 2,
                       num_samples: int = 1000, seed: int = 0,
                       mixing: np.ndarray | None = None,
                       num_restarts: int | None = None
                       ) -> dict[str, dict[str, np.ndarray]]:
  """Samples of targets, inputs and predictions (the paper's Figure 3).

  The models are fitted at ``train_corr`` and applied to ``num_samples``
  fresh samples of the training and of the test distribution; ``seed`` seeds
  the samples and the MI=0 restarts.

  Returns:
    ``{'train': d, 'test': d}`` with ``d = {'corr': float, 's': [N, K],
    'x': [N, D], 'regression': [N, K], 'mi0': [N, K], 'cmi0': [N, K]}``
    (predictions ``s_hat = x M^T``), float64.
  """
  num_attributes = _check_num_attributes(num_attributes)
  _check_corr(train_corr, num_attributes, 'train_corr')
  _check_corr(test_corr, num_attributes, 'test_corr')
  train = make_setting(train_corr, noise_var, num_attributes, mixing)
  test = make_setting(test_corr, noise_var, num_attributes, mixing)
  models = fit_models(train, num_restarts=num_restarts, seed=seed)
  rng = np.random.default_rng(seed)
  out = {}
  for split, setting in (('train', train), ('test', test)):
    s, x = sample(setting, num_samples, rng)
    data = {'corr': float(setting.attribute_cov[0, 1]), 's': s, 'x': x}
    for name in ('regression', 'mi0', 'cmi0'):
      data[name] = x @ models[name].predictor.T
    out[split] = data
  return out


def format_table1(table: dict[str, dict[str, float]]) -> str:
  """Plain-text rendering of :func:`table1` (summed MSE, VE in percent)."""
  lines = [f'{"model":<11}{"train MSE":>10}{"test MSE":>10}'
           f'{"train VE":>10}{"test VE":>10}']
  for name in MODELS:
    row = table[name]
    lines.append(f'{name:<11}{row["train_mse"]:>10.4f}{row["test_mse"]:>10.4f}'
                 f'{row["train_ve"]:>10.2%}{row["test_ve"]:>10.2%}')
  return '\n'.join(lines)
