"""Kernel measures of (conditional) independence: HSIC, HSCIC and CIRCE.

Conventions shared by every function here:
  * A kernel is a callable ``k(a, b=None) -> [Na, Nb]`` on rows ``a`` ``[Na]``
    or ``[Na, d]`` (a vector is one feature per row); ``b=None`` means
    ``b = a``. Bind its parameters with ``functools.partial``, e.g.
    ``partial(gaussian, sigma2=0.01)``.
  * A categorical attribute enters a kernel as its one-hot vector
    (``jax.nn.one_hot``): the Gaussian kernel is then 1 within a class and
    ``exp(-2 / sigma2)`` across classes.
  * Kernel matrices are symmetric ``[B, B]`` Gram matrices of one batch.
  * Everything is pure and shape-static, so it runs under ``jit``, ``vmap``
    and ``grad``.

Normalisations follow the CIRCE authors' code (github.com/namratadeka/circe,
``utils/losses.py`` and ``trainer/circe.py``), so that their
hyper-parameters (ridge, bandwidths, weight of the regulariser) carry over.

References:
  Gretton et al., Measuring statistical dependence with Hilbert-Schmidt
  norms, ALT 2005. Song et al., Feature selection via dependence
  maximization, JMLR 2012. Park & Muandet, A measure-theoretic approach to
  kernel conditional mean embeddings, NeurIPS 2020. Quinzan et al., Learning
  counterfactually invariant predictors, arXiv:2207.09768. Pogodin, Deka et
  al., Efficient conditionally invariant representation learning (CIRCE),
  ICLR 2023.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional, Sequence

import chex
import flax.struct
import jax
import jax.numpy as jnp
import jax.scipy.linalg

Kernel = Callable[..., jax.Array]


def _rows(a: chex.Array) -> jax.Array:
  a = jnp.asarray(a)
  return a.reshape(a.shape[0], -1)


def _pairs(rows: jax.Array) -> jax.Array:
  """The ``[B, B]`` 0 / 1 weights of pairs of selected ``rows`` ``[B]``."""
  return rows[:, None] * rows[None, :]


# Batched LAPACK calls on the CPU split their batch over XLA's intra-op
# thread pool and wait for the parts; two of them running at once (a
# Cholesky and a triangular solve of a vmapped sweep's step) can take every
# thread of a small pool and wait for each other forever (seen on 2 cores
# with 10 HSCIC members). One matrix at a time never splits.
_sequential_solve_pos = jax.custom_batching.sequential_vmap(
    functools.partial(jax.scipy.linalg.solve, assume_a='pos'))


@jax.custom_vjp
def solve_pos(matrix: jax.Array, rhs: jax.Array) -> jax.Array:
  """``matrix^-1 rhs`` for a symmetric positive definite ``matrix`` [B, B].

  Under ``vmap`` the matrices are solved one after another. The gradient is
  that of ``jax.scipy.linalg.solve(..., assume_a='pos')``: for ``x = A^-1 b``
  and cotangent ``g``, ``b_bar = A^-1 g`` and ``A_bar = -b_bar x^T``.

  Example:
    >>> x = solve_pos(2.0 * jnp.eye(2), jnp.ones((2, 1)))
    >>> [round(float(v), 6) for v in x.ravel()]
    [0.5, 0.5]
  """
  return _sequential_solve_pos(matrix, rhs)


def _solve_pos_forward(matrix, rhs):
  x = _sequential_solve_pos(matrix, rhs)
  return x, (matrix, x)


def _solve_pos_backward(residuals, g):
  matrix, x = residuals
  rhs_bar = _sequential_solve_pos(matrix, g)
  outer = rhs_bar.reshape(len(rhs_bar), -1) @ x.reshape(len(x), -1).T
  return -outer, rhs_bar


solve_pos.defvjp(_solve_pos_forward, _solve_pos_backward)


def gaussian(x: chex.Array, y: Optional[chex.Array] = None, *,
             sigma2: Optional[chex.Numeric] = None) -> jax.Array:
  """Gaussian kernel matrix ``K_ij = exp(-||x_i - y_j||^2 / sigma2)``.

  There is no factor 2 in the denominator (as in the CIRCE code). Squared
  distances are clamped at 0 against rounding. ``sigma2=None`` takes the
  median heuristic as the authors' ``gaussian_kernel`` does: the lower
  median (``torch.median``'s convention: the ``(n - 1) // 2``-th smallest)
  of all ``Nx * Ny`` squared distances, zero diagonal included when ``y`` is
  None, floored at the dtype's smallest normal number so that identical
  rows give 1, not NaN. Gradients flow through the chosen median as
  through torch's.

  Args:
    x: ``[Nx]`` or ``[Nx, d]``.
    y: ``[Ny]`` or ``[Ny, d]``, or None for ``y = x``.
    sigma2: the bandwidth (scalar), or None for the median heuristic.

  Returns:
    ``[Nx, Ny]``.

  Example:
    >>> x = jnp.array([0.0, 1.0, 3.0])
    >>> with jnp.printoptions(precision=3):
    ...   print(gaussian(x, sigma2=4.0))
    [[1.    0.779 0.105]
     [0.779 1.    0.368]
     [0.105 0.368 1.   ]]
  """
  x = _rows(x)
  if y is None:
    gram = jnp.matmul(x, x.T, precision='highest')
    # Norms from the Gram diagonal make the diagonal distances exactly 0.
    sq_x = sq_y = jnp.diagonal(gram)
  else:
    y = _rows(y)
    # 'highest': the expansion cancels, TF32/bf16 matmuls would swamp it.
    gram = jnp.matmul(x, y.T, precision='highest')
    sq_x, sq_y = jnp.sum(x * x, 1), jnp.sum(y * y, 1)
  dist2 = jnp.maximum(sq_x[:, None] + sq_y[None, :] - 2 * gram, 0.0)
  if sigma2 is None:
    # Floored: identical rows (collapsed codes) would give 0 / 0.
    sigma2 = jnp.maximum(jnp.sort(dist2.ravel())[(dist2.size - 1) // 2],
                         jnp.finfo(dist2.dtype).tiny)
  return jnp.exp(-dist2 / sigma2)


def hsic(kx: chex.Array, ky: chex.Array, *, biased: bool = False,
         where: Optional[chex.Array] = None) -> jax.Array:
  """HSIC estimate from two symmetric ``[B, B]`` kernel matrices.

  With ``H = I - 11' / B`` and ``K~``, ``L~`` the matrices ``Kx``, ``Ky``
  with zeroed diagonals:

      biased   = tr(Kx H Ky H) / B^2                      (Gretton et al.)
      unbiased = [tr(K~ L~) + 1'K~1 1'L~1 / ((B-1)(B-2))
                  - 2 1'K~L~1 / (B-2)] / (B (B-3))          (Song et al.)

  as the authors' ``hsic_matrices`` (the biased one divides by ``B^2``, not
  ``(B-1)^2``). The unbiased one needs ``B >= 4`` and can be negative.
  With ``where``, the estimate is that of the ``n`` selected rows alone
  (``B`` becomes ``n``); the unbiased one is 0 when ``n < 4``, the biased
  one when ``n = 0``.

  Args:
    kx: ``[B, B]``.
    ky: ``[B, B]``.
    biased: which estimator.
    where: optional bool ``[B]``, the rows to use (fixed shapes for jit).

  Returns:
    A scalar.

  Example:
    >>> x = jax.random.normal(jax.random.key(0), (64, 1))
    >>> k = gaussian(x, sigma2=1.0)
    >>> bool(hsic(k, gaussian(x ** 2, sigma2=1.0)) > 0.01)
    True
  """
  n = kx.shape[0]
  rows = jnp.ones(n, kx.dtype) if where is None else where.astype(kx.dtype)
  if where is not None:  # Unselected rows and columns drop out of the sums.
    pairs = _pairs(rows)
    kx, ky, n = kx * pairs, ky * pairs, rows.sum()
  if biased:
    # Centring one matrix suffices: tr(Kx H Ky H) = <H Kx H, Ky>.
    count = jnp.maximum(n, 1)
    means = kx.sum(1) / count
    centred = kx - means - means[:, None] + means.sum() / count
    return jnp.sum(centred * ky) / count**2
  off_diagonal = 1 - jnp.eye(kx.shape[0], dtype=kx.dtype)
  kx, ky = kx * off_diagonal, ky * off_diagonal
  row_x, row_y = kx.sum(1), ky.sum(1)
  m = jnp.maximum(n, 4)  # Below 4 rows the estimate is 0, not a 0 / 0.
  value = (jnp.sum(kx * ky) + row_x.sum() * row_y.sum() / ((m - 1) * (m - 2))
           - 2 * jnp.dot(row_x, row_y) / (m - 2)) / (m * (m - 3))
  return value if where is None else jnp.where(n >= 4, value, 0.0)


def hscic(kx: chex.Array, kz: chex.Array, ky: chex.Array, *,
          ridge: chex.Numeric, where: Optional[chex.Array] = None
          ) -> jax.Array:
  """HSCIC of X and Z given Y, from three ``[B, B]`` kernel matrices.

  The conditional mean embeddings at ``y_j`` are in-batch kernel ridge
  regressions with weights ``w_j``, column ``j`` of ``W = (Ky + ridge I)^-1
  Ky`` (``ridge`` is not scaled by ``B``). Averaged over the batch:

      HSCIC = mean_j [w_j'(Kx * Kz) w_j - 2 w_j'((Kx w_j) * (Kz w_j))
                      + (w_j' Kx w_j)(w_j' Kz w_j)]

  (``*`` elementwise), as the authors' ``hscic``.

  Args:
    kx: ``[B, B]``.
    kz: ``[B, B]``.
    ky: ``[B, B]``, of the conditioning variable.
    ridge: the ridge of the regression on Y.
    where: optional bool ``[B]``: the rows to use, for the regression and the
      mean (0 when none is selected).

  Returns:
    A scalar.

  Example:
    >>> y = jax.random.normal(jax.random.key(0), (32, 1))
    >>> k = gaussian(y, sigma2=1.0)
    >>> value = hscic(gaussian(y ** 2, sigma2=1.0), k, k, ridge=0.1)
  """
  if where is not None:
    # Zero rows and columns of Ky zero the rows and columns of W, so the
    # unselected rows neither regress nor are averaged.
    rows = where.astype(ky.dtype)
    ky = ky * _pairs(rows)
  w = solve_pos(ky + ridge * jnp.eye(ky.shape[0], dtype=ky.dtype), ky)
  kx_w, kz_w = kx @ w, kz @ w
  joint = jnp.sum(w * ((kx * kz) @ w), 0)
  cross = jnp.sum(w * kx_w * kz_w, 0)
  product = jnp.sum(w * kx_w, 0) * jnp.sum(w * kz_w, 0)
  if where is None:
    return jnp.mean(joint - 2 * cross + product)
  return jnp.sum(joint - 2 * cross + product) / jnp.maximum(rows.sum(), 1)


@flax.struct.dataclass
class CirceRegression:
  """Kernel ridge regression from Y to the features of Z on held-out rows.

  ``alpha(y) = w1 k_y(y_heldout, y)`` weights the held-out ``phi(z_m)`` in
  the estimate of ``E[phi(Z) | Y = y]``. Pass it to :func:`circe` (as an
  argument of a jitted function or closed over); the kernels are static.

  Attributes:
    y_heldout: ``[M, dy]``.
    z_heldout: ``[M, dz]``.
    w1: ``(Ky + ridge I)^-1``, ``[M, M]`` (the authors' ``W_1``).
    w2: ``(Ky + ridge I)^-1 Kz``, ``[M, M]`` (their ``W_2``).
    kernel_y: the kernel on Y.
    kernel_z: the kernel on Z.
  """
  y_heldout: jax.Array
  z_heldout: jax.Array
  w1: jax.Array
  w2: jax.Array
  kernel_y: Kernel = flax.struct.field(pytree_node=False)
  kernel_z: Kernel = flax.struct.field(pytree_node=False)


def circe_regression(y_heldout: chex.Array, z_heldout: chex.Array, *,
                     kernel_z: Kernel, ridge: Optional[chex.Numeric] = None,
                     kernel_y: Optional[Kernel] = None) -> CirceRegression:
  """Fits the regression of :func:`circe` once, on held-out rows.

  ``Ky = kernel_y(y_heldout)``, ``Kz = kernel_z(z_heldout)`` and ``[w1, w2]
  = (Ky + ridge I)^-1 [I, Kz]`` (``ridge`` not scaled by M), as the
  authors' ``CIRCE._get_yz_regressors``. They solve in extended precision;
  for an ill-conditioned ``Ky`` fit under ``jax.enable_x64()``. Without
  ``ridge`` and ``kernel_y`` both are chosen as the authors do, by
  :func:`circe_loo_select` on their grids (a Gaussian ``kernel_y``; call it
  outside ``jit``, as the chosen bandwidth becomes a static field).

  Args:
    y_heldout: ``[M]`` or ``[M, dy]``.
    z_heldout: ``[M]`` or ``[M, dz]``.
    kernel_z: the kernel on Z.
    ridge: the ridge, or None (with ``kernel_y`` None) for leave-one-out.
    kernel_y: the kernel on Y, or None (with ``ridge`` None).

  Returns:
    The fitted :class:`CirceRegression`.
  """
  if (ridge is None) != (kernel_y is None):
    raise ValueError('pass both ridge and kernel_y, or neither (then both '
                     'are chosen by leave-one-out).')
  if ridge is None:
    chosen = circe_loo_select(y_heldout, z_heldout, kernel_z=kernel_z)
    ridge = chosen.ridge
    kernel_y = functools.partial(gaussian, sigma2=float(chosen.sigma2))
  y_heldout, z_heldout = _rows(y_heldout), _rows(z_heldout)
  ky = kernel_y(y_heldout)
  eye = jnp.eye(ky.shape[0], dtype=ky.dtype)
  w = solve_pos(ky + ridge * eye,
                jnp.concatenate([eye, kernel_z(z_heldout)], 1))
  m = ky.shape[0]
  return CirceRegression(y_heldout, z_heldout, w[:, :m], w[:, m:], kernel_y,
                         kernel_z)


class LooSelection(NamedTuple):
  """The choice of :func:`circe_loo_select`.

  Attributes:
    ridge: the chosen ridge, scalar.
    sigma2: the chosen bandwidth of the Gaussian kernel on Y, scalar.
    errors: ``[len(sigma2s), len(ridges)]`` leave-one-out errors, those of
      ridges below the conditioning threshold replaced by twice their row's
      maximum.
  """
  ridge: jax.Array
  sigma2: jax.Array
  errors: jax.Array


def circe_loo_select(y_heldout: chex.Array, z_heldout: chex.Array, *,
                     kernel_z: Kernel,
                     ridges: Sequence[float] = (1e-2, 1e-1, 1.0, 10.0, 100.0),
                     sigma2s: Sequence[float] = (1.0, 0.1, 0.01, 0.001)
                     ) -> LooSelection:
  """Ridge and Y-bandwidth of :func:`circe_regression` by leave-one-out.

  For each ``sigma2`` (``Ky = gaussian(y_heldout, sigma2=sigma2)``) and
  ``ridge``, with the hat matrix ``A = Ky (Ky + ridge I)^-1``, the closed
  form leave-one-out error of regressing ``phi(z)`` on Y is

      LOO = mean_i ((I - A) Kz (I - A))_ii / (1 - A_ii)^2.

  As in the authors' ``CIRCE._leave_one_out_regressors`` (and
  ``utils.leave_one_out_reg_kernels``): a ridge below ``max_eig(Ky) * M *
  eps`` scores twice the largest error of its row, the grid's first minimum
  wins (``sigma2`` major), and a chosen ridge below that threshold is raised
  to it. The default grids are theirs.

  Args:
    y_heldout: ``[M]`` or ``[M, dy]``.
    z_heldout: ``[M]`` or ``[M, dz]``.
    kernel_z: the kernel on Z.
    ridges: candidate ridges.
    sigma2s: candidate bandwidths of the Gaussian kernel on Y.

  Returns:
    A :class:`LooSelection`; use ``partial(gaussian, sigma2=s.sigma2)`` and
    ``s.ridge`` in :func:`circe_regression` and :func:`circe`.

  Example:
    >>> y = jax.random.normal(jax.random.key(0), (64, 1))
    >>> s = circe_loo_select(y, jnp.sin(y), kernel_z=gaussian)
    >>> s.errors.shape
    (4, 5)
  """
  kz = kernel_z(z_heldout)
  ridges = jnp.asarray(ridges, kz.dtype)
  errors, thresholds = [], []
  for sigma2 in sigma2s:
    # One eigendecomposition gives every ridge's residual operator I - A.
    eigs, u = jnp.linalg.eigh(gaussian(y_heldout, sigma2=sigma2))
    residual = jnp.einsum('ik,rk,jk->rij', u,
                          ridges[:, None] / (eigs + ridges[:, None]), u)
    diag = jnp.diagonal(residual, axis1=1, axis2=2)  # [R, M]
    sandwich = jnp.sum((residual @ kz) * residual, -1)  # [R, M]
    threshold = jnp.abs(eigs).max() * eigs.shape[0] * jnp.finfo(eigs.dtype).eps
    error = jnp.mean(sandwich / diag**2, -1)
    errors.append(jnp.where(ridges < threshold, 2 * error.max(), error))
    thresholds.append(threshold)
  errors = jnp.stack(errors)
  i, j = jnp.unravel_index(jnp.argmin(errors), errors.shape)
  return LooSelection(jnp.maximum(ridges[j], jnp.stack(thresholds)[i]),
                      jnp.asarray(sigma2s, kz.dtype)[i], errors)


def circe(x: chex.Array, y: chex.Array, z: chex.Array,
          regression: CirceRegression, *, kernel_x: Kernel,
          biased: bool = False, centered: bool = True,
          where: Optional[chex.Array] = None) -> jax.Array:
  """CIRCE(X ⊥ Z | Y) on a batch, with the held-out ``regression``.

  With ``alpha = w1 k_y(y_heldout, y)`` ``[M, B]``, the residual features
  ``phi(z_i) - E[phi(Z) | y_i]`` have the kernel

      Kres = (Kz + A + A') * Ky,
      A = (0.5 k_y(y, y_heldout) w2 - k_z(z, z_heldout)) alpha

  (``Kz``, ``Ky`` of the batch, ``*`` elementwise; ``A + A'`` expands the
  inner products of the residuals). Then CIRCE = ``hsic(Kx, Kres,
  biased=biased)`` with ``Kx = kernel_x(x)``; with ``centered=False`` it is
  the non-centred conditional cross-covariance ``mean(Kx * Kres)`` over all
  pairs (biased) or over pairs ``i != j`` (unbiased). As the authors'
  ``circe_estimate``, the batch and held-out rows enter ``kernel_z`` and
  ``kernel_y`` in one call (``k([batch; heldout], batch)``), so a median
  bandwidth is taken over those ``(B + M) * B`` distances.

  Args:
    x: ``[B]`` or ``[B, dx]``, e.g. the representation.
    y: ``[B]`` or ``[B, dy]``, the conditioning variable.
    z: ``[B]`` or ``[B, dz]``.
    regression: from :func:`circe_regression`.
    kernel_x: the kernel on X.
    biased: the biased HSIC (V-statistic) form; unbiased needs ``B >= 4``.
    centered: HSIC of ``Kx`` and ``Kres``, or the non-centred form.
    where: optional bool ``[B]``, the rows to use (as in :func:`hsic`).

  Returns:
    A scalar.

  Example:
    >>> from functools import partial
    >>> ky = partial(gaussian, sigma2=1.0)
    >>> y = jax.random.normal(jax.random.key(0), (96, 1))
    >>> z = y + jax.random.normal(jax.random.key(1), (96, 1))
    >>> reg = circe_regression(y[32:], z[32:], ridge=0.1, kernel_y=ky,
    ...                        kernel_z=ky)
    >>> loss = circe(y[:32] ** 2, y[:32], z[:32], reg, kernel_x=ky)
  """
  y, z = _rows(y), _rows(z)
  b = y.shape[0]
  r = regression
  kz = r.kernel_z(jnp.concatenate([z, r.z_heldout]), z)  # [B + M, B]
  ky = r.kernel_y(jnp.concatenate([y, r.y_heldout]), y)
  a = (0.5 * ky[b:].T @ r.w2 - kz[b:].T) @ r.w1 @ ky[b:]
  kres = (kz[:b] + a + a.T) * ky[:b]
  kx = kernel_x(x)
  if centered:
    return hsic(kx, kres, biased=biased, where=where)
  products = kx * kres
  n = b
  if where is not None:
    rows = where.astype(products.dtype)
    products, n = products * _pairs(rows), rows.sum()
  if biased:
    return jnp.sum(products) / jnp.maximum(n, 1)**2
  # Symmetric, so the mean over i != j is the authors' mean over i < j.
  return (jnp.sum(products) - jnp.trace(products)) / jnp.maximum(
      n * (n - 1), 1)
