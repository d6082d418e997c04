"""The closed-form linear-Gaussian regression theory (Table 1, Figures 2, 3)."""

import os

import numpy as np
import pytest
import scipy.stats

from cmi_jax.toy import learned_regression
from cmi_jax.toy import linear_regression as lr
from experiments import toy_linear_regression as experiment
import tiny

_MC_SAMPLES = 10**6
_MC_ATOL = 1e-2


def _monte_carlo_mse(setting, predictors, seed):
  """Per-attribute empirical MSE ``[K]`` of each ``s_hat = M x`` on one sample."""
  s, x = lr.sample(setting, _MC_SAMPLES, np.random.default_rng(seed))
  return [np.mean((s - x @ m.T) ** 2, axis=0) for m in predictors]


@pytest.mark.parametrize('num_attributes', [2, 3])
def test_closed_form_mse_matches_monte_carlo(num_attributes):
  train = lr.make_setting(0.8, 0.1, num_attributes)
  test = lr.make_setting(0.0, 0.1, num_attributes)
  models = lr.fit_models(train)
  for seed, setting in enumerate((train, test)):
    empirical = _monte_carlo_mse(
        setting, [m.predictor for m in models.values()], seed)
    for (name, solution), mc in zip(models.items(), empirical):
      exact = lr.mse(setting, solution, per_attribute=True)
      np.testing.assert_allclose(
          exact, mc, atol=_MC_ATOL,
          err_msg=f'{name} at c={setting.attribute_cov[0, 1]}')
      # The paper's unit: summed over attributes.
      assert lr.mse(setting, solution) == pytest.approx(exact.sum())


def test_closed_form_mse_general_mixing_matches_monte_carlo():
  # A random full-row-rank A (D = 3 inputs from 2 attributes + 2 noises)
  # checks the general covariance algebra, not only x = s + eps.
  mixing = np.random.default_rng(3).normal(size=(3, 4))
  setting = lr.make_setting(0.5, 0.3, 2, mixing)
  solutions = [lr.optimal_regression(setting), lr.mi0_solution(setting)]
  empirical = _monte_carlo_mse(setting, [m.predictor for m in solutions], 7)
  for solution, mc in zip(solutions, empirical):
    np.testing.assert_allclose(lr.mse(setting, solution, per_attribute=True),
                               mc, atol=_MC_ATOL)


def test_fitted_readouts_match_least_squares_on_samples():
  setting = lr.make_setting(0.8, 0.1)
  s, x = lr.sample(setting, _MC_SAMPLES, np.random.default_rng(11))
  full, *_ = np.linalg.lstsq(x, s, rcond=None)
  np.testing.assert_allclose(lr.optimal_regression(setting).predictor, full.T,
                             atol=_MC_ATOL)
  encoder = lr.mi0_solution(setting).encoder
  z = x @ encoder.T
  empirical = np.sum(z * s, axis=0) / np.sum(z * z, axis=0)
  np.testing.assert_allclose(lr.split_readout(setting, encoder), empirical,
                             atol=_MC_ATOL)


@pytest.mark.parametrize('corr', [0.0, 0.5, 0.8, -0.3])
@pytest.mark.parametrize('noise_var', [0.0, 0.1, 2.0])
def test_table_matches_eigen_decomposition(corr, noise_var):
  # Independent derivation for K = 2: along the eigenvectors (1, +-1)/sqrt(2)
  # of Sigma_s the problem splits into scalar regressions with signal
  # variance 1 +- c and noise variance sigma^2, each with MSE
  # lambda sigma^2 / (lambda + sigma^2); CMI=0 and the reference regress
  # s_k on s_k + eps_k, MSE sigma^2 / (1 + sigma^2) per attribute. The
  # table's MSE sums the two attributes (the paper's unit).
  table = lr.table1(train_corr=corr, noise_var=noise_var)
  eig = np.array([1 + corr, 1 - corr])
  assert table['regression']['train_mse'] == pytest.approx(
      np.sum(eig * noise_var / (eig + noise_var)), abs=1e-12)
  for name in ('cmi0', 'reference'):
    for metric in ('train_mse', 'test_mse'):
      assert table[name][metric] == pytest.approx(
          2 * noise_var / (1 + noise_var), abs=1e-12)
      assert table[name][metric + '_mean'] == pytest.approx(
          noise_var / (1 + noise_var), abs=1e-12)
  for row in table.values():
    # Unit attribute variances: VE = 1 - MSE / K.
    assert row['train_ve'] == pytest.approx(1 - row['train_mse'] / 2,
                                            abs=1e-12)
    assert row['test_ve'] == pytest.approx(1 - row['test_mse_mean'],
                                           abs=1e-12)


