r"""Margins of the regression test over seeds and step budgets (docs/results.md).

Trains Base and Base+CMI exactly as ``tests/reproduction_protocol.py`` does
(Fashion-MNIST 0 vs 1, c = 0.9, noise 0.8, lr x 10, epochs of 500 steps),
for each seed (data split, initialisation and shuffles), and prints the
accuracies and the margin ``CMI - Base`` on the anti-correlated test set
after each step budget.

  PYTHONPATH=. python docs/reproduction_margin.py --steps=2500,5000,7500
  # as the test suite sees it (8 fake CPU devices):
  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
      PYTHONPATH=. python docs/reproduction_margin.py --steps=5000
"""

from absl import app
from absl import flags

from tests import reproduction_protocol
from experiments import common

_STEPS = flags.DEFINE_list('steps', ['2500', '5000'], 'Step budgets, '
                           'multiples of 500, increasing.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')


def main(argv):
  del argv
  budgets = [int(s) for s in _STEPS.value]
  steps_per_epoch = reproduction_protocol.STEPS_PER_EPOCH
  if any(b % steps_per_epoch for b in budgets) or budgets != sorted(budgets):
    raise app.UsageError(f'--steps must be increasing multiples of '
                         f'{steps_per_epoch}; got {budgets}.')
  for seed in (int(s) for s in _SEEDS.value):
    splits = reproduction_protocol.fashion_splits(seed)
    anti = {}
    for objective in ('base', 'cmi'):
      for steps, accuracies in reproduction_protocol.accuracies_at(
          objective, splits, budgets, seed):
        anti[(objective, steps)] = accuracies['test_anti']
        print(f'seed {seed} {objective:>4} {steps:>6} steps: ' + ', '.join(
            f'{k} {v:.4f}' for k, v in accuracies.items()), flush=True)
    for steps in budgets:
      print(f'seed {seed} {steps:>6} steps: margin CMI - Base = '
            f"{anti[('cmi', steps)] - anti[('base', steps)]:.4f}", flush=True)


if __name__ == '__main__':
  common.run_main(main)
