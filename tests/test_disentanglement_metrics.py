"""The disentanglement metrics on representations of known quality.

Ground truth: three independent factors with 4, 4 and 2 values, N = 600 rows.
Representations (codes [N, D]):
  identity   -- code i = factor i + N(0, 0.05^2) noise: perfectly disentangled;
  constant   -- all zeros: carries nothing;
  noise      -- N(0, 1), independent of the factors;
  rotated    -- identity with dims 0 and 1 rotated by 45 degrees, so each of
                them mixes factors 0 and 1;
  duplicated -- identity next to a second noisy copy of itself (D = 6).
Sampling metrics run with small vote counts and few trees (``FAST``); the
thresholds leave room for that sampling noise.
"""

import numpy as np
import pytest

from cmi_jax import metrics
from cmi_jax.metrics import _shared
from cmi_jax.metrics import dci as dci_lib

N = 600
CARDINALITIES = (4, 4, 2)
FAST = {
    'dci': {'n_estimators': 20},
    'factor_vae': {'num_train': 500, 'num_eval': 300, 'batch_size': 32},
    'beta_vae': {'num_train': 500, 'num_eval': 300, 'batch_size': 32},
}


def _factors(rng):
  return np.stack([rng.integers(0, v, N) for v in CARDINALITIES], axis=1)


def _representations():
  rng = np.random.default_rng(0)
  factors = _factors(rng)
  identity = factors + 0.05 * rng.normal(size=factors.shape)
  rotated = identity.copy()
  c = np.cos(np.pi / 4)
  rotated[:, 0] = c * (identity[:, 0] + identity[:, 1])
  rotated[:, 1] = c * (identity[:, 0] - identity[:, 1])
  duplicated = np.hstack(
      [identity, factors + 0.05 * rng.normal(size=factors.shape)])
  codes = {
      'identity': identity,
      'constant': np.zeros((N, 3)),
      'noise': rng.normal(size=(N, 3)),
      'rotated': rotated,
      'duplicated': duplicated,
  }
  return factors, codes


@pytest.fixture(scope='module')
def scores():
  """``compute_all`` of every representation."""
  factors, codes = _representations()
  return {name: metrics.compute_all(c, factors, seed=0, options=FAST)
          for name, c in codes.items()}


def _chance_sap():
  # Scale-free SAP of a perfect one-dimension-per-factor code: best dim has
  # balanced accuracy 1, the runner-up is at chance 1/V_j, so
  # SAP = mean_j (1 - 1/V_j).
  return np.mean([1 - 1 / v for v in CARDINALITIES])



def test_identity_scores_near_top(scores):
  s = scores['identity']
  for key in ('dci/disentanglement', 'dci/completeness', 'mig/mig',
              'sap/sap', 'irs/irs', 'factor_vae/eval_accuracy',
              'beta_vae/eval_accuracy'):
    assert 0.0 <= s[key] <= 1.0 + 1e-12, key  # bounded scores stay bounded
  for key in ('dci/disentanglement', 'dci/completeness',
              'dci/informativeness_test', 'mig/mig',
              'factor_vae/eval_accuracy', 'beta_vae/eval_accuracy'):
    assert s[key] > 0.9, key
  assert s['irs/irs'] > 0.85  # 1 - q99(|noise|) / max deviation ~ 0.9
  assert s['sap_scale_free/sap'] == pytest.approx(_chance_sap(), abs=0.1)
  # dlib's C = 0.01 cannot isolate the middle values of a 4-valued factor
  # from one feature, so its SAP of the same code is lower, yet well above 0.
  assert 0.3 < s['sap/sap'] < s['sap_scale_free/sap']
  # Independent factors -> nearly uncorrelated codes.
  assert s['total_correlation/gaussian_total_correlation'] < 0.05
  assert s['wasserstein/gaussian_wasserstein_correlation_norm'] < 0.05


def test_constant_scores_zero_or_chance(scores):
  s = scores['constant']
  for key in ('dci/disentanglement', 'dci/completeness', 'mig/mig', 'sap/sap',
              'irs/irs', 'factor_vae/eval_accuracy',
              'total_correlation/gaussian_total_correlation',
              'wasserstein/gaussian_wasserstein_correlation'):
    assert s[key] == 0.0, key
  # A classifier with nothing to read can only guess: <= majority / chance.
  assert s['beta_vae/eval_accuracy'] < 0.5
  assert s['dci/informativeness_test'] < 0.6