def test_table1_keys_and_ordering_of_models():
  table = lr.table1(train_corr=0.8, noise_var=0.1, test_corr=0.0)
  assert set(table) == {'regression', 'mi0', 'cmi0', 'reference'}
  for row in table.values():
    assert set(row) == set(lr.METRICS)
    assert all(isinstance(v, float) and np.isfinite(v) for v in row.values())
  # Regression exploits the correlation: best on train, worse than CMI=0 at
  # test; MI=0 throws away signal and is worst on both.
  assert table['regression']['train_mse'] < table['cmi0']['train_mse']
  assert table['regression']['test_mse'] > table['cmi0']['test_mse']
  assert table['mi0']['train_mse'] > table['cmi0']['train_mse']
  assert table['mi0']['test_mse'] > table['regression']['test_mse']


@pytest.mark.parametrize('num_attributes', [2, 3])
def test_mi0_latents_are_uncorrelated(num_attributes):
  setting = lr.make_setting(0.8, 0.1, num_attributes)
  solution = lr.mi0_solution(setting)
  cov = lr.latent_covariance(setting, solution.encoder)
  off_diagonal = cov - np.diag(np.diag(cov))
  assert np.abs(off_diagonal).max() < 1e-8
  np.testing.assert_allclose(
      lr.subspace_mutual_information(setting, solution.encoder), 0, atol=1e-10)
  # ...but MI=0 is not CMI=0: given s the latents are dependent.
  cond = lr.conditional_latent_covariance(setting, solution.encoder)
  assert np.abs(cond - np.diag(np.diag(cond))).max() > 1e-3


def _haar_split_mse(setting, num_rotations, seed):
  """Split training MSE of whitening encoders with Haar-random rotations."""
  rotations = scipy.stats.special_ortho_group.rvs(
      setting.input_dim, size=num_rotations, random_state=seed)
  encoders = rotations[:, :setting.num_attributes] @ lr.whitening(setting)
  return np.array([lr.mse(setting, lr.split_solution(setting, w))
                   for w in encoders])


def _asymmetric_settings():
  """Settings where the symmetric whitening Cov(x)^{-1/2} is not optimal.

  (For equicorrelated attributes and x = s + eps, symmetry makes Q = I the
  best rotation: a search that never moved would pass there.)
  """
  cov3 = np.array([[1.0, 0.5, 0.2], [0.5, 1.5, -0.3], [0.2, -0.3, 0.8]])
  return {
      'unequal_variances': lr.LinearGaussianSetting(
          np.array([[1.0, 0.7], [0.7, 2.0]]), 0.1),
      'general_mixing_d3': lr.make_setting(
          0.6, 0.2, 2, np.random.default_rng(3).normal(size=(3, 4))),
      'general_cov_k3': lr.LinearGaussianSetting(cov3, 0.2),
  }


@pytest.mark.parametrize('name', sorted(_asymmetric_settings()))
def test_mi0_rotation_search_improves_on_symmetric_whitening(name):
  setting = _asymmetric_settings()[name]
  k = setting.num_attributes
  symmetric = lr.split_solution(
      setting, np.eye(setting.input_dim)[:k] @ lr.whitening(setting))
  solution = lr.mi0_solution(setting)
  assert lr.mse(setting, solution) < lr.mse(setting, symmetric) - 1e-4
  cov = lr.latent_covariance(setting, solution.encoder)
  assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-8


@pytest.mark.parametrize('case', ['k2_c0.8', 'k2_c-0.5', 'k3_c0.8', 'k3_c0.3',
                                  *sorted(_asymmetric_settings())])
def test_mi0_rotation_search_beats_random_rotations(case):
  if case.startswith('k'):
    num_attributes, corr = int(case[1]), float(case.split('_c')[1])
    setting = lr.make_setting(corr, 0.1, num_attributes)
  else:
    setting = _asymmetric_settings()[case]
  found = lr.mse(setting, lr.mi0_solution(setting))
  assert found <= _haar_split_mse(setting, 2000, seed=5).min() + 1e-12


