r"""Correlated CelebA: the paper's real-image experiment, weakly supervised too.

  python -m experiments.celeba --workdir=/tmp/celeba \
      --config.celeba_dir=/data/celeba [--config.train_corr=0.8 ...]

The splits follow the correlation table exactly (train and val at
``train_corr``, ``test_anti`` at ``-train_corr``, ``test_uncorr`` at 0; see
:func:`cmi_jax.data.celeba.celeba_splits`). Writes to ``workdir`` what every
run writes (:mod:`experiments.driver`) plus ``subpopulation_accuracy.csv``
and ``.md``. Started again with the same
command, a run resumes where it stopped.
"""

from __future__ import annotations

import difflib
import itertools
import os
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import ml_collections
import numpy as np

from cmi_jax import logs
from cmi_jax import validate
from cmi_jax import vmapped
from cmi_jax.data import celeba
from cmi_jax.data import celeba_files
from cmi_jax.data import correlation
from cmi_jax.data import host
from cmi_jax.data.base import GroupBalancedDataset
from experiments import cli
from experiments import common
from experiments import driver
from experiments import sweeps
from experiments.configs import celeba as celeba_config

EVAL_SPLITS = ('train_eval', 'val', 'test_anti', 'test_uncorr')
SOURCES = ('auto', 'tfds', 'files')


def parse_attributes(value: str | Sequence[str]) -> tuple[str, ...]:
  """The K >= 2 attribute names of ``config.attributes``.

  Accepts ``'Male,Smiling'``, ``('Male,Smiling',)`` (what the flag gives a
  tuple field) and ``('Male', 'Smiling')``.
  """
  if isinstance(value, str):
    value = (value,)
  names = tuple(part.strip() for item in value for part in str(item).split(',')
                if part.strip())
  usage = ('set e.g. config.attributes=Male,Smiling (comma-separated, '
           'case-sensitive).')
  unknown = [n for n in names if n not in celeba_files.CELEBA_ATTRIBUTES]
  if unknown:
    hints = {n: difflib.get_close_matches(
        n, celeba_files.CELEBA_ATTRIBUTES, 2, 0.6) for n in unknown}
    hint = '; '.join(f'{n!r}: did you mean {h}?' for n, h in hints.items()
                     if h)
    raise ValueError(
        f'config.attributes: unknown CelebA attributes {unknown}'
        f'{" (" + hint + ")" if hint else ""}; the valid names are '
        f'{list(celeba_files.CELEBA_ATTRIBUTES)}; {usage}')
  if len(names) < 2 or len(set(names)) != len(names):
    raise ValueError(f'config.attributes must name at least two different '
                     f'attributes; got {list(names)}; {usage}')
  return celeba_files.check_attributes(names)


def weak_supervision_schedule(batch_size: int, num_epochs: int,
                              weak_supervision: float,
                              max_epochs: int) -> tuple[int, int]:
  """The paper's ``(batch_size, num_epochs)`` for a fraction of labels removed.

  Both are multiplied by ``1 / (1 - weak_supervision)`` and rounded, so a
  batch holds about ``batch_size`` labels of each attribute and the run
  takes about as many steps as the fully supervised one; the epochs are
  capped at ``max(num_epochs, max_epochs)``. E.g. ``(100, 200, 0.9, 2200)
  -> (1000, 2000)`` and ``(100, 200, 0.95, 2200) -> (2000, 2200)``.
  """
  validate.number(weak_supervision, 'config.weak_supervision', 0, 1,
                  open_high=True, hint='It is the fraction of labels '
                  'removed; 1 would leave none.')
  for name, value in (('batch_size', batch_size), ('num_epochs', num_epochs),
                      ('weak_max_epochs', max_epochs)):
    validate.integer(value, f'config.{name}', 1)
  factor = 1.0 / (1.0 - weak_supervision)
  scaled_epochs = int(round(num_epochs * factor))
  return (int(round(batch_size * factor)),
          max(num_epochs, min(max_epochs, scaled_epochs)))


