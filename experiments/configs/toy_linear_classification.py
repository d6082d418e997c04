"""Config of the learned linear classification toy (the paper's theory).

The ``fast`` variant, a plumbing check in about a minute, is applied when
the config is built, so flags given after it still win:

  python -m experiments.toy_linear_classification --workdir=/tmp/toy_lc_fast \
      --config=experiments/configs/toy_linear_classification.py:fast
"""

import dataclasses

import ml_collections
import numpy as np

from cmi_jax.toy import linear_classification as lc
from experiments import configs

FAST = {'noise_levels': (0.1, 1.0, 10.0), 'num_samples': 1000,
        'train': {'num_steps': 60}}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  """The paper's toy; ``variant='fast'`` applies :data:`FAST`."""
  config = ml_collections.ConfigDict()
  config.num_attributes = 2
  # Noise variances sigma^2 (> 0) and training correlations of the cells.
  config.noise_levels = tuple(float(v) for v in np.logspace(-2, 2, 10))
  config.train_corrs = (0.0, 0.6, 0.95)
  config.objectives = lc.OBJECTIVES
  config.seed, config.num_seeds = 0, 1
  config.num_samples = 10_000  # N, a multiple of train.pack_size
  config.num_test_corrs = 21  # grid of the worst / best test correlation
  config.train = dataclasses.asdict(lc.TrainConfig())
  return configs.with_variants(config, variant, {'fast': FAST})
