r"""The paper's CelebA sweeps: train correlation, and weak supervision.

  python -m experiments.celeba_sweep --workdir=/tmp/celeba_sweep \
      --config.celeba_dir=/data/celeba [--mode=weak --seeds=1,2,3 ...]

Each cell is a full run of :mod:`experiments.celeba`, in

  workdir/corr/<objective>/corr<c>_noise<n>/seed<s>/
  workdir/weak/weak<p>/<objective>/corr<c>_noise<n>/seed<s>/

Finished cells are skipped, so a restarted sweep picks up where it stopped.
``--vmap`` trains cells that share every shape together. Draw the figures with
:mod:`experiments.plot_celeba`.
"""

from __future__ import annotations

import os
from typing import Sequence

from absl import app
from absl import flags

from experiments import celeba as celeba_experiment
from experiments import cli
from experiments import driver
from experiments import sweeps


# The config field a weak-supervision sweep varies beyond the paper's grid.
WEAK_COLUMNS = ('weak_supervision',)


def weak_cell(cell: sweeps.Cell, fraction: float) -> sweeps.Cell:
  """``cell`` with a fraction of each attribute's train labels removed,
  in ``weak<p>/<cell.name>``."""
  return sweeps.with_setting(cell, 'weak_supervision', float(fraction),
                            f'weak{fraction:g}')


def weak_grid(objectives: Sequence[str], fractions: Sequence[float],
              train_corr: float, noise: float,
              seeds: Sequence[int]) -> list[sweeps.Cell]:
  """Every (objective, fraction, seed) at one correlation and noise level."""
  if not fractions or not all(0.0 <= p < 1.0 for p in fractions):
    raise ValueError(f'weak_fractions {list(fractions)} must be one or more '
                     'fractions of labels removed, each in [0, 1), e.g. '
                     '0,0.5,0.9.')
  sweeps.grid(objectives, [train_corr], [noise], seeds)  # Checks the lists.
  # Seeds innermost: cells of one fraction share their batch shape.
  return [weak_cell(sweeps.cell(o, train_corr, noise, s), p)
          for o in objectives for p in fractions for s in seeds]


def mode_dir(sweep_dir: str, mode: str) -> str:
  """The folder of one mode's cells (``corr`` or ``weak``)."""
  return os.path.join(sweep_dir, mode)


def main() -> None:
  """Command line (flags defined here, not at import)."""
  mode = flags.DEFINE_enum('mode', 'corr', ['corr', 'weak'],
                           'corr: train correlations; weak: fractions of '
                           'labels removed.')
  fractions = flags.DEFINE_list(
      'weak_fractions', ['0', '0.5', '0.75', '0.9', '0.95'],
      'Fractions of each attribute\'s train labels removed (mode weak).')
  weak_corr = flags.DEFINE_float('weak_train_corr', 0.8,
                                 'Training correlation (mode weak).')
  sweep = sweeps.define_sweep_flags(
      train_corrs=['0', '0.2', '0.4', '0.6', '0.8'], noises=['0'],
      seeds=['1', '2', '3'])

  def body(config, workdir):
    args = sweep()
    if mode.value == 'corr':
      cells = sweeps.grid(args.objectives, args.train_corrs, args.noises,
                          args.seeds)
    elif len(args.noises) != 1:
      raise app.UsageError('--mode=weak takes one --noises value; got '
                           f'{args.noises}.')
    else:
      cells = weak_grid(args.objectives,
                        sweeps.parse_list(fractions.value, 'weak_fractions'),
                        weak_corr.value, args.noises[0], args.seeds)
    folder = mode_dir(workdir, mode.value)
    cells = sweeps.with_lambdas(cells, args.lambdas)
    rows = driver.run_sweep(
        celeba_experiment.SPEC, config, folder,
        sweeps.select_shard(cells, *args.shard), vmap=args.vmap,
        max_members=args.max_members,
        extra=sweeps.lambda_columns(args.lambdas)
        + WEAK_COLUMNS * (mode.value == 'weak'))
    print(f'{len(rows)} finished cells in {folder}; draw them with '
          f'python -m experiments.plot_celeba --sweep_dir={workdir}')

  cli.run_config_main('celeba.py', body)


if __name__ == '__main__':
  main()
