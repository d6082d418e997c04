r"""Linear-Gaussian regression under correlation shift, in closed form.

The paper's first theory experiment (Table 1, Figures 2 and 3), K >= 2. All
variables are zero-mean Gaussian: attributes ``s ~ N(0, Sigma_s)`` in R^K,
noise ``eps ~ N(0, sigma^2 I_K)``, inputs ``x = A [s; eps]`` in R^D (mixing
``A`` ``[D, 2K]``, default ``[I I]``: ``x = s + eps``), latents ``z = W x``
(``W`` ``[L, D]``), predictions ``s_hat = R z`` (``R`` ``[K, L]``). A *split*
readout has ``L = K`` and ``R = diag(r)``: head ``k`` reads ``z_k`` only.
With ``Sigma_u = Cov([s; eps]) = blockdiag(Sigma_s, sigma^2 I)`` and
``s_hat = M x`` (``M = R W``):

  Cov(x) = A Sigma_u A^T,   Cov(x, s) = A Sigma_u [I; 0],
  E (s - M x)(s - M x)^T = Sigma_s - M Cov(x, s) - Cov(s, x) M^T + M Cov(x) M^T

MSEs are in squared attribute units and, as in the paper, *summed* over the
K attributes (``E||s - s_hat||^2``; ``*_mse_mean`` is ``MSE / K``); the
variance explained is ``1 - MSE / tr Sigma_s``. Samples are rows
(``[N, K]``, ``[N, D]``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import numpy as np
import scipy.linalg
import scipy.stats

from cmi_jax import validate

MODELS = ('regression', 'mi0', 'cmi0', 'reference')
METRICS = ('train_mse', 'test_mse', 'train_mse_mean', 'test_mse_mean',
           'train_ve', 'test_ve')

# Relative eigenvalue floor below which a covariance counts as singular.
_SINGULAR_RTOL = 1e-12


def _check_corrs(num_attributes, **corrs) -> int:
  """Validates K and every named correlation ``c`` of ``Sigma_s(c)``."""
  k = validate.integer(num_attributes, 'num_attributes', 2,
                       hint='One latent subspace per attribute.')
  for name, corr in zip(corrs, map(float, corrs.values())):
    if not (abs(corr) < 1.0 and corr > -1.0 / (k - 1)):  # NaN too
      raise ValueError(f'{name} must satisfy |c| < 1 and c > -1/(K-1) = '
                       f'{-1 / (k - 1):.4g} (Sigma_s(c) positive definite for '
                       f'K={k}); got {corr!r}.')
  return k


def attribute_covariance(corr: float, num_attributes: int = 2) -> np.ndarray:
  r"""The paper's ``Sigma_s(c) = (1 - c) I + c 11^T``, float64 ``[K, K]``.

  Its eigenvalues are ``1 + (K - 1) c`` (along ``1``) and ``1 - c``, so it is
  positive definite iff ``-1 / (K - 1) < c < 1``.
  """
  eye = np.eye(_check_corrs(num_attributes, correlation=corr))
  return (1.0 - float(corr)) * eye + float(corr) * np.ones_like(eye)


def default_mixing(num_attributes: int = 2) -> np.ndarray:
  """The paper's mixing ``A = [I_K  I_K]`` (so ``x = s + eps``), ``[K, 2K]``."""
  return np.tile(np.eye(_check_corrs(num_attributes)), 2)


def _check_positive_definite(matrix: np.ndarray, name: str, fix: str) -> None:
  eigenvalues = np.linalg.eigvalsh(matrix)
  if eigenvalues[0] <= _SINGULAR_RTOL * max(eigenvalues[-1], 1e-300):
    raise ValueError(f'{name} is not positive definite (eigenvalues '
                     f'{np.array2string(eigenvalues, precision=4)}); {fix}.')


def _matrix(value, shape: tuple[int | str, int], what: str) -> np.ndarray:
  """``value`` as a finite float64 matrix of ``shape``, else a ValueError.

  A str entry of ``shape`` names a free dimension (any size); ``what`` says
  what the matrix maps, to open the error message.
  """
  value = np.asarray(value, dtype=np.float64)
  if value.ndim != 2 or not np.all(np.isfinite(value)) or not all(
      isinstance(n, str) or n == m for n, m in zip(shape, value.shape)):
    raise ValueError(f'{what}, so its shape must be [{shape[0]}, {shape[1]}] '
                     f'and its entries finite; got shape {value.shape}.')
  return value


