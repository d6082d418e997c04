r"""The paper's linear-Gaussian regression theory: Table 1, Figures 2 and 3.

Computed in closed form by :mod:`cmi_jax.toy.linear_regression` (only
Figure 3 samples points). Writes into ``--workdir``: ``table1.json``
(:func:`lr.table1`), ``figure2.png`` (test MSE over noise variance x
training correlation, a heat map per model), ``figure3.png`` (predictions
against targets at the training and the test correlation, a column per
model) and ``config.json`` (the settings, with the number of restarts used).
With ``learned.objectives`` (the ``learned`` variant: Base, MI, CMI) it also
trains Table 1 by gradient descent (:mod:`cmi_jax.toy.learned_regression`):
``learned_table1.json`` (per objective the table row and the curve over
lambda) and ``learned_table1.png`` (train and test MSE against lambda beside
the closed form).

  python -m experiments.toy_linear_regression --workdir=/tmp/toy_lr3 \
      --config.num_attributes=3 --config.grid_num_noise=10
  python -m experiments.toy_linear_regression --workdir=/tmp/learned \
      --config=experiments/configs/toy_linear_regression.py:learned
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import cli
from experiments import common
from experiments.configs import toy_linear_regression as toy_config
from cmi_jax import plots
from cmi_jax import validate
from cmi_jax.toy import figures as toy_figures
from cmi_jax.toy import learned_regression
from cmi_jax.toy import linear_regression as lr


def learned_table1(c: Any, objectives: tuple[str, ...],
                   table: dict[str, dict[str, float]]
                   ) -> dict[str, dict[str, Any]]:
  """:func:`learned_regression.summarize` of ``c.learned``'s runs."""
  learned, rows = c.learned, []
  for objective in objectives:
    # Base has no penalty: lambda = 0 says so.
    weights = [0.0] if objective == 'base' else learned.lambdas
    rows += learned_regression.table_rows(
        [objective], [float(w) for w in weights],
        [int(seed) for seed in learned.seeds], train_corr=c.train_corr,
        noise_var=c.noise_var, test_corr=c.test_corr,
        num_samples=learned.num_samples, num_attributes=c.num_attributes,
        steps=learned.steps, batch_size=learned.batch_size)
  return learned_regression.summarize(rows, table['mi0']['train_mse'])


def run(workdir: str, **settings: Any) -> dict[str, Any]:
  """Computes Table 1 and draws Figures 2 and 3 into ``workdir`` (created).

  ``settings`` change fields of :func:`toy_config.get_config`. Returns
  ``{'table1': ..., 'config': the settings used, 'files': {name: path}}``.
  """
  if not workdir:
    raise ValueError('workdir is required; pass --workdir=DIR.')
  c = common.config_with(toy_config.get_config(), settings)
  if c.num_restarts is None:
    c.num_restarts = 1 if c.num_attributes == 2 else 8
  for name in ('grid_num_noise', 'grid_num_corr'):
    validate.integer(c[name], name, 2, hint='A heat map needs 2 per axis.')
  if not 0 < c.grid_min_noise < c.grid_max_noise:
    raise ValueError(
        f'need 0 < grid_min_noise < grid_max_noise for the log-spaced noise '
        f'axis; got {c.grid_min_noise} and {c.grid_max_noise}.')
  validate.number(c.grid_max_corr, 'grid_max_corr', 0, 1, open_low=True,
                  open_high=True)
  learned_objectives = common.comma_names(c.learned.objectives)
  for name in learned_objectives:  # Before minutes of work.
    validate.choice(name, 'learned.objectives', learned_regression.OBJECTIVES)
  setting = (c.train_corr, c.noise_var, c.test_corr, c.num_attributes)
  # Validate the main setting before the (slower) sweep.
  table = lr.table1(*setting, num_restarts=c.num_restarts, seed=c.seed)
  noise_vars = np.logspace(np.log10(c.grid_min_noise),
                           np.log10(c.grid_max_noise), int(c.grid_num_noise))
  train_corrs = np.linspace(0.0, c.grid_max_corr, int(c.grid_num_corr))
  sweep = lr.noise_correlation_sweep(noise_vars, train_corrs, c.test_corr,
                                     c.num_attributes,
                                     num_restarts=c.num_restarts, seed=c.seed)
  scatter = lr.prediction_scatter(*setting, c.num_scatter_samples, c.seed,
                                  num_restarts=c.num_restarts)
  outputs = {
      'table1.json': table,
      'figure2.png': toy_figures.regression_figure2(
          sweep, noise_vars, train_corrs, c.test_corr,
          marker=(c.train_corr, c.noise_var)),
      'figure3.png': toy_figures.regression_figure3(scatter),
      'config.json': c.to_dict()}
  result = {'table1': table, 'config': c.to_dict()}
  if learned_objectives:
    result['learned'] = learned_table1(c, learned_objectives, table)
    outputs['learned_table1.json'] = result['learned']
    outputs['learned_table1.png'] = toy_figures.learned_regression_curves(
        result['learned'], table)
  return {**result, 'files': plots.write_outputs(workdir, outputs)}


def main() -> None:
  """Command line: ``--workdir`` and ``--config`` (with overrides)."""
  def body(config, workdir):
    result = run(workdir, **config)
    print(lr.format_table1(result['table1']))
    for objective, row in result.get('learned', {}).items():
      print(f'learned {objective:>8}: train {row["train_mse"]:.4f}, test '
            f'{row["test_mse"]:.4f} (lambda {row["lambda"]:g}, '
            f'{row["seeds"]} seeds)')
    print('\n'.join(f'wrote {path}' for path in result['files'].values()))

  cli.run_config_main('toy_linear_regression.py', body)


if __name__ == '__main__':
  main()
