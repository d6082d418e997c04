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
from typing import Any, Optional, Sequence

import ml_collections
from absl import app
from absl import flags

from cmi_jax import logs
from cmi_jax import validate
from experiments import celeba as celeba_experiment
from experiments import cli
from experiments import driver
from experiments import sweeps


MODES = ('corr', 'weak')
WEAK_PREFIX = 'weak'


def weak_cell(cell: sweeps.Cell, fraction: float) -> sweeps.Cell:
  """``cell`` with a fraction of each attribute's train labels removed,
  in ``weak<p>/<cell.name>``."""
  return cell.with_setting('weak_supervision', float(fraction),
                           f'{WEAK_PREFIX}{fraction:g}')


def weak_grid(objectives: Sequence[str], fractions: Sequence[float],
              train_corr: float, noise: float,
              seeds: Sequence[int]) -> list[sweeps.Cell]:
  """Every (objective, fraction, seed) at one correlation and noise level."""
  if not len(fractions):
    raise ValueError('weak_fractions is empty; give at least one fraction '
                     'of labels to remove, e.g. 0,0.5,0.9.')
  bad = [p for p in fractions if not 0.0 <= p < 1.0]
  if bad:
    raise ValueError(f'weak_fractions {bad} lie outside [0, 1): each is the '
                     'fraction of labels removed, e.g. 0.9 for 90 %.')
  sweeps.grid(objectives, [train_corr], [noise], seeds)  # Checks the lists.
  # Seeds innermost: cells of one fraction share their batch shape.
  return [weak_cell(sweeps.cell(o, train_corr, noise, s), p)
          for o in objectives for p in fractions for s in seeds]


def run_sweep(base_config: ml_collections.ConfigDict, sweep_dir: str,
              cells: Sequence[sweeps.Cell], vmap: bool = False,
              max_members: Optional[int] = None) -> None:
  """Trains every unfinished cell (:func:`experiments.driver.train_cells`).

  ``sweep_dir`` is the mode's folder (:func:`mode_dir`).
  """
  driver.train_cells(celeba_experiment.SPEC, base_config, sweep_dir, cells,
                     vmap=vmap, max_members=max_members)


def collect_weak(weak_dir: str, select: str = 'final'
                 ) -> list[dict[str, Any]]:
  """:func:`experiments.sweeps.collect` of every ``weak<p>/`` folder.

  The rows of all fractions, each with ``weak_supervision`` added;
  ValueError if ``weak_dir`` holds no finished weak cell.
  """
  rows = []
  folders = os.listdir(weak_dir) if os.path.isdir(weak_dir) else []
  for folder in sorted(folders):
    path = os.path.join(weak_dir, folder)
    if not (folder.startswith(WEAK_PREFIX) and os.path.isdir(path)):
      continue
    try:
      fraction = float(folder[len(WEAK_PREFIX):])
    except ValueError:
      continue  # not a folder of this sweep
    try:
      found = sweeps.collect(path, select)
    except ValueError:
      continue  # no finished cell at this fraction yet
    rows.extend(dict(row, weak_supervision=fraction) for row in found)
  if not rows:
    raise ValueError(f'no finished weak-supervision run under {weak_dir}; '
                     'run experiments.celeba_sweep --mode=weak first.')
  return sorted(rows, key=lambda r: (r['objective'], r['weak_supervision'],
                                     r['seed']))


def mode_dir(sweep_dir: str, mode: str) -> str:
  """The folder of one mode's cells (``corr`` or ``weak``)."""
  return os.path.join(sweep_dir, validate.choice(mode, 'mode', MODES))


def main() -> None:
  """Command line (flags defined here, not at import)."""
  mode = flags.DEFINE_enum('mode', 'corr', list(MODES),
                           'corr: train correlations; weak: fractions of '
                           'labels removed.')
  objectives = flags.DEFINE_list('objectives', ['base', 'mi', 'cmi'],
                                 'Objectives.')
  seeds = flags.DEFINE_list('seeds', ['1', '2', '3'], 'Seeds.')
  noises = flags.DEFINE_list('noises', ['0'], 'Occlusion noise levels.')
  corrs = flags.DEFINE_list('train_corrs', ['0', '0.2', '0.4', '0.6', '0.8'],
                            'Training correlations (mode corr).')
  fractions = flags.DEFINE_list(
      'weak_fractions', ['0', '0.5', '0.75', '0.9', '0.95'],
      'Fractions of each attribute\'s train labels removed (mode weak).')
  weak_corr = flags.DEFINE_float('weak_train_corr', 0.8,
                                 'Training correlation (mode weak).')
  vmap, max_members = sweeps.define_vmap_flags(
      'the seeds and noise levels of each objective and correlation (mode '
      'weak: and fraction)')
  shard = sweeps.define_shard_flag()

  def body(config, workdir):
    seed_list = sweeps.parse_list(seeds.value, 'seeds', int)
    noise_list = sweeps.parse_list(noises.value, 'noises')
    if mode.value == 'corr':
      cells = sweeps.grid(objectives.value,
                          sweeps.parse_list(corrs.value, 'train_corrs'),
                          noise_list, seed_list)
    else:
      if len(noise_list) != 1:
        raise app.UsageError('--mode=weak takes one --noises value; got '
                             f'{noise_list}.')
      cells = weak_grid(objectives.value,
                        sweeps.parse_list(fractions.value, 'weak_fractions'),
                        weak_corr.value, noise_list[0], seed_list)
    cells = sweeps.select_shard(cells, *sweeps.parse_shard(shard.value))
    folder = mode_dir(workdir, mode.value)
    run_sweep(config, folder, cells, vmap.value, max_members.value)
    rows = (sweeps.collect(folder) if mode.value == 'corr'
            else collect_weak(folder))
    logs.write_json_atomic(os.path.join(folder, 'summary.json'), rows)
    print(f'{len(rows)} finished cells in {folder}; draw them with '
          f'python -m experiments.plot_celeba --sweep_dir={workdir}')

  cli.run_config_main('celeba.py', body)


if __name__ == '__main__':
  main()
