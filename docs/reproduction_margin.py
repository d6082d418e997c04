r"""Margins of the regression test over seeds and step budgets (docs/results.md).

Trains Base and Base+CMI exactly as ``tests/test_reproduction.py`` does
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
import jax

from cmi_jax import evaluation
from cmi_jax import experiment
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from experiments.configs import multi_digit as multi_digit_config
from tests import test_reproduction

_STEPS = flags.DEFINE_list('steps', ['2500', '5000'], 'Step budgets, '
                           'multiples of 500, increasing.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')


def main(argv):
  del argv
  budgets = [int(s) for s in _STEPS.value]
  steps_per_epoch = test_reproduction.STEPS_PER_EPOCH
  if any(b % steps_per_epoch for b in budgets) or budgets != sorted(budgets):
    raise app.UsageError(f'--steps must be increasing multiples of '
                         f'{steps_per_epoch}; got {budgets}.')
  digits = sources.load_digits('fashion_mnist', 'idx',
                               manual_dir=test_reproduction.FASHION_DIR)
  for seed in (int(s) for s in _SEEDS.value):
    splits = multi_digit.multi_digit_splits(digits, classes=(0, 1),
                                            train_corr=0.9, noise=0.8,
                                            seed=seed)
    anti = {}
    for objective in ('base', 'cmi'):
      config = multi_digit_config.get_config()
      config.objective = objective
      config.lr_scale = 10.0
      trainer = experiment.build_trainer(config, 2,
                                         multi_digit_config.PAPER_OPTIM)
      data = splits['train'].replace(steps_per_epoch=steps_per_epoch)
      state = trainer.init(jax.random.PRNGKey(seed),
                           experiment.first_batches(data, 1)['image'],
                           config.disentangle_weight)
      done = 0
      for budget in budgets:
        while done < budget:
          state, _ = trainer.jit_train_epoch(state, data)
          done += steps_per_epoch
        acc = {s: evaluation.summarize(evaluation.evaluate(
            trainer, state, splits[s]))['accuracy']
               for s in ('val', 'test_anti', 'test_uncorr')}
        anti[(objective, budget)] = acc['test_anti']
        print(f'seed {seed} {objective:>4} {budget:>6} steps: ' + ', '.join(
            f'{k} {v:.4f}' for k, v in acc.items()), flush=True)
    for budget in budgets:
      print(f'seed {seed} {budget:>6} steps: margin CMI - Base = '
            f"{anti[('cmi', budget)] - anti[('base', budget)]:.4f}",
            flush=True)


if __name__ == '__main__':
  app.run(main)
