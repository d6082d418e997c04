r"""The paper's CelebA sweeps: train correlation, and weak supervision.

  python -m experiments.celeba_sweep --workdir=/tmp/celeba_sweep \
      --config.celeba_dir=/data/celeba [--mode=weak --seeds=1,2,3 ...]

Each cell is a full run of :mod:`experiments.celeba`, in

  workdir/corr/<objective>/corr<c>_noise<n>/seed<s>/
  workdir/weak/weak<p>/<objective>/corr<c>_noise<n>/seed<s>/

Finished cells are skipped, so a restarted sweep picks up where it stopped.
``--vmap`` trains cells that share every shape together
(:func:`run_vmapped_sweep`). Draw the figures with
:mod:`experiments.plot_celeba`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence, Union

from absl import app
from absl import flags
import jax.numpy as jnp
import ml_collections

from experiments import common
from cmi_jax import logs
from cmi_jax import validate
from cmi_jax import vmapped
from experiments import sweeps
from cmi_jax.data import celeba
from cmi_jax.data import celeba_files
from experiments import celeba as celeba_experiment
from experiments.configs import celeba as celeba_config

MODES = ('corr', 'weak')
WEAK_PREFIX = 'weak'
# The config fields that may differ inside a vmapped group: neither changes a
# shape (celeba_splits' sub-sample sizes follow from the labels and the
# correlation table alone) nor the trainer.
VMAP_VARYING = ('seed', 'noise')


@dataclasses.dataclass(frozen=True)
class WeakCell:
  """A sweep cell with a fraction of each attribute's train labels removed.

  Its directory is ``weak<p>/<cell.name>`` and its overrides add
  ``weak_supervision``, so :mod:`experiments.sweeps` handles it as a cell.
  """
  cell: sweeps.Cell
  weak_supervision: float

  @property
  def name(self) -> str:
    return os.path.join(f'{WEAK_PREFIX}{self.weak_supervision:g}',
                        self.cell.name)

  def overrides(self) -> dict[str, Any]:
    return {**self.cell.overrides(), 'weak_supervision': self.weak_supervision}


AnyCell = Union[sweeps.Cell, WeakCell]


def weak_grid(objectives: Sequence[str], fractions: Sequence[float],
              train_corr: float, noise: float,
              seeds: Sequence[int]) -> list[WeakCell]:
  """Every (objective, fraction, seed) at one correlation and noise level."""
  if not len(fractions):
    raise ValueError('--weak_fractions is empty; give at least one fraction '
                     'of labels to remove, e.g. 0,0.5,0.9.')
  bad = [p for p in fractions if not 0.0 <= p < 1.0]
  if bad:
    raise ValueError(f'--weak_fractions {bad} lie outside [0, 1): each is the '
                     'fraction of labels removed, e.g. 0.9 for 90 %.')
  sweeps.grid(objectives, [train_corr], [noise], seeds)  # Checks the lists.
  # Seeds innermost: cells of one fraction share their batch shape.
  return [WeakCell(sweeps.Cell(o, float(train_corr), float(noise), int(s)),
                   float(p))
          for o in objectives for p in fractions for s in seeds]


def run_sweep(base_config: ml_collections.ConfigDict, sweep_dir: str,
              cells: Sequence[AnyCell]) -> None:
  """Runs every unfinished cell, each overriding the flag ``base_config``."""
  sweeps.run_cells(sweep_dir, cells,
                   lambda cell, workdir: celeba_experiment.train_and_evaluate(
                       _cell_config(base_config, cell), workdir))


def _cell_config(base_config: ml_collections.ConfigDict, cell: AnyCell
                 ) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(base_config.to_dict())
  config.update(cell.overrides())
  return config


def resolve_cell(base_config: ml_collections.ConfigDict, cell: AnyCell
                 ) -> ml_collections.ConfigDict:
  """The resolved config of a cell (what its separate run trains with)."""
  return celeba_experiment.resolve_config(_cell_config(base_config, cell))


def member_splits(loaded: celeba_files.CelebASplits,
                  config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The datasets of one resolved config from already loaded CelebA."""
  return celeba.celeba_splits(
      loaded, config.train_corr, weak_supervision=config.weak_supervision,
      noise=config.noise, batch_size=config.batch_size, seed=config.seed,
      occlusion_patch=config.occlusion_patch)


