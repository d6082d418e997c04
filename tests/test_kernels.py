"""HSIC, HSCIC and CIRCE against a float64 NumPy reference, and their sanity.

Agreement with :mod:`numpy_reference` is relative to the largest expected
entry: ``|jax - ref| <= rtol * max|ref|`` elementwise, with ``rtol = 1e-5``
in float32 and ``1e-10`` in float64 (under ``jax.enable_x64``); both get the
same float32 numbers. Each test jits one body: a first eager call compiles
every primitive apart and is several times slower.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import numpy_reference as ref
from cmi_jax import kernels, losses

pytestmark = pytest.mark.usefixtures('fast_compiles')

RTOL = {'float32': 1e-5, 'float64': 1e-10}
B, M = 12, 20  # batch and held-out rows


def assert_close(actual, expected, dtype):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected)
  scale = np.abs(expected).max()
  assert scale > 0
  np.testing.assert_allclose(actual, expected, rtol=0,
                             atol=RTOL[dtype] * scale)


def sample(n, seed=0, repeat=True):
  """x, y, z float32 with z and x depending on y; rows 0-1, 2-3 repeated."""
  rng = np.random.default_rng(seed)
  y = rng.normal(size=(n, 1))
  z = y + rng.normal(size=(n, 2))
  x = np.concatenate([y**2, z[:, :1]], 1) + 0.3 * rng.normal(size=(n, 2))
  if repeat:
    x[1], y[1], z[1], x[3] = x[0], y[0], z[0], x[2]
  return tuple(a.astype(np.float32) for a in (x, y, z))


@pytest.fixture(params=['float32', 'float64'])
def dtype(request):
  with jax.enable_x64(request.param == 'float64'):
    yield request.param


def test_gaussian_matches_reference(dtype):
  x, y, _ = sample(B)
  other = np.repeat(y, 2, 1)[:5]

  @jax.jit
  def gaussians(x, other, vector):
    return [kernels.gaussian(x), kernels.gaussian(x, sigma2=0.7),
            kernels.gaussian(x, other), kernels.gaussian(x, other, sigma2=0.7),
            kernels.gaussian(vector)]

  actual = gaussians(*(a.astype(dtype) for a in (x, other, y[:, 0])))
  # A vector is one feature per row.
  expected = [ref.gaussian_kernel(x), ref.gaussian_kernel(x, sigma2=0.7),
              ref.gaussian_kernel(x, other), ref.gaussian_kernel(x, other, 0.7),
              ref.gaussian_kernel(y)]
  for a, e in zip(actual, expected):
    assert_close(a, e, dtype)


def test_gaussian_median_is_the_lower_median_of_all_entries():
  x = np.array([0.0, 1.0, 3.0], np.float32)
  square, rectangle = jax.jit(
      lambda x: (kernels.gaussian(x), kernels.gaussian(x[:2], x[1:])))(x)
  # Entries 0, 0, 0, 1, 1, 4, 4, 9, 9: the lower median of 9 is 1.
  np.testing.assert_allclose(square, np.exp(-(x[:, None] - x)**2))
  # [2, 2] distances 1, 4, 0, 1: the lower of the middle two is 1.
  np.testing.assert_allclose(rectangle, np.exp(-(x[:2, None] - x[1:])**2))


@pytest.mark.parametrize('n', [4, B])
def test_hsic_and_hscic_match_reference(dtype, n):
  x, y, z = sample(n)
  kx, ky, kz = (ref.gaussian_kernel(a, sigma2=s)
                for a, s in ((x, 1.0), (y, 0.5), (z, None)))

  @jax.jit
  def measures(kx, ky, kz):
    return (kernels.hsic(kx, ky, biased=True), kernels.hsic(kx, ky),
            kernels.hscic(kx, kz, ky, ridge=0.1))

  actual = measures(*(jnp.asarray(m, dtype) for m in (kx, ky, kz)))
  expected = (ref.hsic_matrices(kx, ky, True), ref.hsic_matrices(kx, ky),
              ref.hscic(kx, kz, ky, 0.1))
  for a, e in zip(actual, expected):
    assert_close(a, e, dtype)


def test_where_equals_the_selected_rows_alone(dtype):
  """A mask must give the estimate of the selected rows, whatever the others
  hold (here: rows 0-1 repeated, the rest random), and 0 below 4 rows."""
  x, y, z = (a.astype(dtype) for a in sample(B + M))
  where = np.arange(B) % 3 != 1  # 8 of 12 rows, one of each repeated pair
  tiny = np.arange(B) < 3
  k = partial(kernels.gaussian, sigma2=0.7)
  reg = kernels.circe_regression(y[B:], z[B:], ridge=0.1, kernel_y=k,
                                 kernel_z=k)
  options = [(biased, centered) for biased in (True, False)
             for centered in (True, False)]

  @jax.jit
  def measures(x, y, z, where):
    kx, ky, kz = k(x), k(y), k(z)
    return ([kernels.hsic(kx, ky, biased=True, where=where),
             kernels.hsic(kx, ky, where=where),
             kernels.hscic(kx, kz, ky, ridge=0.1, where=where)]
            + [kernels.circe(x, y, z, reg, kernel_x=k, biased=b, centered=c,
                             where=where) for b, c in options])

  actual = measures(x[:B], y[:B], z[:B], where)
  xs, ys, zs = x[:B][where], y[:B][where], z[:B][where]
  kx, ky, kz = (ref.gaussian_kernel(a, sigma2=0.7) for a in (xs, ys, zs))
  w1, w2 = ref.circe_regression(y[B:], z[B:], 0.1, 0.7, 0.7)
  expected = [ref.hsic_matrices(kx, ky, True), ref.hsic_matrices(kx, ky),
              ref.hscic(kx, kz, ky, 0.1)] + [
                  ref.circe_estimate(xs, ys, zs, y[B:], z[B:], w1, w2, 0.7,
                                     0.7, 0.7, b, c) for b, c in options]
  # Absolute, in units of the kernels' entries (<= 1): some of these values
  # are ~1e-3, left by cancelling sums of O(1) terms.
  for a, e in zip(actual, expected):
    np.testing.assert_allclose(np.asarray(a, np.float64), e, rtol=0,
                               atol=RTOL[dtype])
  below_four = measures(x[:B], y[:B], z[:B], tiny)
  assert float(below_four[1]) == 0.0  # unbiased HSIC of 3 rows
  assert all(np.isfinite(float(v)) for v in below_four)


@pytest.mark.parametrize('sigma2_z', [0.5, None])
def test_circe_matches_reference(dtype, sigma2_z):
  x, y, z = (a.astype(dtype) for a in sample(B + M))
  options = [(biased, centered) for biased in (True, False)
             for centered in (True, False)]

  @jax.jit
  def fit_and_estimate(x, y, z):
    reg = kernels.circe_regression(
        y[B:], z[B:], ridge=0.1,
        kernel_y=partial(kernels.gaussian, sigma2=0.5),
        kernel_z=partial(kernels.gaussian, sigma2=sigma2_z))
    return reg.w1, reg.w2, [
        kernels.circe(x[:B], y[:B], z[:B], reg, biased=biased,
                      centered=centered,
                      kernel_x=partial(kernels.gaussian, sigma2=1.0))
        for biased, centered in options]

  w1, w2, estimates = fit_and_estimate(x, y, z)
  ref_w1, ref_w2 = ref.circe_regression(y[B:], z[B:], 0.1, 0.5, sigma2_z)
  assert_close(w1, ref_w1, dtype)
  assert_close(w2, ref_w2, dtype)
  for actual, (biased, centered) in zip(estimates, options):
    assert_close(actual, ref.circe_estimate(
        x[:B], y[:B], z[:B], y[B:], z[B:], ref_w1, ref_w2, 1.0, 0.5,
        sigma2_z, biased, centered), dtype)


def test_loo_select_matches_reference(dtype):
  _, y, z = (a.astype(dtype) for a in sample(M, repeat=False))
  # 1e-15 is below the conditioning threshold (max eig * M * eps): masked.
  ridges, sigma2s = (1e-15, 1e-2, 1e-1, 1.0, 10.0), (1.0, 0.1, 0.01)
  chosen = jax.jit(partial(
      kernels.circe_loo_select, kernel_z=partial(kernels.gaussian, sigma2=1.0),
      ridges=ridges, sigma2s=sigma2s))(y, z)
  ridge, sigma2, errors = ref.loo_select(y, z, ridges, sigma2s, 1.0,
                                         eps=np.finfo(dtype).eps)
  np.testing.assert_allclose(chosen.ridge, ridge, rtol=1e-6)
  np.testing.assert_allclose(chosen.sigma2, sigma2, rtol=1e-6)
  # Ky of sigma2 = 0.01 has eigenvalues near 0: float32 keeps 4 digits.
  np.testing.assert_allclose(chosen.errors[:, 1:], errors[:, 1:],
                             rtol=1e-4 if dtype == 'float32' else 1e-10)
  assert np.all(chosen.errors[:, 0] >= 2 * chosen.errors[:, 1:].max(1))


def fit(y, z):
  return kernels.circe_regression(
      y, z, ridge=0.1, kernel_y=partial(kernels.gaussian, sigma2=0.5),
      kernel_z=partial(kernels.gaussian, sigma2=1.0))


def measures(x, y, z, reg):
  """Every measure of a batch, the bandwidth of X by the median."""
  kx, ky, kz = kernels.gaussian(x), kernels.gaussian(y), kernels.gaussian(z)
  return jnp.stack([
      kernels.hsic(kx, kz), kernels.hsic(kx, kz, biased=True),
      kernels.hscic(kx, kz, ky, ridge=0.1),
      kernels.circe(x, y, z, reg, kernel_x=kernels.gaussian),
      kernels.circe(x, y, z, reg, kernel_x=kernels.gaussian, centered=False)])


def test_vmap_agrees_with_one_batch_at_a_time():
  x, y, z = sample(B + M)
  reg = jax.jit(fit)(y[B:], z[B:])
  xs = np.stack([x[:B], x[:B]**3, np.roll(x[:B], 1, 0)])
  one_at_a_time = np.stack(
      [jax.jit(measures)(a, y[:B], z[:B], reg) for a in xs])
  vmapped = jax.jit(jax.vmap(measures, in_axes=(0, None, None, None)))(
      xs, y[:B], z[:B], reg)
  assert np.all(np.abs(one_at_a_time[:, [0, 2, 3]]) > 1e-3)
  np.testing.assert_allclose(vmapped, one_at_a_time, rtol=1e-5, atol=1e-7)


def test_gradients_finite_with_repeated_rows():
  x, y, z = sample(B + M)  # rows 0-1 and 2-3 of x repeat
  reg = jax.jit(fit)(y[B:], z[B:])
  grads = jax.jit(jax.jacrev(measures))(x[:B], y[:B], z[:B], reg)
  assert np.all(np.isfinite(grads))  # [5, B, dx]
  assert np.all(np.abs(grads).sum((1, 2)) > 0)


def test_gradient_matches_finite_differences():
  x, y, z = (a.astype(np.float64) for a in sample(B + M))
  direction = np.random.default_rng(1).normal(size=x[:B].shape)
  with jax.enable_x64(True):
    reg = jax.jit(fit)(y[B:], z[B:])
    loss = lambda a: kernels.circe(a, y[:B], z[:B], reg, kernel_x=partial(
        kernels.gaussian, sigma2=1.0))

    @jax.jit
    def directional(eps):
      numeric = (loss(x[:B] + eps * direction) -
                 loss(x[:B] - eps * direction)) / (2 * eps)
      return jnp.vdot(jax.grad(loss)(x[:B]), direction), numeric

    analytic, numeric = map(float, directional(1e-6))
  assert abs(analytic) > 1e-3
  np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


@jax.jit
def _independence_measures(a, noise):
  k = partial(kernels.gaussian, sigma2=1.0)
  # b = a^2 is uncorrelated with a, yet dependent.
  return [[kernels.hsic(k(a), k(b), biased=biased) for biased in (False, True)]
          for b in (noise, a**2 + 0.1 * noise)]


def test_hsic_detects_dependence():
  rng = np.random.default_rng(0)
  a, noise = rng.normal(size=(2, 100, 1)).astype(np.float32)
  independent, dependent = np.array(_independence_measures(a, noise))
  # The biased estimate of independent samples is O(1 / B) above 0.
  assert np.all(np.abs(independent) < 0.005)
  assert np.all(dependent > 0.03)


def test_circe_vanishes_only_under_conditional_independence():
  rng = np.random.default_rng(0)
  y = rng.normal(size=(300, 1)).astype(np.float32)
  z = (y + rng.normal(size=y.shape)).astype(np.float32)
  noise = 0.3 * rng.normal(size=y.shape).astype(np.float32)

  @jax.jit
  def both(y, z, noise):
    reg = fit(y[100:], z[100:])
    k = partial(kernels.gaussian, sigma2=1.0)
    y, z, noise = y[:100], z[:100], noise[:100]
    return (kernels.circe(jnp.sin(2 * y) + noise, y, z, reg, kernel_x=k),
            kernels.circe(z + noise, y, z, reg, kernel_x=k))

  given_y, given_z = both(y, z, noise)
  assert abs(given_y) < 0.005 < 0.015 < given_z


# ------------------------------------------------- the subspace objectives
SUBSPACES, CLASSES = (2, 3), (2, 3)


def labelled_codes(n=30, seed=3):
  """Codes ``[n, 5]`` and labels ``[n, 2]`` with missing labels and a class
  of attribute 1 with fewer than 4 rows."""
  rng = np.random.default_rng(seed)
  labels = np.stack([rng.integers(0, 2, n), rng.integers(0, 2, n)], 1)
  labels[:3, 1] = 2  # class 2 of attribute 1: 3 rows, contributes 0
  labels[5::7, 0] = -1
  labels[4::9, 1] = -1
  z = rng.normal(size=(n, 5)) + labels[:, :1]  # z depends on s_0
  return z.astype(np.float32), labels.astype(np.int32)


def split(z, k):
  bounds = np.cumsum((0,) + SUBSPACES)
  own = z[:, bounds[k]:bounds[k + 1]]
  return own, np.delete(z, np.s_[bounds[k]:bounds[k + 1]], 1)


def one_hot(labels, attributes):
  return np.concatenate([np.eye(CLASSES[j])[labels[:, j]] for j in attributes],
                        1)


def test_hsic_cmi_loss_is_the_class_weighted_sum_of_hsics():
  z, labels = labelled_codes()
  k = partial(kernels.gaussian, sigma2=2.0)
  actual = jax.jit(lambda z, s: losses.hsic_cmi_loss(z, s, SUBSPACES, CLASSES,
                                                     k))(z, labels)
  expected = 0.0
  for a in range(2):
    own, rest = split(z, a)
    labelled = labels[:, a] >= 0
    for c in range(CLASSES[a]):
      rows = labels[:, a] == c
      if rows.sum() >= 4:
        expected += rows.sum() / labelled.sum() * ref.hsic_matrices(
            ref.gaussian_kernel(own[rows], sigma2=2.0),
            ref.gaussian_kernel(rest[rows], sigma2=2.0))
  assert_close(actual, expected, 'float32')


def test_hscic_and_circe_losses_use_the_labelled_rows_alone():
  z, labels = labelled_codes()
  k = partial(kernels.gaussian, sigma2=2.0)
  heldout = np.random.default_rng(5).integers(0, 2, (40, 2))
  regressions = losses.circe_regressions(heldout, CLASSES, ridge=0.1)

  @jax.jit
  def both(z, s):
    return (losses.hscic_loss(z, s, SUBSPACES, CLASSES, ridge=0.1, kernel=k),
            losses.circe_loss(z, s, regressions, SUBSPACES, CLASSES, k))

  hscic, circe = both(z, labels)
  expected_hscic = expected_circe = 0.0
  full = (labels >= 0).all(1)
  for a in range(2):
    own, rest = split(z, a)
    rows = labels[:, a] >= 0
    expected_hscic += ref.hscic(
        ref.gaussian_kernel(own[rows], sigma2=2.0),
        ref.gaussian_kernel(rest[rows], sigma2=2.0),
        ref.gaussian_kernel(one_hot(labels[rows], [a]), sigma2=1.0), 0.1)
    y_h, z_h = one_hot(heldout, [a]), one_hot(heldout, [1 - a])
    w1, w2 = ref.circe_regression(y_h, z_h, 0.1, 1.0, 1.0)
    expected_circe += ref.circe_estimate(
        own[full], one_hot(labels[full], [a]), one_hot(labels[full], [1 - a]),
        y_h, z_h, w1, w2, 2.0, 1.0, 1.0, False, True)
  assert_close(hscic, expected_hscic, 'float32')
  assert_close(circe, expected_circe, 'float32')


def test_kernel_objectives_see_conditional_dependence_only():
  """Codes that copy each attribute are conditionally independent given it
  (the measures stay near 0); codes sharing a nuisance are not."""
  rng = np.random.default_rng(0)
  n = 200
  labels = rng.integers(0, 2, (n, 2))
  labels[:, 1] = np.where(rng.random(n) < 0.8, labels[:, 0], labels[:, 1])
  noise = rng.normal(size=(n, 4))
  nuisance = rng.normal(size=(n, 1))
  clean = labels.repeat(2, 1) + 0.3 * noise
  shared = clean + np.concatenate([nuisance] * 4, 1)
  heldout = labels[::2]
  regressions = losses.circe_regressions(heldout, (2, 2), ridge=0.1)
  k = partial(kernels.gaussian, sigma2=2.0)

  @jax.jit
  def measures(z):
    return (losses.hsic_cmi_loss(z, labels, (2, 2), (2, 2), k),
            losses.hscic_loss(z, labels, (2, 2), (2, 2), ridge=0.1, kernel=k))

  for clean_value, shared_value in zip(measures(clean.astype(np.float32)),
                                       measures(shared.astype(np.float32))):
    assert abs(float(clean_value)) < 0.2 * float(shared_value)
  # CIRCE asks whether z_k carries s_-k beyond s_k: a code that copies the
  # other attribute does, one that copies its own does not.
  own = labels.repeat(2, 1) + 0.3 * noise
  other = labels[:, ::-1].repeat(2, 1) + 0.3 * noise
  circe = jax.jit(lambda z: losses.circe_loss(z, labels, regressions, (2, 2),
                                              (2, 2), k))
  assert abs(float(circe(own.astype(np.float32)))) < 0.2 * float(
      circe(other.astype(np.float32)))


def test_kernel_objectives_take_any_k_and_class_counts_with_missing_labels():
  """K = 3 attributes of 2, 3 and 4 classes, a third of each label missing:
  every term and its gradient are finite, and a term sees only the labelled
  rows (moving the codes of rows with no label leaves every term as it was)."""
  rng = np.random.default_rng(1)
  subspaces, classes, n = (2, 1, 3), (2, 3, 4), 24
  labels = np.stack([rng.integers(0, c, n) for c in classes], 1)
  labels[rng.random((n, 3)) < 0.3] = -1
  labels[:2] = -1  # two rows with no label at all
  z = rng.normal(size=(n, 6)).astype(np.float32)
  k = partial(kernels.gaussian, sigma2=1.5)
  regressions = losses.circe_regressions(
      np.stack([rng.integers(0, c, 60) for c in classes], 1), classes,
      ridge=0.1)
  terms = {
      'hsic_cmi': lambda z: losses.hsic_cmi_loss(z, labels, subspaces, classes,
                                                 k),
      'hscic': lambda z: losses.hscic_loss(z, labels, subspaces, classes,
                                           ridge=0.1, kernel=k),
      'circe': lambda z: losses.circe_loss(z, labels, regressions, subspaces,
                                           classes, k)}
  for name, term in terms.items():
    value, grad = jax.jit(jax.value_and_grad(term))(z)
    assert np.isfinite(float(value)) and np.all(np.isfinite(grad)), name
  # Rows with no label at all leave every term unchanged.
  moved = z.copy()
  moved[:2] += 3.0
  for name, term in terms.items():
    np.testing.assert_allclose(float(jax.jit(term)(moved)),
                               float(jax.jit(term)(z)), rtol=1e-5,
                               err_msg=name)


def test_circe_regression_chooses_ridge_and_bandwidth_by_leave_one_out():
  _, y, z = sample(M)
  k = partial(kernels.gaussian, sigma2=0.5)
  chosen = kernels.circe_loo_select(y, z, kernel_z=k)
  loo = kernels.circe_regression(y, z, kernel_z=k)
  explicit = kernels.circe_regression(
      y, z, kernel_z=k, ridge=chosen.ridge,
      kernel_y=partial(kernels.gaussian, sigma2=float(chosen.sigma2)))
  np.testing.assert_array_equal(loo.w1, explicit.w1)
  np.testing.assert_array_equal(loo.w2, explicit.w2)
  with pytest.raises(ValueError, match='both ridge and kernel_y, or neither'):
    kernels.circe_regression(y, z, kernel_z=k, ridge=0.1)


def test_solve_pos_gives_jaxs_values_and_gradients_one_matrix_at_a_time():
  # Batched LAPACK calls split over XLA's CPU thread pool; two at once
  # deadlocked a 10-member HSCIC sweep on 2 cores. Under vmap and grad every
  # Cholesky and triangular solve must see one matrix.
  rng = np.random.default_rng(0)
  a = rng.normal(size=(10, 6, 6)).astype(np.float32)
  matrices = a @ a.transpose(0, 2, 1) + 6 * np.eye(6, dtype=np.float32)
  rhs = rng.normal(size=(10, 6, 3)).astype(np.float32)
  weights = rng.normal(size=(10, 6, 3)).astype(np.float32)

  def loss(solve):
    return lambda m, b: jnp.sum(weights * jax.vmap(solve)(m, b))

  jax_solve = partial(jax.scipy.linalg.solve, assume_a='pos')
  np.testing.assert_allclose(loss(kernels.solve_pos)(matrices, rhs),
                             loss(jax_solve)(matrices, rhs), rtol=1e-6)
  for arg in (0, 1):
    np.testing.assert_allclose(
        jax.grad(loss(kernels.solve_pos), arg)(matrices, rhs),
        jax.grad(loss(jax_solve), arg)(matrices, rhs), rtol=1e-4, atol=1e-6)
  hlo = jax.jit(jax.grad(loss(kernels.solve_pos), (0, 1))).lower(
      matrices, rhs).as_text()
  calls = [line for line in hlo.splitlines() if 'lapack_' in line]
  assert calls and all('10x6x6' not in line for line in calls), calls


def two_kinds_of_the_same_labels(seed=0, per_class=6):
  """Int labels (-1 missing) and the same labels as floats (NaN missing).

  Both attributes are binary with ``per_class`` labelled rows of each class
  and 4 missing rows, so blocks of ``per_class`` rows of close values are
  exactly the classes.
  """
  rng = np.random.default_rng(seed)
  column = lambda: rng.permutation(np.r_[[0] * per_class, [1] * per_class,
                                         [-1] * 4])
  ints = np.stack([column(), column()], 1).astype(np.int32)
  floats = np.where(ints < 0, np.nan, ints).astype(np.float32)
  z = rng.normal(size=(len(ints), 4)).astype(np.float32)
  return jnp.asarray(z), jnp.asarray(ints), jnp.asarray(floats)


def test_kernel_losses_read_a_continuous_attribute_as_its_value():
  # On values 0 / 1 a Gaussian of bandwidth 1/2 equals ONE_HOT_KERNEL on the
  # one-hot codes (squared distance 1 against 2), and blocks of 6 rows equal
  # the classes: each loss must give the categorical value.
  z, ints, floats = two_kinds_of_the_same_labels()
  floats -= 5.0  # Negative values are labelled too; kernels and blocks shift.
  value_kernel = partial(kernels.gaussian, sigma2=0.5)
  pairs = [
      (losses.hscic_loss(z, ints, (2, 2), (2, 2), ridge=0.1),
       losses.hscic_loss(z, floats, (2, 2), (0, 0), ridge=0.1,
                         label_kernel=value_kernel)),
      (losses.hsic_cmi_loss(z, ints, (2, 2), (2, 2)),
       losses.hsic_cmi_loss(z, floats, (2, 2), (0, 0), block_size=6)),
      (losses.cmi_mmd_loss(jax.random.key(0), z, ints, (2, 2), (2, 2)),
       losses.cmi_mmd_loss(jax.random.key(0), z, floats, (2, 2), (0, 0),
                           block_size=6)),
  ]
  held = two_kinds_of_the_same_labels(seed=1)
  categorical = losses.circe_regressions(held[1], (2, 2), ridge=0.1)
  continuous = losses.circe_regressions(held[2] - 5.0, (0, 0), ridge=0.1,
                                        label_kernel=value_kernel)
  pairs.append((losses.circe_loss(z, ints, categorical, (2, 2), (2, 2)),
                losses.circe_loss(z, floats, continuous, (2, 2), (0, 0))))
  for want, got in pairs:
    assert float(want) != 0.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
