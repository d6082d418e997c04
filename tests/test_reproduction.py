"""Regression test of the paper's effect on real data, with a fixed seed.

Correlated two-item Fashion-MNIST (T-shirt/top = 0 vs Trouser = 1, the real
IDX files of Debian's dataset-fashion-mnist), train correlation 0.9,
occlusion noise 0.8, the paper's learning rates x 10 (lr_scale, for a 5,000
step budget), seed 0.

Measured with the corrected (paper-scale) losses, seeds 0, 1, 2 (data
split, initialisation and shuffles), margin = CMI - Base anti-correlated
test accuracy (Base at 0.520-0.521); 1 device and 8 fake devices agree:

==========  ======  ======  ======
steps       seed 0  seed 1  seed 2
==========  ======  ======  ======
5,000       0.043   0.033   0.005
7,500       0.074   0.063   0.004
10,000      0.139   0.102   0.021
==========  ======  ======  ======

The adversarial game is chaotic and, at this short budget, seed-dependent
(seed 2 barely moves); the test pins seed 0, whose 5,000-step margin is
about twice the asserted 0.02. docs/results.md holds the over-seed claim at
the paper's full budget.
"""

import os

import jax
import pytest

from cmi_jax import evaluation
from experiments import common
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from experiments.configs import multi_digit as multi_digit_config

FASHION_DIR = '/usr/share/datasets/fashion-mnist'
MARGIN = 0.02
STEPS_PER_EPOCH, EPOCHS = 500, 10


def fashion_splits(seed=0):
  """The test's data: Fashion-MNIST 0 vs 1, c = 0.9, noise 0.8."""
  digits = sources.load_digits('fashion_mnist', 'idx', manual_dir=FASHION_DIR)
  return multi_digit.multi_digit_splits(digits, classes=(0, 1),
                                        train_corr=0.9, noise=0.8, seed=seed)


def accuracies_at(objective, splits, budgets=(EPOCHS * STEPS_PER_EPOCH,),
                  seed=0):
  """Trains ``objective`` (paper lr x 10); yields ``(steps, accuracies)`` per budget.

  ``budgets``: increasing step counts, multiples of ``STEPS_PER_EPOCH``;
  ``accuracies``: split -> accuracy on ``val``, ``test_anti`` and
  ``test_uncorr``. Also used by docs/reproduction_margin.py (margins over
  seeds and budgets).
  """
  config = multi_digit_config.get_config()
  config.objective = objective
  config.lr_scale = 10.0
  trainer = common.build_trainer(config, 2,
                                     multi_digit_config.PAPER_OPTIM)
  data = splits['train'].replace(steps_per_epoch=STEPS_PER_EPOCH)
  example = common.first_batches(data, 1)['image']
  state = trainer.init(jax.random.PRNGKey(seed), example,
                       config.disentangle_weight)
  steps = 0
  for budget in budgets:
    while steps < budget:
      state, _ = trainer.jit_train_epoch(state, data)
      steps += STEPS_PER_EPOCH
    yield steps, {
        split: evaluation.summarize(
            evaluation.evaluate(trainer, state, splits[split]))['accuracy']
        for split in ('val', 'test_anti', 'test_uncorr')}


def final_accuracies(objective, splits):
  """Accuracies after the test's budget of ``EPOCHS * STEPS_PER_EPOCH`` steps."""
  (_, accuracies), = accuracies_at(objective, splits)
  return accuracies


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR),
                    reason='needs Debian dataset-fashion-mnist (.ci/run '
                    'installs it)')
def test_cmi_beats_base_on_the_anti_correlated_test_set():
  splits = fashion_splits()
  base = final_accuracies('base', splits)
  cmi = final_accuracies('cmi', splits)
  # Base exploits the correlation: far better on val (c = 0.9) than on the
  # anti-correlated test set; CMI closes part of that gap.
  assert base['val'] - base['test_anti'] > 0.2, base
  assert cmi['test_anti'] - base['test_anti'] > MARGIN, (base, cmi)