def train_group(loaded: celeba_files.CelebASplits, sweep_dir: str,
                cells: Sequence[AnyCell],
                configs: Sequence[ml_collections.ConfigDict]) -> None:
  """Trains cells of equal shapes together (vmapped) and writes each one.

  Each member gets its separate run's ``config.json``, ``joint_counts.json``,
  subpopulation tables and ``results.json``. Memory: the device holds
  ``S x N_train x 64 x 64 x 3`` bytes of training images (briefly twice,
  while stacking); ``--vmap_max_members`` bounds S. ValueError if the
  members' datasets differ in shape after all.
  """
  names = loaded.attributes
  first = configs[0]
  if first.group_weighting == 'subsample':
    raise ValueError(
        'group_weighting=subsample draws each member its own balanced epoch '
        'from images the vmapped group shares; run these cells without '
        '--vmap.')
  trainer = None
  trains, eval_labels, evals, infos, counts = [], [], [], [], []
  for config in configs:
    data = member_splits(loaded, config)
    if trainer is None:
      # The members share the correlation, hence the group counts.
      trainer = common.build_trainer(
          first, len(names), celeba_config.PAPER_OPTIM,
          common.group_weighting(first, data['train'], (2,) * len(names)))
    common.check_data({s: data[s] for s in ('train',)
                           + common.EVAL_SPLITS}, len(names))
    infos.append(celeba_experiment.data_info(config, loaded, data))
    counts.append(celeba_experiment.joint_counts(data,
                                                 config.weak_supervision))
    trains.append(data['train'])
    eval_labels.append(data['train_eval'].labels)
    evals.append({s: data[s] for s in common.EVAL_SPLITS
                  if s != 'train_eval'})
  example = common.first_batches(trains[0], first.batch_size)['image']
  try:
    train_data = vmapped.stack_datasets(trains)
  except ValueError as e:
    raise ValueError(
        f'the cells {[c.name for c in cells]} were grouped because their '
        f'configs differ only in {VMAP_VARYING}, but their training sets '
        f'differ: {e} Run them without --vmap.') from e
  del trains  # Frees the members' copies.
  eval_datas = {
      # train_eval shares train's images (celeba_splits).
      'train_eval': vmapped.Stacked(train_data.replace(
          labels=jnp.stack(eval_labels), shuffle=False)),
      **{s: [e[s] for e in evals] for s in evals[0]}}

  def write_extra(i, workdir, results):
    logs.write_json_atomic(os.path.join(workdir, 'joint_counts.json'),
                           counts[i])
    celeba_experiment.write_subpopulation_tables(results, names, workdir)

  sweeps.train_group(
      trainer, cells, configs, sweep_dir, example, train_data, eval_datas,
      [{'data': info, 'attributes': list(names)} for info in infos],
      write_extra)


def run_vmapped_sweep(base_config: ml_collections.ConfigDict, sweep_dir: str,
                      cells: Sequence[AnyCell],
                      max_members: Optional[int] = None) -> None:
  """Runs every unfinished cell, those of equal shapes together (vmapped).

  Cells whose resolved configs differ only in :data:`VMAP_VARYING` train
  as one group (:func:`train_group`); the others as
  :func:`experiments.sweeps.run_grouped` decides. CelebA is read once.
  ``sweep_dir`` is the mode's folder (:func:`mode_dir`); ``max_members``
  the largest group (None: no limit).
  """
  configs = {c: resolve_cell(base_config, c) for c in cells}
  loaded = []  # CelebA, loaded by the first group that needs it.

  def key(cell):
    return sweeps.config_key(configs[cell].to_dict(), VMAP_VARYING)

  def train(group):
    if not loaded:
      first = configs[group[0]]
      loaded.append(celeba_files.load_celeba(
          first.attributes, source=first.source,
          tfds_data_dir=first.tfds_data_dir, celeba_dir=first.celeba_dir,
          cache_dir=first.cache_dir))
    train_group(loaded[0], sweep_dir, group, [configs[c] for c in group])

  sweeps.run_grouped(
      sweep_dir, cells, group_key=key, train_group=train,
      run_separately=lambda group: run_sweep(base_config, sweep_dir, group),
      max_members=max_members)


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
  return os.path.join(sweep_dir, validate.choice(mode, '--mode', MODES))


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
    if vmap.value:
      run_vmapped_sweep(config, folder, cells, max_members.value)
    else:
      run_sweep(config, folder, cells)
    rows = (sweeps.collect(folder) if mode.value == 'corr'
            else collect_weak(folder))
    logs.write_json_atomic(os.path.join(folder, 'summary.json'), rows)
    print(f'{len(rows)} finished cells in {folder}; draw them with '
          f'python -m experiments.plot_celeba --sweep_dir={workdir}')

  common.run_config_main('celeba.py', body)


if __name__ == '__main__':
  main()
