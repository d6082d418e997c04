"""The regression protocol of tests/test_reproduction.py, shared with
docs/reproduction_margin.py (margins over seeds and step budgets).

Fashion-MNIST 0 vs 1 from Debian's IDX files, c = 0.9, noise 0.8, the
paper's learning rates x 10, epochs of 500 steps.
"""

import jax

from cmi_jax import evaluation
from experiments import common
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from experiments.configs import multi_digit as multi_digit_config

FASHION_DIR = '/usr/share/datasets/fashion-mnist'
STEPS_PER_EPOCH, EPOCHS = 500, 10


def fashion_splits(seed=0):
  """The protocol's five splits (``multi_digit.multi_digit_splits``)."""
  digits = sources.load_digits('fashion_mnist', 'idx', manual_dir=FASHION_DIR)
  return multi_digit.multi_digit_splits(digits, classes=(0, 1),
                                        train_corr=0.9, noise=0.8, seed=seed)


def accuracies_at(objective, splits, budgets=(EPOCHS * STEPS_PER_EPOCH,),
                  seed=0):
  """Trains ``objective``; yields ``(steps, accuracies)`` per budget.

  ``budgets``: increasing step counts, multiples of ``STEPS_PER_EPOCH``;
  ``accuracies``: split -> accuracy on ``val``, ``test_anti`` and
  ``test_uncorr``.
  """
  config = multi_digit_config.get_config()
  config.objective = objective
  config.lr_scale = 10.0
  trainer = common.build_trainer(config, 2, multi_digit_config.PAPER_OPTIM)
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