def test_noise_scores_near_zero_or_chance(scores):
  s = scores['noise']
  for key in ('dci/disentanglement', 'dci/completeness'):
    assert s[key] < 0.2, key
  assert s['mig/mig'] < 0.05
  assert s['sap/sap'] < 0.1
  # IRS rates robustness only: noise scores 1 - q99/max ~ 0.2, far below 0.9.
  assert s['irs/irs'] < 0.4
  for key in ('factor_vae/eval_accuracy', 'beta_vae/eval_accuracy'):
    assert s[key] < 0.55, key  # chance is 1/3 (three factors)
  assert s['dci/informativeness_test'] < 0.6



def test_rotation_is_penalised(scores):
  ident, rot = scores['identity'], scores['rotated']
  assert rot['mig/mig'] < ident['mig/mig'] - 0.3
  assert rot['dci/disentanglement'] < ident['dci/disentanglement'] - 0.2
  assert rot['sap/sap'] < ident['sap/sap'] - 0.2
  # The rotated code is as informative as the identity: only how the
  # information is spread over dimensions changed.
  assert rot['dci/informativeness_test'] > 0.9
  # Factors 0 and 1 have equal variance, so the 45-degree mix of them is
  # uncorrelated: the Gaussian total correlation cannot see the rotation.
  assert rot['total_correlation/gaussian_total_correlation'] < 0.05


def test_duplicated_representation(scores):
  dup = scores['duplicated']
  # Each code still explains one factor...
  assert dup['dci/disentanglement'] > 0.9
  assert dup['factor_vae/eval_accuracy'] > 0.9
  assert dup['beta_vae/eval_accuracy'] > 0.9
  assert dup['irs/irs'] > 0.85
  # ...but each factor is spread over two codes: the gap metrics collapse and
  # completeness drops towards 1 - log_6(2) ~ 0.61 (an even split).
  assert dup['mig/mig'] < 0.05
  assert dup['sap/sap'] < 0.1
  assert dup['dci/completeness'] < 0.8
  # Two near-copies are strongly correlated: large Gaussian total correlation.
  assert dup['total_correlation/gaussian_total_correlation'] > 2.0



def test_mig_hand_computed():
  # One factor s = [0, 0, 1, 1], H(s) = log 2. With num_bins = 2 the codes
  # below bin to themselves (min 0, max 1):
  #   z0 = [0, 0, 0, 1]: p(z0=0) = 3/4, and given z0 = 0, s is 0 w.p. 2/3, so
  #        H(s | z0) = 3/4 * (log 3 - 2/3 log 2) and
  #        I(z0; s) = log 2 - 3/4 log 3 + 1/2 log 2 = 3/2 log 2 - 3/4 log 3;
  #   z1 = [0, 1, 0, 1]: independent of s, I = 0;
  #   z2 = [0, 0, 1, 1] = s: I = log 2.
  # MIG = (log 2 - (3/2 log 2 - 3/4 log 3)) / log 2 = 3/4 log2(3) - 1/2.
  codes = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], float)
  factors = np.array([[0], [0], [1], [1]])
  expected = 0.75 * np.log2(3) - 0.5
  assert metrics.compute_mig(codes, factors, num_bins=2)['mig'] == (
      pytest.approx(expected, abs=1e-12))


def test_mig_hand_computed_normalises_by_factor_entropy():
  # s = [0, 0, 1, 2]: H(s) = -(1/2 log 1/2 + 2 * 1/4 log 1/4) = 3/2 log 2.
  # z0 = s (3 bins of width 2/3 keep 0, 1, 2 apart): I(z0; s) = H(s).
  # z1 = [0, 0, 1, 1] is a function of s with H(z1) = log 2: I(z1; s) = log 2.
  # MIG = (3/2 log 2 - log 2) / (3/2 log 2) = 1/3. Dividing by log 2 would
  # give 1/2 and by log |values| = log 3 would give log(2) / (2 log 3) ~ 0.32.
  codes = np.array([[0, 0], [0, 0], [1, 1], [2, 1]], float)
  factors = np.array([[0], [0], [1], [2]])
  assert metrics.compute_mig(codes, factors, num_bins=3)['mig'] == (
      pytest.approx(1 / 3, abs=1e-12))