@pytest.mark.parametrize('name', ['equicorrelated', 'unequal_variances'])
def test_mi0_angle_search_is_the_best_angle_for_two_attributes(name):
  setting = (lr.make_setting(0.8, 0.1) if name == 'equicorrelated'
             else _asymmetric_settings()[name])
  whiten = lr.whitening(setting)
  angles = np.linspace(0, np.pi, 4001)
  cos, sin = np.cos(angles), np.sin(angles)
  dense = min(
      lr.mse(setting, lr.split_solution(setting, np.array([[c, -s], [s, c]]) @ whiten))
      for c, s in zip(cos, sin))
  found = lr.mse(setting, lr.mi0_solution(setting))
  assert found <= dense + 1e-12
  assert found == pytest.approx(dense, abs=1e-5)


def test_cmi0_latents_are_independent_given_attributes():
  for num_attributes in (2, 3):
    setting = lr.make_setting(0.8, 0.1, num_attributes)
    encoder = lr.cmi0_solution(setting).encoder
    for given in (None, *([k] for k in range(num_attributes))):
      cov = lr.conditional_latent_covariance(setting, encoder, given=given)
      ks = range(num_attributes) if given is None else given
      for k in ks:
        # z_k is uncorrelated (hence, Gaussian, independent) of z_-k given s_G.
        others = [j for j in range(num_attributes) if j != k]
        np.testing.assert_allclose(cov[k, others], 0, atol=1e-12)
    np.testing.assert_allclose(
        lr.subspace_mutual_information(setting, encoder, given=None), 0,
        atol=1e-12)
    # Unconditionally the latents share the attribute correlation.
    assert np.all(lr.subspace_mutual_information(setting, encoder) > 0.1)


def test_cmi0_rejects_mixing_that_couples_the_noise():
  mixing = np.concatenate([np.eye(2), [[1.0, 0.5], [0.0, 1.0]]], axis=1)
  setting = lr.make_setting(0.8, 0.1, 2, mixing)
  with pytest.raises(ValueError, match='not independent given s'):
    lr.cmi0_solution(setting)


@pytest.mark.parametrize('num_attributes', [2, 3])
def test_cmi0_is_invariant_to_correlation_shift(num_attributes):
  train = lr.make_setting(0.8, 0.1, num_attributes)
  cmi0 = lr.cmi0_solution(train)
  regression = lr.optimal_regression(train)
  train_mse = lr.mse(train, cmi0)
  for test_corr in (0.0, 0.3, 0.95, -0.4):
    if num_attributes == 3 and test_corr <= -0.5:
      continue
    test = lr.make_setting(test_corr, 0.1, num_attributes)
    assert lr.mse(test, cmi0) == pytest.approx(train_mse, abs=1e-12)
  table = lr.table1(0.8, 0.1, 0.0, num_attributes)
  assert table['cmi0']['test_mse'] == pytest.approx(table['cmi0']['train_mse'],
                                                    abs=1e-12)
  assert table['regression']['test_mse'] > table['regression']['train_mse'] + 0.02
  test = lr.make_setting(0.0, 0.1, num_attributes)
  assert lr.mse(test, regression) > lr.mse(train, regression) + 0.02


def test_three_attributes_table_and_sweep():
  table = lr.table1(num_attributes=3)
  assert table['cmi0']['test_mse'] == pytest.approx(3 * 0.1 / 1.1, abs=1e-12)
  assert table['regression']['train_mse'] < table['cmi0']['train_mse']
  sweep = lr.noise_correlation_sweep([0.1, 1.0], [0.0, 0.6], num_attributes=3,
                                     num_restarts=3)
  for split in ('train_mse', 'test_mse'):
    for name in lr.MODELS:
      assert sweep[split][name].shape == (2, 2)
      assert np.all(np.isfinite(sweep[split][name]))


