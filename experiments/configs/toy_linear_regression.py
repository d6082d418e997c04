"""Config of the linear-Gaussian regression theory (Table 1, Figures 2, 3)."""

import ml_collections

from experiments import configs


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's setting: c = 0.8, sigma^2 = 0.1, tested at c = 0."""
  config = ml_collections.ConfigDict()
  # The Table 1 / Figure 3 setting (lr.table1).
  config.train_corr = 0.8
  config.noise_var = 0.1
  config.test_corr = 0.0
  config.num_attributes = 2
  config.seed = 0  # Figure 3 samples and the MI = 0 restarts
  config.num_scatter_samples = 1000
  # Figure 2: log-spaced noise variances x linspace(0, grid_max_corr).
  config.grid_num_noise = 25
  config.grid_min_noise = 1e-2
  config.grid_max_noise = 1e2
  config.grid_num_corr = 20
  config.grid_max_corr = 0.95
  # Restarts of the MI = 0 rotation search; None: 1 for K = 2, else 8.
  config.num_restarts = ml_collections.config_dict.placeholder(int)
  # Table 1 learned by gradient descent (cmi_jax.toy.learned_regression);
  # no objectives: the closed form only.
  config.learned = ml_collections.ConfigDict({
      'objectives': (), 'lambdas': (0.0, 0.1, 0.3, 1.0, 3.0, 10.0),
      'seeds': (0, 1, 2), 'steps': 3000, 'batch_size': 256,
      'num_samples': 10_000})
  return configs.with_variants(config, variant, {
      'learned': {'learned': {'objectives': ('base', 'mi', 'cmi')}}})
