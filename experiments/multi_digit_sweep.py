r"""The paper's multi-digit sweep: noise x train correlation x objective x seed.

  python -m experiments.multi_digit_sweep --workdir=/tmp/md_sweep \
      [--noises=0,0.2,0.4,0.6,0.8 --train_corrs=0,0.6,0.9 \
       --objectives=base,mi,cmi --seeds=0,1,2 --config.num_epochs=400 ...]

Each cell is a full run of :mod:`experiments.multi_digit_mnist` in
``workdir/<objective>/corr<c>_noise<n>/seed<s>``; finished cells are
skipped, so a restarted sweep picks up where it stopped. ``--vmap`` trains
the cells of each objective together (:func:`run_vmapped_sweep`). Draw the
figure with :mod:`experiments.plot_multi_digit`.
"""

from __future__ import annotations

import os

import ml_collections
from absl import flags
from absl import logging

from cmi_jax import logs
from cmi_jax import vmapped
from cmi_jax.data import sources
from experiments import common
from experiments import multi_digit_mnist
from experiments import sweeps
from experiments.configs import multi_digit as multi_digit_config

# The config fields that may differ inside a vmapped group: arrays of the
# MultiDigitDataset, so cells differing in them share every shape.
VMAP_VARYING = ('seed', 'noise', 'train_corr')


def vmap_varying(config) -> tuple[str, ...]:
  """:data:`VMAP_VARYING`, less ``train_corr`` if the weighting depends on it.

  One trainer has one weighting, and ``subsample`` changes the epoch length.
  """
  if config.group_weighting in ('reweight', 'subsample') or (
      config.group_weighting == 'groupdro' and config.dro_size_adjustment > 0):
    return ('seed', 'noise')
  return VMAP_VARYING


def resolve_cell(base_config, cell):
  """The resolved config of a cell (what its separate run trains with)."""
  config = ml_collections.ConfigDict(base_config.to_dict())
  config.update(cell.overrides())
  return multi_digit_mnist.resolve_config(config)


def run_sweep(base_config, sweep_dir, cells):
  """Runs every unfinished cell; returns the rows of :func:`sweeps.collect`."""
  sweeps.run_cells(sweep_dir, cells,
                   lambda cell, workdir: multi_digit_mnist.train_and_evaluate(
                       resolve_cell(base_config, cell), workdir))
  return _summary(sweep_dir)


def _summary(sweep_dir):
  rows = sweeps.collect(sweep_dir)
  logs.write_json_atomic(os.path.join(sweep_dir, 'summary.json'), rows)
  return rows


def train_group(digits, sweep_dir, cells, configs):
  """Trains cells of one trainer together (vmapped) and writes each one.

  Each member's dataset holds its own copy of the digit bank.
  """
  first = configs[0]
  splits = [multi_digit_mnist.make_splits(config, digits)
            for config in configs]
  num_classes = (2,) * first.num_digits
  # The first member's weighting is every member's (vmap_varying).
  weighting = common.group_weighting(first, splits[0]['train'], num_classes)
  for config, split in zip(configs, splits):
    split['train'] = common.balanced_training_data(config, split['train'],
                                                   num_classes)
  trainer = common.build_trainer(first, first.num_digits,
                                 multi_digit_config.PAPER_OPTIM, weighting)
  example = common.first_batches(splits[0]['train'], 1)['image']
  sweeps.train_group(
      trainer, cells, configs, sweep_dir, example,
      vmapped.stack_datasets([s['train'] for s in splits]),
      {s: [d[s] for d in splits] for s in common.EVAL_SPLITS},
      [{'data': multi_digit_mnist.data_info(config, digits),
        'attributes': list(multi_digit_mnist.attribute_names(config))}
       for config in configs])


def run_vmapped_sweep(base_config, sweep_dir, cells, max_members=None):
  """Runs every unfinished cell, those of one trainer together (vmapped).

  Cells whose resolved configs differ only in :func:`vmap_varying` fields
  train as one group; the others as :func:`experiments.sweeps.run_grouped`
  decides. Returns the rows of :func:`experiments.sweeps.collect`.
  """
  digits = sources.load_digits(base_config.dataset, base_config.source,
                               tfds_data_dir=base_config.tfds_data_dir,
                               manual_dir=base_config.manual_dir)
  configs = {c: resolve_cell(base_config, c) for c in cells}
  sweeps.run_grouped(
      sweep_dir, cells,
      group_key=lambda c: sweeps.config_key(configs[c].to_dict(),
                                            vmap_varying(configs[c])),
      train_group=lambda group: train_group(
          digits, sweep_dir, group, [configs[c] for c in group]),
      run_separately=lambda group: run_sweep(base_config, sweep_dir, group),
      max_members=max_members)
  return _summary(sweep_dir)


def main() -> None:
  """Command line (flags defined here, not at import)."""
  noises = flags.DEFINE_list('noises', ['0', '0.2', '0.4', '0.6', '0.8'],
                             'Occlusion noise levels.')
  corrs = flags.DEFINE_list('train_corrs', ['0', '0.6', '0.9'],
                            'Training correlations.')
  objectives = flags.DEFINE_list('objectives', ['base', 'mi', 'cmi'],
                                 'Objectives.')
  seeds = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')
  vmap, max_members = sweeps.define_vmap_flags('the cells of each objective')
  shard = sweeps.define_shard_flag()

  def body(config, workdir):
    cells = sweeps.grid(objectives.value,
                        sweeps.parse_list(corrs.value, 'train_corrs'),
                        sweeps.parse_list(noises.value, 'noises'),
                        sweeps.parse_list(seeds.value, 'seeds', int))
    index, count = sweeps.parse_shard(shard.value)
    cells = sweeps.select_shard(cells, index, count)
    if count > 1:
      logging.info('Shard %d of %d: %d cells.', index, count, len(cells))
    if vmap.value:
      rows = run_vmapped_sweep(config, workdir, cells, max_members.value)
    else:
      rows = run_sweep(config, workdir, cells)
    print(f'{len(rows)} finished cells in {workdir}')

  common.run_config_main('multi_digit.py', body)


if __name__ == '__main__':
  main()