def test_sweep_structure():
  noise_vars, corrs = [0.01, 0.1, 1.0], [0.0, 0.5, 0.9]
  sweep = lr.noise_correlation_sweep(noise_vars, corrs, test_corr=0.0)
  test = sweep['test_mse']
  # CMI=0 and the reference do not depend on the training correlation and
  # coincide for x = s + eps.
  for name in ('cmi0', 'reference'):
    np.testing.assert_allclose(test[name], test[name][:, :1].repeat(3, 1),
                               atol=1e-12)
  np.testing.assert_allclose(test['cmi0'], test['reference'], atol=1e-12)
  # Without correlation all four models agree; with it regression degrades.
  for name in ('regression', 'mi0'):
    np.testing.assert_allclose(test[name][:, 0], test['reference'][:, 0],
                               atol=1e-9)
    assert np.all(np.diff(test[name], axis=1) > 0)


def test_prediction_scatter_is_seeded_and_shaped():
  a = lr.prediction_scatter(num_samples=50, seed=4)
  b = lr.prediction_scatter(num_samples=50, seed=4)
  c = lr.prediction_scatter(num_samples=50, seed=5)
  for split in ('train', 'test'):
    for key in ('s', 'x', 'regression', 'mi0', 'cmi0'):
      assert a[split][key].shape == (50, 2)
      np.testing.assert_array_equal(a[split][key], b[split][key])
    assert not np.allclose(a[split]['s'], c[split]['s'])
  assert a['train']['corr'] == 0.8 and a['test']['corr'] == 0.0


@pytest.mark.parametrize('corr', [1.0, -1.0, 1.5, float('nan')])
def test_rejects_correlation_outside_unit_interval(corr):
  with pytest.raises(ValueError, match=r'\|c\| < 1'):
    lr.make_setting(corr, 0.1)


def test_rejects_non_positive_definite_attribute_covariance():
  with pytest.raises(ValueError, match=r'c > -1/\(K-1\) = -0.5'):
    lr.attribute_covariance(-0.6, 3)
  with pytest.raises(ValueError, match='attribute_cov Sigma_s is not positive'):
    lr.LinearGaussianSetting(np.array([[1.0, 2.0], [2.0, 1.0]]), 0.1)
  with pytest.raises(ValueError, match='finite, symmetric'):
    lr.LinearGaussianSetting(np.array([[1.0, 0.5], [0.2, 1.0]]), 0.1)
  with pytest.raises(ValueError, match=r'symmetric \[K, K\].*\(2, 3\)'):
    lr.LinearGaussianSetting(np.ones((2, 3)), 0.1)


@pytest.mark.parametrize('noise_var', [-0.1, -1e-12, float('inf')])
def test_rejects_negative_noise(noise_var):
  with pytest.raises(ValueError, match='noise_var'):
    lr.make_setting(0.5, noise_var)


def test_rejects_bad_shapes_and_counts():
  setting = lr.make_setting(0.5, 0.1)
  with pytest.raises(ValueError, match='num_attributes'):
    lr.make_setting(0.5, 0.1, num_attributes=1)
  with pytest.raises(ValueError, match='num_attributes'):
    lr.make_setting(0.5, 0.1, num_attributes=2.5)
  with pytest.raises(ValueError, match=r'shape must be \[D, 4\]'):
    lr.make_setting(0.5, 0.1, mixing=np.eye(2))
  with pytest.raises(ValueError, match='Cov\\(x\\).*not positive definite'):
    lr.make_setting(0.5, 0.1, mixing=np.ones((2, 4)))
  with pytest.raises(ValueError, match=r'\[K, D\]'):
    lr.mse(setting, np.eye(3))
  with pytest.raises(ValueError, match='encoder W'):
    lr.split_readout(setting, np.eye(3))
  with pytest.raises(ValueError, match='zero variance'):
    lr.split_readout(setting, np.array([[1.0, 0.0], [0.0, 0.0]]))
  with pytest.raises(ValueError, match='attribute indices'):
    lr.conditional_latent_covariance(setting, np.eye(2), given=[2])
  with pytest.raises(ValueError, match='non-empty 1-D'):
    lr.noise_correlation_sweep([], [0.5])