def test_dci_importance_matrix_hand_computed():
  # R = [[.5, .5], [1, 0]]: code 0 is split evenly (D_0 = 0), code 1 is pure
  # (D_1 = 1), code weights (1, 1) / 2 -> D = 0.5. Factor 0 column (.5, 1)
  # normalises to (1/3, 2/3): C_0 = 1 - H_2 = 1 - (log2 3 - 2/3) = 5/3 - log2 3;
  # factor 1 column (.5, 0) is pure: C_1 = 1. Factor weights (1.5, .5) / 2.
  d, c = dci_lib.disentanglement_completeness(np.array([[0.5, 0.5],
                                                         [1.0, 0.0]]))
  assert d == pytest.approx(0.5, abs=1e-12)
  assert c == pytest.approx(0.75 * (5 / 3 - np.log2(3)) + 0.25, abs=1e-12)
  # An identity matrix is perfect; an all-zero one (nothing used) scores 0.
  assert dci_lib.disentanglement_completeness(np.eye(3)) == pytest.approx(
      (1.0, 1.0))
  assert dci_lib.disentanglement_completeness(np.zeros((3, 2))) == (0.0, 0.0)


def test_irs_hand_computed():
  # s = [0, 0, 1, 1], z = [0, .2, 1, 1.2]. Within each group z deviates 0.1
  # from the group mean, so EMPIDA = 0.1 (supremum, diff_quantile = 1). z's
  # overall mean is 0.6, its largest deviation 0.6: IRS = 1 - 0.1/0.6 = 5/6.
  codes = np.array([[0.0], [0.2], [1.0], [1.2]])
  factors = np.array([[0], [0], [1], [1]])
  irs = metrics.compute_irs(codes, factors, diff_quantile=1.0)['irs']
  assert irs == pytest.approx(5 / 6, abs=1e-12)
  # Add z1 = [0, 3, 0, 3], unrelated to s: within each group it deviates 1.5
  # from the group mean, as much as its largest overall deviation M_1 = 1.5,
  # so IRS_1 = 0. Weighted by M: (0.6 * 5/6 + 1.5 * 0) / (0.6 + 1.5) = 5/21.
  codes = np.hstack([codes, [[0.0], [3.0], [0.0], [3.0]]])
  irs = metrics.compute_irs(codes, factors, diff_quantile=1.0)['irs']
  assert irs == pytest.approx(5 / 21, abs=1e-12)


def test_total_correlation_bivariate_closed_form():
  # For two dimensions TC = -0.5 log(1 - r^2), r the (sample) correlation:
  # det Sigma = s1^2 s2^2 (1 - r^2).
  rng = np.random.default_rng(1)
  codes = rng.multivariate_normal([0, 0], [[2.0, 1.2], [1.2, 1.0]], size=500)
  r = np.corrcoef(codes, rowvar=False)[0, 1]
  tc = metrics.compute_total_correlation(codes)['gaussian_total_correlation']
  assert tc == pytest.approx(-0.5 * np.log(1 - r**2), rel=1e-10)


def test_wasserstein_bivariate_closed_form():
  # Sigma = [[a, c], [c, b]], Delta = diag(a, b). M = Delta^1/2 Sigma Delta^1/2
  # = [[a^2, c sqrt(ab)], [c sqrt(ab), b^2]]; for a 2x2 PSD matrix
  # tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)), det M = ab (ab - c^2). Hence
  # W2^2 = 2 (a + b) - 2 sqrt(a^2 + b^2 + 2 sqrt(ab (ab - c^2))).
  a, b, c = 2.0, 0.5, 0.8
  expected = 2 * (a + b) - 2 * np.sqrt(a**2 + b**2 + 2 * np.sqrt(
      a * b * (a * b - c**2)))
  value = metrics.gaussian_wasserstein_correlation(np.array([[a, c], [c, b]]))
  assert value == pytest.approx(expected, rel=1e-10)
  assert metrics.gaussian_wasserstein_correlation(np.diag([a, b])) == (
      pytest.approx(0.0, abs=1e-12))


def test_same_value_sampler_respects_groups():
  rng = np.random.default_rng(2)
  dense = np.stack([rng.integers(0, 3, 50), rng.integers(0, 5, 50)], axis=1)
  dense[0, 1] = 5  # a value held by one row only: never an anchor
  sampler = _shared.SameValueSampler(dense)
  factor = rng.integers(0, 2, 1000)
  anchors = sampler.draw_anchors(factor, rng)
  partners = sampler.draw(factor, anchors, rng)
  assert np.all(dense[partners, factor] == dense[anchors, factor])
  assert not np.any((anchors == 0) & (factor == 1))



