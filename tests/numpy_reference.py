"""Float64 NumPy transcription of the CIRCE authors' kernel formulas.

Written from the maths of the public PyTorch code of Pogodin, Deka et al.
(github.com/namratadeka/circe), one function per published function, in the
most direct form (explicit distances, centring matrix, per-point weights),
so that it shares no algebraic shortcut with :mod:`cmi_jax.kernels`:

  gaussian_kernel   utils/losses.py: gaussian_kernel (+ compute_pdist_sq)
  hsic_matrices     utils/losses.py: hsic_matrices
  hscic             utils/losses.py: hscic (on kernel matrices)
  circe_regression  trainer/circe.py: CIRCE._get_yz_regressors (W_1, W_2)
  loo_select        trainer/circe.py: CIRCE._leave_one_out_regressors, with
                    utils/utils.py: leave_one_out_reg_kernels(_one)
  circe_estimate    utils/losses.py: circe_estimate (cond_cov = not centered)
"""

import numpy as np


def gaussian_kernel(x, y=None, sigma2=None):
  """exp(-||x_i - y_j||^2 / sigma2); None: lower median of all distances."""
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  y = x if y is None else np.asarray(y, np.float64).reshape(len(y), -1)
  dist2 = ((x[:, None, :] - y[None, :, :])**2).sum(-1)
  if sigma2 is None:
    sigma2 = np.quantile(dist2, 0.5, method='lower')  # torch.median
  return np.exp(-dist2 / sigma2)


def hsic_matrices(kx, ky, biased=False):
  """Gretton et al. (biased, / B^2) or Song et al. (unbiased) HSIC."""
  kx, ky = np.asarray(kx, np.float64), np.asarray(ky, np.float64)
  n = len(kx)
  if biased:
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(kx @ h @ ky @ h) / n**2
  k, l = kx - np.diag(np.diag(kx)), ky - np.diag(np.diag(ky))
  one = np.ones(n)
  return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / (n - 1) /
          (n - 2) - 2 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))


def hscic(kx, kz, ky, ridge):
  """mean_j ||mu_XZ|y_j - mu_X|y_j (x) mu_Z|y_j||^2, in-batch ridge on Y."""
  kx, kz, ky = (np.asarray(m, np.float64) for m in (kx, kz, ky))
  n = len(ky)
  weights = np.linalg.solve(ky + ridge * np.eye(n), ky)
  total = 0.0
  for j in range(n):
    w = weights[:, j]
    total += (w @ (kx * kz) @ w - 2 * np.sum(w * (kx @ w) * (kz @ w)) +
              (w @ kx @ w) * (w @ kz @ w))
  return total / n


def circe_regression(y_heldout, z_heldout, ridge, sigma2_y, sigma2_z):
  """W_1 = (Ky + ridge I)^-1, W_2 = W_1 Kz on the held-out rows."""
  ky = gaussian_kernel(y_heldout, sigma2=sigma2_y)
  inverse = np.linalg.inv(ky + ridge * np.eye(len(ky)))
  return inverse, inverse @ gaussian_kernel(z_heldout, sigma2=sigma2_z)


def loo_select(y_heldout, z_heldout, ridges, sigma2s, sigma2_z,
               eps=np.finfo(np.float32).eps):
  """(ridge, sigma2, errors) minimising the closed-form LOO error.

  ``eps``: the authors' Gram matrices are float32, so is their threshold.
  """
  kz = gaussian_kernel(z_heldout, sigma2=sigma2_z)
  m = len(kz)
  errors = np.zeros((len(sigma2s), len(ridges)))
  thresholds = np.zeros(len(sigma2s))
  for s, sigma2 in enumerate(sigma2s):
    ky = gaussian_kernel(y_heldout, sigma2=sigma2)
    for r, ridge in enumerate(ridges):
      hat = np.linalg.solve(ky + ridge * np.eye(m), ky).T
      errors[s, r] = np.mean(
          (np.diag(kz) + np.diag(hat @ kz @ hat) - 2 * np.diag(hat @ kz)) /
          (1 - np.diag(hat))**2)
    thresholds[s] = np.linalg.svd(ky, compute_uv=False).max() * m * eps
    errors[s, np.asarray(ridges) < thresholds[s]] = 2 * errors[s].max()
  s, r = np.unravel_index(np.argmin(errors), errors.shape)
  return max(ridges[r], thresholds[s]), sigma2s[s], errors


def circe_estimate(x, y, z, y_heldout, z_heldout, w1, w2, sigma2_x, sigma2_y,
                   sigma2_z, biased=False, centered=True):
  """CIRCE from the residual kernel of phi(z) - E[phi(Z) | y].

  The bandwidths may be None (median heuristic); the batch and held-out rows
  then share one median, computed on k([batch; heldout], batch) as the
  authors do.
  """
  b = len(y)
  stack = lambda a, h: np.concatenate([np.reshape(a, (b, -1)),
                                       np.reshape(h, (len(h), -1))])
  kz_all = gaussian_kernel(stack(z, z_heldout), z, sigma2_z)
  ky_all = gaussian_kernel(stack(y, y_heldout), y, sigma2_y)
  kz, kz_hb, ky, ky_hb = kz_all[:b], kz_all[b:], ky_all[:b], ky_all[b:]
  alpha = w1 @ ky_hb  # [M, B], regression weights at the batch's y
  kz_h = np.linalg.solve(w1, w2)  # the held-out Kz: W_2 = W_1 Kz
  kres = np.zeros((b, b))
  for i in range(b):
    for j in range(b):
      kres[i, j] = (kz[i, j] - kz_hb[:, i] @ alpha[:, j]
                    - alpha[:, i] @ kz_hb[:, j]
                    + alpha[:, i] @ kz_h @ alpha[:, j])
  kres *= ky
  kx = gaussian_kernel(x, sigma2=sigma2_x)
  if centered:
    return hsic_matrices(kx, kres, biased)
  products = kx * kres
  if biased:
    return products.mean()
  return products[np.triu_indices(b, 1)].mean()