def test_experiment_runs_end_to_end(tmp_path):
  workdir = str(tmp_path / 'out')
  result = experiment.run(workdir, grid_num_noise=3, grid_num_corr=3,
                          num_scatter_samples=200, seed=1)
  table = tiny.read_json(workdir, 'table1.json')
  assert set(table) == {'regression', 'mi0', 'cmi0', 'reference'}
  expected = lr.table1(0.8, 0.1, 0.0, 2)
  for name, row in table.items():
    assert set(row) == set(lr.METRICS)
    assert row == pytest.approx(expected[name], abs=1e-12)
  assert result['table1'] == table
  for name in ('figure2.png', 'figure3.png'):
    with open(os.path.join(workdir, name), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  saved = tiny.read_json(workdir, 'config.json')
  assert saved['grid_num_noise'] == 3 and saved['seed'] == 1
  assert saved['num_restarts'] == 1
  # Atomic writes leave no temporary files behind.
  assert sorted(os.listdir(workdir)) == ['config.json', 'figure2.png',
                                         'figure3.png', 'table1.json']


def test_experiment_run_three_attributes(tmp_path):
  result = experiment.run(str(tmp_path), num_attributes=3, grid_num_noise=2,
                          grid_num_corr=2, num_scatter_samples=50,
                          num_restarts=2)
  assert result['table1']['cmi0']['test_mse'] == pytest.approx(3 * 0.1 / 1.1)
  assert all(os.path.getsize(p) > 0 for p in result['files'].values())


def test_experiment_rejects_bad_settings(tmp_path):
  with pytest.raises(ValueError, match='workdir'):
    experiment.run('')
  with pytest.raises(ValueError, match='train_corr must be a float'):
    experiment.run(str(tmp_path), train_corr='abc')
  with pytest.raises(ValueError, match='no_such is not a setting'):
    experiment.run(str(tmp_path), no_such=1)
  with pytest.raises(ValueError, match=r'train_corr must satisfy \|c\| < 1'):
    experiment.run(str(tmp_path), train_corr=1.0)
  with pytest.raises(ValueError, match=r'test_corr must .*-1/\(K-1\).*-0.6'):
    experiment.run(str(tmp_path), test_corr=-0.6, num_attributes=3)
  with pytest.raises(ValueError, match='noise_var'):
    experiment.run(str(tmp_path), noise_var=-1.0)
  with pytest.raises(ValueError, match='grid_num_noise'):
    experiment.run(str(tmp_path), grid_num_noise=1)
  assert os.listdir(tmp_path) == []  # nothing written


def test_learned_cmi_closes_the_gap_that_base_leaves_under_shift():
  # Table 1 by gradient descent, small: one seed, N = 2,000 a split, 1,500
  # steps. Base learns the full regression (closed form 0.1614 train, 0.2481
  # test); the continuous-attribute CMI loss moves it towards CMI = 0
  # (0.1818 on both), trading training error for test error.
  rows = learned_regression.table_rows(['base', 'cmi'], [0.0, 1.0], [0],
                                       num_samples=2000, steps=1500)
  got = {(r['objective'], r['lambda']): r for r in rows}
  base, cmi = got[('base', 1.0)], got[('cmi', 1.0)]
  assert abs(base['train_mse'] - 0.1614) < 0.02, base
  assert base['test_mse'] > base['train_mse'] + 0.05, base
  assert cmi['test_mse'] < base['test_mse'] - 0.02, (cmi, base)
  # lambda = 0 is Base, whatever the objective.
  np.testing.assert_allclose(got[('cmi', 0.0)]['test_mse'],
                             got[('base', 0.0)]['test_mse'], rtol=1e-5)


def test_learned_summary_takes_the_largest_stable_lambda():
  rows = [{'objective': 'cmi', 'lambda': w, 'seed': s, 'train_mse': train,
           'test_mse': test}
          for w, s, train, test in ((0.0, 0, 0.16, 0.25), (0.0, 1, 0.17, 0.26),
                                    (1.0, 0, 0.18, 0.20), (1.0, 1, 0.19, 0.21),
                                    (3.0, 0, 0.30, 0.31), (3.0, 1, 0.90, 0.8),
                                    (10.0, 0, np.nan, np.nan),
                                    (10.0, 1, 0.5, 0.5))]
  summary = learned_regression.summarize(rows, stable_train_mse=0.6)['cmi']
  assert summary['lambda'] == 1.0 and summary['seeds'] == 2
  assert summary['test_mse'] == pytest.approx(0.205)
  assert [p['stable'] for p in summary['curve']] == [True, True, False, False]