def test_compute_all_matches_direct_calls(scores):
  factors, codes = _representations()
  direct = metrics.compute_sap(codes['identity'], factors, seed=0)
  assert scores['identity']['sap/sap'] == direct['sap']
  direct = metrics.compute_factor_vae(codes['identity'], factors, seed=0,
                                      **FAST['factor_vae'])
  assert scores['identity']['factor_vae/eval_accuracy'] == (
      direct['eval_accuracy'])
  assert {k.split('/')[0] for k in scores['identity']} == set(
      metrics.METRIC_NAMES)


def test_seeded_metrics_are_deterministic():
  factors, codes = _representations()
  run = lambda seed: metrics.compute_beta_vae(
      codes['rotated'], factors, seed=seed, **FAST['beta_vae'])
  assert run(3) == run(3)


_GOOD_CODES = np.random.default_rng(3).normal(size=(40, 3))
_GOOD_FACTORS = np.random.default_rng(4).integers(0, 2, (40, 2))
_SUPERVISED = [metrics.compute_dci, metrics.compute_mig, metrics.compute_sap,
               metrics.compute_irs, metrics.compute_factor_vae,
               metrics.compute_beta_vae]


@pytest.mark.parametrize('fn', _SUPERVISED, ids=lambda f: f.__name__)
@pytest.mark.parametrize('codes, factors, match', [
    (_GOOD_CODES[:39], _GOOD_FACTORS, 'same number of rows'),
    (np.where(np.eye(40, 3) > 0, np.nan, _GOOD_CODES), _GOOD_FACTORS,
     'NaN or inf'),
    (_GOOD_CODES, np.stack([_GOOD_FACTORS[:, 0], np.full(40, 7)], axis=1),
     'single value'),
    (_GOOD_CODES, _GOOD_FACTORS - 1, 'negative labels'),
    (_GOOD_CODES, _GOOD_FACTORS + 0.5, 'integer class labels'),
    (_GOOD_CODES[:, 0], _GOOD_FACTORS, r'2-D array \[N, D\]'),
])
def test_bad_inputs_raise(fn, codes, factors, match):
  with pytest.raises(ValueError, match=match):
    fn(codes, factors)


@pytest.mark.parametrize('fn', [metrics.compute_total_correlation,
                                metrics.compute_wasserstein_correlation],
                         ids=lambda f: f.__name__)
def test_unsupervised_bad_inputs_raise(fn):
  with pytest.raises(ValueError, match='NaN or inf'):
    fn(np.full((10, 2), np.inf))
  with pytest.raises(ValueError, match='at least 2 rows'):
    fn(np.zeros((1, 2)))


@pytest.mark.parametrize('call, match', [
    (lambda: metrics.compute_mig(_GOOD_CODES[:, :1], _GOOD_FACTORS),
     'D >= 2'),
    (lambda: metrics.compute_dci(_GOOD_CODES, _GOOD_FACTORS, model='svm'),
     'model must be one of'),
    (lambda: metrics.compute_sap(_GOOD_CODES, _GOOD_FACTORS,
                                 test_fraction=1.0), 'test_fraction'),
    (lambda: metrics.compute_irs(_GOOD_CODES, _GOOD_FACTORS,
                                 diff_quantile=0.0), 'diff_quantile'),
    (lambda: metrics.compute_factor_vae(_GOOD_CODES, _GOOD_FACTORS,
                                        batch_size=1), 'batch_size'),
    (lambda: metrics.compute_all(_GOOD_CODES, _GOOD_FACTORS,
                                 options={'migg': {}}), 'unknown metrics'),
])
def test_bad_options_raise(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_dlib_defaults_move_with_the_code_scale_and_scale_free_ones_do_not():
  # disentanglement_lib's SAP (C = 0.01 on raw codes) depends on the scale of
  # the code; the scale-free variants give the same score for codes x 0.01.
  factors, codes = _representations()
  big, small = codes['identity'], codes['identity'] * 0.01
  dlib_big = metrics.compute_sap(big, factors, seed=0)['sap']
  dlib_small = metrics.compute_sap(small, factors, seed=0)['sap']
  assert dlib_small < dlib_big - 0.2
  free = [metrics.compute_sap(c, factors, seed=0, variant='scale_free')['sap']
          for c in (big, small)]
  assert free[0] == pytest.approx(free[1], abs=1e-9)
  beta = [metrics.compute_beta_vae(c, factors, seed=0, variant='scale_free',
                                   **FAST['beta_vae'])
          for c in (codes['rotated'], codes['rotated'] * 0.01)]
  assert beta[0] == beta[1]
  with pytest.raises(ValueError, match='variant must be one of'):
    metrics.compute_sap(big, factors, variant='dlb')