@dataclasses.dataclass(frozen=True, eq=False)
class LinearGaussianSetting:
  """One data distribution ``(Sigma_s, sigma^2, A)``; validated on creation.

  ``attribute_cov`` ``Sigma_s`` is float64 ``[K, K]`` positive definite,
  ``noise_var`` ``sigma^2 >= 0``, ``mixing`` ``A`` float64 ``[D, 2K]``
  (``None``: ``[I I]``) such that ``Cov(x)`` is positive definite.
  """
  attribute_cov: np.ndarray
  noise_var: float
  mixing: np.ndarray | None = None

  def __post_init__(self):
    cov = np.asarray(self.attribute_cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or len(cov) < 2 or not (
        np.all(np.isfinite(cov)) and np.allclose(
            cov, cov.T, rtol=0, atol=1e-12 * np.abs(cov).max())):
      raise ValueError('attribute_cov must be a finite, symmetric [K, K] '
                       f'matrix, K >= 2; got shape {cov.shape}. Use '
                       'attribute_covariance(c, K) or (S + S.T) / 2.')
    _check_positive_definite(cov, 'attribute_cov Sigma_s',
                             'for correlations c use -1/(K-1) < c < 1')
    object.__setattr__(self, 'attribute_cov', cov)
    object.__setattr__(self, 'noise_var', validate.number(
        self.noise_var, 'noise_var', 0, hint='It is a variance.'))
    mixing = default_mixing(len(cov)) if self.mixing is None else _matrix(
        self.mixing, ('D', 2 * len(cov)), 'mixing A maps [s; eps] (2K) to x')
    object.__setattr__(self, 'mixing', mixing)
    _check_positive_definite(
        input_covariance(self), 'Cov(x) = A Sigma_u A^T',
        'A needs full row rank D <= 2K, and noise_var > 0 if it mixes noise')

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
  """The paper's setting: ``Sigma_s(c)``, noise ``sigma^2``, mixing ``A``."""
  return LinearGaussianSetting(attribute_covariance(corr, num_attributes),
                               noise_var, mixing)


def source_covariance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Sigma_u = blockdiag(Sigma_s, sigma^2 I_K)``, ``[2K, 2K]``."""
  return scipy.linalg.block_diag(
      setting.attribute_cov, setting.noise_var * np.eye(setting.num_attributes))


def input_covariance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Cov(x) = A Sigma_u A^T``, ``[D, D]``."""
  return setting.mixing @ source_covariance(setting) @ setting.mixing.T


def input_attribute_covariance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Cov(x, s) = A Sigma_u [I; 0] = A[:, :K] Sigma_s``, ``[D, K]``."""
  return setting.mixing[:, :setting.num_attributes] @ setting.attribute_cov


def attribute_variance(setting: LinearGaussianSetting) -> np.ndarray:
  """``Var(s_k)``, ``[K]`` (all ones in the paper's setting)."""
  return np.diag(setting.attribute_cov).copy()


def sample(setting: LinearGaussianSetting, num_samples: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """``N`` i.i.d. pairs ``s`` ``[N, K]``, ``x = [s, eps] A^T`` ``[N, D]``."""
  shape = (validate.integer(num_samples, 'num_samples', 1),
           setting.num_attributes)
  s = rng.standard_normal(shape) @ np.linalg.cholesky(setting.attribute_cov).T
  eps = math.sqrt(setting.noise_var) * rng.standard_normal(shape)
  return s, np.concatenate([s, eps], axis=1) @ setting.mixing.T


def latent_covariance(setting: LinearGaussianSetting,
                      encoder: np.ndarray) -> np.ndarray:
  """``Cov(z) = W Cov(x) W^T``; ``W`` ``[L, D]`` -> ``[L, L]``."""
  return conditional_latent_covariance(setting, encoder, given=())


def conditional_latent_covariance(
    setting: LinearGaussianSetting, encoder: np.ndarray,
    given: Sequence[int] | None = None) -> np.ndarray:
  r"""``Cov(z | s_G)`` for ``z = W x``, the Gaussian conditional covariance.

    Cov(z | s_G) = W [Cov(x) - Cov(x, s_G) Cov(s_G)^{-1} Cov(s_G, x)] W^T,

  independent of the value of ``s_G``. ``given`` lists the attribute indices
  ``G``; ``None`` means all of ``s``, ``[]`` none. ``W`` ``[L, D]`` ->
  float64 ``[L, L]``.
  """
  encoder = _matrix(encoder, ('L', setting.input_dim), 'encoder W maps x to z')
  k = setting.num_attributes
  given = list(range(k)) if given is None else [int(i) for i in given]
  if any(not 0 <= i < k for i in given) or len(set(given)) != len(given):
    raise ValueError(
        f'given must list distinct attribute indices in [0, {k}); got {given}.')
  cross = input_attribute_covariance(setting)[:, given]  # [D, |G|]
  cov_x = input_covariance(setting) - cross @ np.linalg.solve(
      setting.attribute_cov[np.ix_(given, given)], cross.T)
  return encoder @ cov_x @ encoder.T


def subspace_mutual_information(
    setting: LinearGaussianSetting, encoder: np.ndarray,
    given: Sequence[int] | None = ()) -> np.ndarray:
  r"""``I(z_k ; z_-k | s_G)`` in nats for every one-dimensional latent ``z_k``.

    I(z_k ; z_-k | s_G) = (log C_kk + log det C_{-k,-k} - log det C) / 2

  with ``C`` :func:`conditional_latent_covariance` (``given``: as there, the
  default ``()`` is the unconditional MI), positive definite for ``W``
  ``[L, D]``, ``L >= 2``. Returns float64 ``[L]``, >= 0 up to rounding.
  """
  cov = conditional_latent_covariance(setting, encoder, given)
  sign, logdet = np.linalg.slogdet(cov)
  if len(cov) < 2 or sign <= 0:
    raise ValueError(f'need L >= 2 latents (got {len(cov)}) and a regular '
                     'Cov(z | s_G): use an encoder W [L, D] of full row rank.')
  minors = (np.delete(np.delete(cov, k, 0), k, 1) for k in range(len(cov)))
  return np.array([0.5 * (math.log(cov[k, k]) + np.linalg.slogdet(rest)[1]
                          - logdet) for k, rest in enumerate(minors)])


class LinearSolution(NamedTuple):
  """A linear model ``s_hat = R W x``: ``W`` ``[L, D]``, ``R`` ``[K, L]``."""
  encoder: np.ndarray
  readout: np.ndarray

  @property
  def predictor(self) -> np.ndarray:
    """``M = R W``, float64 ``[K, D]``."""
    return self.readout @ self.encoder


def error_covariance(setting: LinearGaussianSetting,
                     predictor: np.ndarray | LinearSolution) -> np.ndarray:
  """``E[(s - M x)(s - M x)^T]`` ``[K, K]``; ``M`` ``[K, D]`` or a solution."""
  m = _matrix(getattr(predictor, 'predictor', predictor),
              (setting.num_attributes, setting.input_dim),
              'predictor M [K, D] (R @ W, or a LinearSolution) maps x to s_hat')
  cross = m @ input_attribute_covariance(setting)
  return (setting.attribute_cov - cross - cross.T
          + m @ input_covariance(setting) @ m.T)


def mse(setting: LinearGaussianSetting, predictor: np.ndarray | LinearSolution,
        per_attribute: bool = False) -> float | np.ndarray:
  """Exact ``E ||s - M x||^2``, summed over attributes or ``[K]`` per one."""
  errors = np.diag(error_covariance(setting, predictor)).copy()
  return errors if per_attribute else float(errors.sum())


def variance_explained(setting: LinearGaussianSetting,
                       predictor: np.ndarray | LinearSolution,
                       per_attribute: bool = False) -> float | np.ndarray:
  """Exact ``1 - E||s - M x||^2 / tr Sigma_s``, or ``[K]`` per attribute."""
  errors = mse(setting, predictor, per_attribute=True)
  variances = attribute_variance(setting)
  return (1.0 - errors / variances if per_attribute
          else float(1.0 - errors.sum() / variances.sum()))


def optimal_regression(setting: LinearGaussianSetting) -> LinearSolution:
  """Least-squares readout ``M = Cov(s, x) Cov(x)^{-1}``, encoder ``I_D``."""
  return LinearSolution(np.eye(setting.input_dim), np.linalg.solve(
      input_covariance(setting), input_attribute_covariance(setting)).T)


def split_readout(setting: LinearGaussianSetting,
                  encoder: np.ndarray) -> np.ndarray:
  """Optimal split readout ``r_k = Cov(s_k, z_k) / Var(z_k)`` ``[K]`` of ``W``.

  ``W`` is ``[K, D]``; head k sees only ``z_k``, so ``r_k`` regresses ``s_k``
  on ``z_k``.
  """
  encoder = _matrix(encoder, (setting.num_attributes, setting.input_dim),
                    'split encoder W maps x to one latent per attribute')
  variances = np.einsum('kd,de,ke->k', encoder, input_covariance(setting),
                        encoder)
  if np.any(variances <= 0):
    raise ValueError(f'latents {np.flatnonzero(variances <= 0).tolist()} have '
                     'zero variance (zero rows of W); make every row non-zero.')
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


def _split_risk(setting: LinearGaussianSetting):
  """``f(Q)``: mean split training MSE of ``W = Q_K Cov(x)^{-1/2}``.

  The returned function maps rotations ``Q`` ``[..., D, D]`` to ``[...]``;
  it divides by ``Var(z_k)`` rather than assume it is 1, so it stays exact
  when rounding drifts the rows off orthonormality.
  """
  whiten = whitening(setting)
  gram = whiten @ input_covariance(setting) @ whiten  # ~ I_D
  cross = whiten @ input_attribute_covariance(setting)  # [D, K]
  attribute_vars = attribute_variance(setting)

  def risk(rotations: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(rotations[..., :len(attribute_vars), :])  # Q_K
    variances = np.einsum('...kd,de,...ke->...k', rows, gram, rows)
    covariances = np.einsum('...kd,dk->...k', rows, cross)
    return (attribute_vars - covariances**2 / variances).mean(axis=-1)
  return risk


def _rotate(rotation: np.ndarray, i: int, j: int, cos, sin) -> np.ndarray:
  """``rotation`` ``[D, D]`` with rows ``i, j`` turned by angles ``[...]``.

  ``cos``, ``sin``: of the angles, floats or arrays; returns ``[..., D, D]``.
  """
  rotated = np.broadcast_to(rotation, np.shape(cos) + rotation.shape).copy()
  cos, sin = np.expand_dims(cos, -1), np.expand_dims(sin, -1)
  rotated[..., i, :] = cos * rotation[i] - sin * rotation[j]
  rotated[..., j, :] = sin * rotation[i] + cos * rotation[j]
  return rotated


def _givens_step(risk, rotation: np.ndarray, i: int, j: int, num_grid: int,
                 num_zoom: int = 5) -> tuple[np.ndarray, float]:
  """Best rotation of rows ``i, j`` of ``rotation`` by one angle; its risk.

  ``risk`` is :func:`_split_risk`'s. The split MSE is pi-periodic in the
  angle (the readouts absorb sign flips), so a grid over ``[-pi/2, pi/2)``,
  which holds 0, is refined ``num_zoom`` times to +-1 spacing around the best
  angle (5 x 64 reach ~1e-8 rad).
  """
  step, theta, value = np.pi / num_grid, 0.0, np.inf
  grid = -np.pi / 2 + step * np.arange(num_grid)
  for _ in range(1 + num_zoom):  # the coarse grid, then the zooms
    values = risk(_rotate(rotation, i, j, np.cos(grid), np.sin(grid)))
    best = int(np.argmin(values))
    if values[best] < value:
      theta, value = float(grid[best]), float(values[best])
    grid = theta + np.linspace(-step, step, num_grid + 1)
    step *= 2.0 / num_grid
  return _rotate(rotation, i, j, math.cos(theta), math.sin(theta)), value


def best_rotation(setting: LinearGaussianSetting,
                  num_restarts: int | None = None, seed: int = 0,
                  num_grid: int = 64, max_sweeps: int = 200,
                  tol: float = 1e-14) -> np.ndarray:
  r"""Orthogonal ``[D, D]`` ``Q`` of least split MSE of ``Q_K Cov(x)^{-1/2}``.

  Minimises ``f(Q) = mean_k [Var(s_k) - (b_k . q_k)^2]`` (``q_k``, ``b_k``:
  row k of ``Q`` and of ``Cov(s, x) Cov(x)^{-1/2}``) by Givens-angle
  coordinate descent: a sweep rotates rows ``i, j`` by the best of
  ``num_grid`` angles for every plane ``i < K``, ``i < j < D``, until a
  sweep gains less than ``tol``. For ``D > 2`` descent can stall at a local
  optimum, so it restarts from ``I`` and ``num_restarts - 1`` (default: 0
  for D = 2, else 7) Haar-random rotations of ``seed`` and keeps the best.
  Determinant -1 is not needed: the readout absorbs a sign flip.
  """
  dim, k = setting.input_dim, setting.num_attributes
  if dim < k:
    raise ValueError(f'MI=0 needs K = {k} independent latents, but x has only '
                     f'D = {dim} dimensions; use a mixing A with >= K rows.')
  num_restarts = validate.integer((1 if dim == 2 else 8) if num_restarts is None
                                  else num_restarts, 'num_restarts', 1)
  validate.integer(num_grid, 'num_grid', 4)
  risk = _split_risk(setting)
  planes = [(i, j) for i in range(k) for j in range(i + 1, dim)]
  haar = scipy.stats.special_ortho_group(dim, seed=np.random.default_rng(seed))
  starts = [np.eye(dim)] + [haar.rvs() for _ in range(num_restarts - 1)]
  best_q, best_value = None, np.inf
  for rotation in starts:
    value = float(risk(rotation))
    for _ in range(max_sweeps):
      before = value
      for i, j in planes:
        rotation, value = _givens_step(risk, rotation, i, j, num_grid)
      if before - value <= tol:
        break
    if value < best_value:
      best_q, best_value = rotation, value
  # Products of many Givens rotations drift from orthogonality by rounding;
  # the polar factor is the nearest orthogonal matrix.
  u, _, vt = np.linalg.svd(best_q)
  return u @ vt


def mi0_solution(setting: LinearGaussianSetting,
                 num_restarts: int | None = None,
                 seed: int = 0) -> LinearSolution:
  """Best split-readout model with unconditionally independent latents.

  For Gaussians ``I(z_k; z_-k) = 0`` iff ``Cov(z)`` is diagonal; rescaling a
  latent does not change its split MSE, so ``W = Q_K Cov(x)^{-1/2}``, with
  ``Q_K`` the first K rows of :func:`best_rotation`, loses no generality.
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
  ``I(z_k; z_-k | s) = 0``. A given ``W`` ``[K, D]`` must make
  ``W Cov(x | s) W^T`` diagonal up to ``rtol`` times its largest entry.
  """
  k = setting.num_attributes  # W = I [K, K] fails the [K, D] check if D != K
  encoder = np.eye(k) if encoder is None else encoder
  cov = conditional_latent_covariance(setting, encoder, given=None)
  off = np.abs(cov - np.diag(np.diag(cov))).max()
  if off > rtol * max(np.abs(np.diag(cov)).max(), 1e-300):
    raise ValueError(f'W Cov(x|s) W^T has off-diagonal entries up to '
                     f'{off:.3g}: latents not independent given s; pass a W '
                     'that diagonalises it.')
  return split_solution(setting, encoder)


def reference_solution(noise_var: float, num_attributes: int = 2,
                       mixing: np.ndarray | None = None) -> LinearSolution:
  """The full regression fitted at correlation 0: no shortcut to exploit."""
  return optimal_regression(
      make_setting(0.0, noise_var, num_attributes, mixing))


def fit_models(train_setting: LinearGaussianSetting,
               num_restarts: int | None = None,
               seed: int = 0) -> dict[str, LinearSolution]:
  """The compared solutions, keyed by :data:`MODELS` (needs ``D = K``).

  ``reference`` is fitted at ``Sigma_s = I``, with the same noise and mixing.
  """
  return {
      'regression': optimal_regression(train_setting),
      'mi0': mi0_solution(train_setting, num_restarts=num_restarts, seed=seed),
      'cmi0': cmi0_solution(train_setting),
      'reference': reference_solution(train_setting.noise_var,
                                      train_setting.num_attributes,
                                      train_setting.mixing)}


def table1(train_corr: float = 0.8, noise_var: float = 0.1,
           test_corr: float = 0.0, num_attributes: int = 2,
           mixing: np.ndarray | None = None, num_restarts: int | None = None,
           seed: int = 0) -> dict[str, dict[str, float]]:
  """The paper's Table 1: ``{model: {metric: float}}`` (:data:`METRICS`).

  Exact ``train_*`` on the distribution each model was fitted on
  (``train_corr``; ``reference``: 0) and ``test_*`` at ``test_corr``.
  """
  k = _check_corrs(num_attributes, train_corr=train_corr, test_corr=test_corr)
  train, test, uncorrelated = (make_setting(corr, noise_var, k, mixing)
                               for corr in (train_corr, test_corr, 0.0))
  table = {}
  for name, solution in fit_models(train, num_restarts, seed).items():
    fitted_on = uncorrelated if name == 'reference' else train
    train_mse, test_mse = mse(fitted_on, solution), mse(test, solution)
    table[name] = {
        'train_mse': train_mse, 'test_mse': test_mse,
        'train_mse_mean': train_mse / k, 'test_mse_mean': test_mse / k,
        'train_ve': variance_explained(fitted_on, solution),
        'test_ve': variance_explained(test, solution)}
  return table


def noise_correlation_sweep(noise_vars: Sequence[float],
                            train_corrs: Sequence[float],
                            test_corr: float = 0.0, num_attributes: int = 2,
                            mixing: np.ndarray | None = None,
                            num_restarts: int | None = None,
                            seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
  """Train and test MSE over a grid of noise levels x training correlations.

  The paper's Figure 2: for every ``(sigma^2, c)`` of ``noise_vars``
  ``[N_noise]`` x ``train_corrs`` ``[N_corr]``, as :func:`table1`. Returns
  ``{'train_mse': {model: [N_noise, N_corr]}, 'test_mse': {...}}``, float64.
  """
  for name, grid in (('noise_vars', noise_vars), ('train_corrs', train_corrs)):
    if np.ndim(grid) != 1 or np.size(grid) == 0:
      raise ValueError(f'{name} must be a non-empty 1-D sequence; got shape '
                       f'{np.shape(grid)}.')
  _check_corrs(num_attributes, test_corr=test_corr, **{
      f'train_corrs[{b}]': corr for b, corr in enumerate(train_corrs)})
  tables = [[table1(corr, noise_var, test_corr, num_attributes, mixing,
                    num_restarts, seed) for corr in train_corrs]
            for noise_var in noise_vars]
  return {split: {name: np.array([[t[name][split] for t in row]
                                  for row in tables]) for name in MODELS}
          for split in ('train_mse', 'test_mse')}


def prediction_scatter(
    train_corr: float = 0.8, noise_var: float = 0.1, test_corr: float = 0.0,
    num_attributes: int = 2, num_samples: int = 1000, seed: int = 0,
    mixing: np.ndarray | None = None, num_restarts: int | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
  """Samples of targets, inputs and predictions (the paper's Figure 3).

  The models fitted at ``train_corr`` are applied to ``num_samples`` fresh
  samples of the training and of the test distribution; ``seed`` seeds the
  samples and the MI=0 restarts. Returns ``{'train': d, 'test': d}`` with
  ``d = {'corr': float, 's': [N, K], 'x': [N, D], 'regression': [N, K],
  'mi0': [N, K], 'cmi0': [N, K]}`` (predictions ``s_hat = x M^T``), float64.
  """
  k = _check_corrs(num_attributes, train_corr=train_corr, test_corr=test_corr)
  train, test = (make_setting(corr, noise_var, k, mixing)
                 for corr in (train_corr, test_corr))
  models = fit_models(train, num_restarts=num_restarts, seed=seed)
  rng = np.random.default_rng(seed)
  out = {}
  for split, setting in (('train', train), ('test', test)):
    s, x = sample(setting, num_samples, rng)
    out[split] = {'corr': float(setting.attribute_cov[0, 1]), 's': s, 'x': x,
                  **{name: x @ models[name].predictor.T
                     for name in ('regression', 'mi0', 'cmi0')}}
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