def check_data_fields(config: ml_collections.ConfigDict) -> None:
  """Checks the data fields before any data is read (ValueError)."""
  validate.choice(config.source, 'config.source', SOURCES)
  validate.choice(config.correlation_mode, 'config.correlation_mode',
                  celeba.CORRELATION_MODES)
  validate.choice(config.data_placement, 'config.data_placement',
                  host.PLACEMENTS)
  if config.get('identical_channels', False):
    raise ValueError(
        'config.identical_channels=True reads only the first channel, which '
        'is right only for gray images made 3-channel; CelebA faces are in '
        'colour. Leave it False.')
  try:
    correlation.joint_table(config.train_corr, len(config.attributes))
  except ValueError as e:
    raise ValueError(f'config.train_corr: {e}') from None
  validate.number(config.noise, 'config.noise (occlusion threshold)', 0, 1)


def check(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The experiment's fields checked, and what follows from them (a copy).

  Normalises ``attributes`` and applies the weak-supervision scaling (then
  ``weak_scaling=False``, so resolving again changes nothing).
  """
  config = ml_collections.ConfigDict(config.to_dict())
  config.attributes = parse_attributes(config.attributes)
  check_data_fields(config)
  common.subspace_sizes(config.z_dim, len(config.attributes))
  batch_size, num_epochs = weak_supervision_schedule(
      config.batch_size, config.num_epochs, config.weak_supervision,
      config.weak_max_epochs)
  if config.weak_scaling:
    config.batch_size, config.num_epochs = batch_size, num_epochs
    config.weak_scaling = False
  return config


def load(config: Any) -> celeba_files.CelebASplits:
  """The official splits of the config's attributes, from its source."""
  return celeba_files.load_celeba(
      tuple(config.attributes), source=config.source,
      tfds_data_dir=config.tfds_data_dir, celeba_dir=config.celeba_dir,
      cache_dir=config.cache_dir)


def splits(config: Any, loaded: celeba_files.CelebASplits) -> driver.Splits:
  """The correlated datasets of a resolved config from loaded CelebA."""
  data = celeba.celeba_splits(
      loaded, config.train_corr, weak_supervision=config.weak_supervision,
      noise=config.noise, batch_size=config.batch_size, seed=config.seed,
      occlusion_patch=config.occlusion_patch,
      placement=config.data_placement,
      correlation_mode=config.correlation_mode)
  evals = {s: data[s] for s in EVAL_SPLITS}
  labels = np.asarray(data['train'].labels)
  # With labels removed, train's counts hold the rows that kept every label.
  counts = {('train (every label kept)' if k == 'train'
             and config.weak_supervision > 0 else k): v
            for k, v in data['joint_counts'].items()}
  info = {
      'dataset': 'celeba', 'source': loaded.source,
      'location': loaded.location, 'attributes': list(loaded.attributes),
      'num_images': {'train': len(loaded.train), 'val': len(loaded.val),
                     'test': len(loaded.test)},
      'num_examples': {s: int(d.labels.shape[0])
                       for s, d in {'train': data['train'], **evals}.items()},
      'labels_per_attribute': (labels >= 0).sum(0).tolist(),
      'weak_supervision': float(config.weak_supervision),
      'batch_size': int(config.batch_size),
      'num_epochs': int(config.num_epochs),
      'placement': data['placement'],  # What 'auto' chose.
      'correlation_mode': data['correlation_mode'],
      'natural_corr': data['natural_corr']}
  return driver.Splits(data['train'], evals, tuple(loaded.attributes),
                       np.shape(data['joint_counts']['val']), counts, info)


def stack(members: Sequence[driver.Splits]) -> tuple[Any, dict[str, Any]]:
  """A vmapped group's data; ``train_eval`` shares the stacked train images.

  Memory: the device holds ``S x N_train x 64 x 64 x 3`` bytes of training
  images (briefly twice, while stacking).
  """
  if isinstance(members[0].train, GroupBalancedDataset):
    raise ValueError(
        'group_weighting=subsample draws each member its own balanced epoch '
        'from images a vmapped group shares; run these cells without vmap.')
  train = vmapped.stack_datasets([m.train for m in members])
  return train, {
      'train_eval': vmapped.Stacked(train.replace(
          labels=jnp.stack([m.evals['train_eval'].labels for m in members]),
          shuffle=False)),
      **{s: [m.evals[s] for m in members] for s in EVAL_SPLITS[1:]}}


def vmap_varying(config: Any) -> tuple[str, ...]:
  """Seed and noise: neither changes a shape nor the trainer.

  ``celeba_splits``' sub-sample sizes follow from the labels and the
  correlation table alone.
  """
  del config
  return ('seed', 'noise')


def subpopulation_rows(results: Mapping[str, Any],
                       attribute_names: Sequence[str],
                       num_classes: Sequence[int]) -> list[dict[str, Any]]:
  """Accuracy of every attribute in every cell of the joint table.

  ``results`` holds epoch records of :data:`experiments.sweeps.SELECTIONS`,
  each with ``eval[split]['accuracy_per_combination']`` ``[C, K]`` and
  ``['combination_count']`` ``[C]``, ``C = prod(num_classes)``. One row per
  (record, split, combination): ``record``, ``epoch``, ``split``, the K
  attribute values, ``count`` and ``accuracy/<name>`` (NaN for an empty
  combination).
  """
  combos = list(itertools.product(*(range(c) for c in num_classes)))
  rows = []
  for name in sweeps.SELECTIONS:
    record = results.get(name)
    if not record:
      continue
    for split, summary in record['eval'].items():
      accuracy = np.array(summary['accuracy_per_combination'], np.float64)
      for c, combo in enumerate(combos):
        row = {'record': name, 'epoch': record['epoch'], 'split': split}
        row.update(zip(attribute_names, combo))
        row['count'] = int(summary['combination_count'][c])
        row.update({f'accuracy/{a}': float(accuracy[c, k])
                    for k, a in enumerate(attribute_names)})
        rows.append(row)
  return rows


def write_subpopulation_tables(results: Mapping[str, Any],
                               attribute_names: Sequence[str],
                               num_classes: Sequence[int],
                               workdir: str) -> dict[str, str]:
  """Writes ``subpopulation_accuracy.csv`` and ``.md`` (the final record)."""
  rows = subpopulation_rows(results, attribute_names, num_classes)
  accuracy = [f'accuracy/{a}' for a in attribute_names]
  header = ['record', 'epoch', 'split', *attribute_names, 'count', *accuracy]
  lines = [f"Accuracy per attribute in each cell of the joint table (final "
           f"epoch {results['final']['epoch']}).", '',
           '| split | ' + ' | '.join(attribute_names) + ' | n | '
           + ' | '.join(f'acc. {a}' for a in attribute_names) + ' |',
           '|---' * (2 * len(attribute_names) + 2) + '|']
  for row in (r for r in rows if r['record'] == 'final'):
    cells = [row['split'], *(str(row[a]) for a in attribute_names),
             str(row['count']),
             *('–' if np.isnan(row[a]) else f'{row[a]:.3f}' for a in accuracy)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return {
      'csv': logs.write_text_atomic(
          os.path.join(workdir, 'subpopulation_accuracy.csv'),
          common.csv_text(rows, header, lineterminator='\n')),
      'md': logs.write_text_atomic(
          os.path.join(workdir, 'subpopulation_accuracy.md'),
          '\n'.join(lines) + '\n'),
  }


def write_extra(workdir: str, results: Mapping[str, Any],
                splits: driver.Splits) -> None:
  """Writes ``subpopulation_accuracy.csv`` and ``.md`` of a finished run."""
  write_subpopulation_tables(results, splits.attributes, splits.num_classes,
                             workdir)


SPEC = driver.Spec('celeba.py', celeba_config.PAPER_OPTIM, check, load,
                   splits, vmap_varying, stack, write_extra)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       allow_change=()) -> dict[str, Any]:
  """Runs ``config`` in ``workdir`` (:func:`experiments.driver.train`)."""
  return driver.train(SPEC, config, workdir, allow_change=allow_change)


def main() -> None:
  """Command line (flags defined here, not at import)."""
  allow_change = cli.define_allow_change_flag()

  def body(config, workdir):
    results = train_and_evaluate(config, workdir,
                                 allow_change=allow_change.value)
    names = results['attributes']
    print(f"data: {results['data']['source']} "
          f"({results['data']['location']}), attributes {', '.join(names)}")
    for split, summary in results['final']['eval'].items():
      per = ', '.join(f'{n} {a:.3f}' for n, a in
                      zip(names, summary['accuracy_per_attribute']))
      print(f"{split:>12}: accuracy {summary['accuracy']:.3f} ({per})")

  cli.run_config_main('celeba.py', body)


if __name__ == '__main__':
  main()
