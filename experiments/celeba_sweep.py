r"""The paper's CelebA sweeps: train correlation, and weak supervision.

  # Accuracy vs train correlation (objective x correlation x seed):
  python -m experiments.celeba_sweep --workdir=/tmp/celeba_sweep \
      --config.celeba_dir=/data/celeba \
      [--train_corrs=0,0.2,0.4,0.6,0.8 --objectives=base,mi,cmi \
       --seeds=1,2,3 --noises=0 --config.num_epochs=200 ...]

  # Weak supervision (objective x fraction of labels removed x seed):
  python -m experiments.celeba_sweep --workdir=/tmp/celeba_sweep --mode=weak \
      --config.celeba_dir=/data/celeba \
      [--weak_fractions=0,0.5,0.75,0.9,0.95 --weak_train_corr=0.8 ...]

Each cell is a full run of :mod:`experiments.celeba`; the two modes keep
their cells apart, so one ``workdir`` can hold both:

  workdir/corr/<objective>/corr<c>_noise<n>/seed<s>/
  workdir/weak/weak<p>/<objective>/corr<c>_noise<n>/seed<s>/

Cells with a ``results.json`` are skipped, so a restarted sweep picks up
where it stopped (the interrupted cell resumes from its checkpoint). Weak
cells scale their batch size and epochs by ``1 / (1 - p)`` (see
:mod:`experiments.configs.celeba`). Draw the paper's figures with
:mod:`experiments.plot_celeba`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Sequence, Union

from absl import app
from absl import flags
from absl import logging
import ml_collections
from ml_collections import config_flags

from cmi_jax import experiment
from cmi_jax import logs
from cmi_jax import sweeps
from experiments import celeba as celeba_experiment
from experiments.configs import celeba as celeba_config
from experiments.multi_digit_sweep import parse_floats

MODES = ('corr', 'weak')
WEAK_PREFIX = 'weak'


@dataclasses.dataclass(frozen=True)
class WeakCell:
  """A sweep cell with a fraction of each attribute's train labels removed.

  Wraps :class:`cmi_jax.sweeps.Cell` (objective, correlation, noise, seed):
  its directory is ``weak<p>/<cell.name>`` and its overrides add
  ``weak_supervision``, so :func:`cmi_jax.sweeps.is_done` and
  :func:`cmi_jax.sweeps.collect` (run on ``weak<p>/``) work unchanged.
  """
  cell: sweeps.Cell
  weak_supervision: float

  @property
  def name(self) -> str:
    return os.path.join(weak_dir_name(self.weak_supervision), self.cell.name)

  def overrides(self) -> dict[str, Any]:
    return {**self.cell.overrides(), 'weak_supervision': self.weak_supervision}


AnyCell = Union[sweeps.Cell, WeakCell]


def weak_dir_name(fraction: float) -> str:
  """``weak<p>``, the folder of the cells with ``p`` of the labels removed."""
  return f'{WEAK_PREFIX}{fraction:g}'


def weak_grid(objectives: Sequence[str], fractions: Sequence[float],
              train_corr: float, noise: float,
              seeds: Sequence[int]) -> list[WeakCell]:
  """Every (objective, fraction, seed) at one correlation and noise level.

  Raises:
    ValueError: naming the flag, for a fraction outside [0, 1) or an empty
      list.
  """
  if not len(fractions):
    raise ValueError('--weak_fractions is empty; give at least one fraction '
                     'of labels to remove, e.g. 0,0.5,0.9.')
  bad = [p for p in fractions if not 0.0 <= p < 1.0]
  if bad:
    raise ValueError(f'--weak_fractions {bad} lie outside [0, 1): each is the '
                     'fraction of labels removed, e.g. 0.9 for 90 %.')
  sweeps.grid(objectives, [train_corr], [noise], seeds)  # checks the lists
  # Seeds innermost: cells of one fraction share their batch shape and adjoin.
  return [WeakCell(sweeps.Cell(o, float(train_corr), float(noise), int(s)),
                   float(p))
          for o in objectives for p in fractions for s in seeds]


def run_sweep(base_config: ml_collections.ConfigDict, sweep_dir: str,
              cells: Sequence[AnyCell]) -> None:
  """Runs every unfinished cell of ``cells`` under ``sweep_dir``.

  ``base_config`` is the flag config; each cell overrides its fields and
  :func:`experiments.celeba.train_and_evaluate` resolves it (fast variant,
  weak-supervision scaling).
  """
  for i, cell in enumerate(cells):
    if sweeps.is_done(sweep_dir, cell):
      logging.info('[%d/%d] %s: done, skipped.', i + 1, len(cells), cell.name)
      continue
    config = ml_collections.ConfigDict(base_config.to_dict())
    config.update(cell.overrides())
    start = time.time()
    results = celeba_experiment.train_and_evaluate(
        config, os.path.join(sweep_dir, cell.name))
    final = results['final']['eval']
    logging.info('[%d/%d] %s: anti %.3f, uncorr %.3f (%.0f s).', i + 1,
                 len(cells), cell.name, final['test_anti']['accuracy'],
                 final['test_uncorr']['accuracy'], time.time() - start)


def collect_weak(weak_dir: str, select: str = 'final'
                 ) -> list[dict[str, Any]]:
  """:func:`cmi_jax.sweeps.collect` of every ``weak<p>/`` folder.

  Returns:
    The rows of all fractions, each with ``weak_supervision`` added.

  Raises:
    ValueError: if ``weak_dir`` holds no finished weak cell.
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
  if mode not in MODES:
    raise ValueError(f'--mode={mode!r} is unknown; choose one of {MODES}.')
  return os.path.join(sweep_dir, mode)


def main() -> None:
  """Command line (flags defined here, not at import)."""
  config = config_flags.DEFINE_config_dict(
      'config', celeba_config.get_config(), lock_config=True)
  workdir = flags.DEFINE_string('workdir', None, 'Sweep directory.')
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

  def run(argv):
    experiment.quiet_library_logs()
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if not workdir.value:
      raise app.UsageError('--workdir is required (the sweep directory).')
    seed_list = [int(s) for s in parse_floats(seeds.value, 'seeds')]
    noise_list = parse_floats(noises.value, 'noises')
    if mode.value == 'corr':
      cells = sweeps.grid(objectives.value,
                          parse_floats(corrs.value, 'train_corrs'),
                          noise_list, seed_list)
    else:
      if len(noise_list) != 1:
        raise app.UsageError('--mode=weak takes one --noises value; got '
                             f'{noise_list}.')
      try:
        cells = weak_grid(objectives.value,
                          parse_floats(fractions.value, 'weak_fractions'),
                          weak_corr.value, noise_list[0], seed_list)
      except ValueError as e:
        raise app.UsageError(str(e)) from e
    folder = mode_dir(workdir.value, mode.value)
    run_sweep(config.value, folder, cells)
    rows = (sweeps.collect(folder) if mode.value == 'corr'
            else collect_weak(folder))
    logs.write_json_atomic(os.path.join(folder, 'summary.json'), rows)
    print(f'{len(rows)} finished cells in {folder}; draw them with '
          f'python -m experiments.plot_celeba --sweep_dir={workdir.value}')

  app.run(run)


if __name__ == '__main__':
  main()
