r"""The regression protocol of the paper's effect, and its margins over seeds.

Fashion-MNIST T-shirt/top vs Trouser from Debian's IDX files, train
correlation c = 0.9, occlusion noise 0.8, the paper's learning rates x 10,
epochs of 500 steps. ``tests/test_reproduction.py`` pins seed 0 at 5,000
steps; the command prints, per seed, the accuracies of Base and Base+CMI
after each step budget and the margin ``CMI - Base`` on the anti-correlated
test set (docs/results.md):

  python -m experiments.reproduction --steps=5000,7500,10000
  # as the test suite sees it (8 fake CPU devices):
  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      python -m experiments.reproduction --steps=5000
"""

from __future__ import annotations

from typing import Iterator, Sequence

import jax
import numpy as np
from absl import app
from absl import flags

from cmi_jax import evaluation
from cmi_jax.data import base as data_base
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from experiments import cli
from experiments import common
from experiments import driver
from experiments import multi_digit_mnist
from experiments import sweeps
from experiments.configs import multi_digit as multi_digit_config

FASHION_DIR = '/usr/share/datasets/fashion-mnist'
STEPS_PER_EPOCH, EPOCHS = 500, 10
SPLITS = ('val', 'test_anti', 'test_uncorr')


def fashion_splits(seed: int = 0) -> dict:
  """The protocol's five splits (``multi_digit.multi_digit_splits``)."""
  digits = sources.load_digits('fashion_mnist', 'idx', manual_dir=FASHION_DIR)
  return multi_digit.multi_digit_splits(digits, classes=(0, 1),
                                        train_corr=0.9, noise=0.8, seed=seed)


def accuracies_at(objective: str, splits: dict,
                  budgets: Sequence[int] = (EPOCHS * STEPS_PER_EPOCH,),
                  seed: int = 0) -> Iterator[tuple[int, dict[str, float]]]:
  """Trains ``objective``; yields ``(steps, accuracies)`` per budget.

  ``budgets``: increasing step counts, multiples of ``STEPS_PER_EPOCH``;
  ``accuracies``: split -> accuracy on each of :data:`SPLITS`.
  """
  config = driver.resolve(multi_digit_mnist.SPEC,
                          multi_digit_config.get_config(),
                          {'objective': objective, 'lr_scale': 10.0})
  data = splits['train'].replace(steps_per_epoch=STEPS_PER_EPOCH)
  trainer = common.build_trainer(config, data_base.Splits(
      data, {}, ('digit0', 'digit1'), np.shape(data.table), {}, {}))
  example = data_base.first_batches(data, 1)['image']
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
        for split in SPLITS}


def parse_budgets(values: Sequence[str]) -> list[int]:
  """``--steps`` as increasing positive multiples of ``STEPS_PER_EPOCH``."""
  budgets = sweeps.parse_list(values, 'steps', int)
  if (not budgets or budgets != sorted(set(budgets))
      or any(b <= 0 or b % STEPS_PER_EPOCH for b in budgets)):
    raise app.UsageError(
        f'--steps must be increasing positive multiples of {STEPS_PER_EPOCH}, '
        f'e.g. --steps=2500,5000; got {",".join(values)!r}.')
  return budgets


def print_margins(budgets: Sequence[int], seeds: Sequence[int]) -> None:
  """Prints each seed's accuracies per budget and the margins CMI - Base."""
  for seed in seeds:
    splits = fashion_splits(seed)
    anti = {}
    for objective in ('base', 'cmi'):
      for steps, accuracies in accuracies_at(objective, splits, budgets, seed):
        anti[(objective, steps)] = accuracies['test_anti']
        print(f'seed {seed} {objective:>4} {steps:>6} steps: ' + ', '.join(
            f'{k} {v:.4f}' for k, v in accuracies.items()), flush=True)
    for steps in budgets:
      print(f'seed {seed} {steps:>6} steps: margin CMI - Base = '
            f"{anti[('cmi', steps)] - anti[('base', steps)]:.4f}", flush=True)


def main() -> None:
  """Command line: ``--steps`` (budgets), ``--seeds``."""
  steps = flags.DEFINE_list('steps', ['2500', '5000'], 'Step budgets: '
                            f'increasing multiples of {STEPS_PER_EPOCH}.')
  seeds = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')

  def run(argv):
    del argv
    print_margins(parse_budgets(steps.value),
                  sweeps.parse_list(seeds.value, 'seeds', int))

  cli.run_main(run)


if __name__ == '__main__':
  main()
