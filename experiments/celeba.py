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

import functools
import os
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import ml_collections
import numpy as np

from cmi_jax import logs
from cmi_jax import records
from cmi_jax import validate
from cmi_jax import vmapped
from cmi_jax.data import celeba
from cmi_jax.data import celeba_files
from cmi_jax.data import host
from cmi_jax.data.base import GroupBalancedDataset, Splits
from experiments import common
from experiments import driver
from experiments.configs import celeba as celeba_config

EVAL_SPLITS = ('train_eval', 'val', 'test_anti', 'test_uncorr')


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
  factor = 1.0 / (1.0 - weak_supervision)
  scaled_epochs = int(round(num_epochs * factor))
  return (int(round(batch_size * factor)),
          max(num_epochs, min(max_epochs, scaled_epochs)))


def check(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The experiment's fields checked before any data is read, and what
  follows from them: normalised ``attributes`` and the weak-supervision
  scaling (then ``weak_scaling=False``, so resolving again changes nothing).
  """
  try:  # The flag gives a tuple field one string: 'Male,Smiling'.
    config.attributes = celeba_files.check_attributes(config.attributes, 2)
  except ValueError as e:
    raise ValueError(f'config.attributes: {e} Set e.g. '
                     'config.attributes=Male,Smiling (comma-separated).'
                     ) from None
  validate.choice(config.source, 'config.source', ('auto', 'tfds', 'files'))
  validate.choice(config.correlation_mode, 'config.correlation_mode',
                  celeba.CORRELATION_MODES)
  validate.choice(config.data_placement, 'config.data_placement',
                  host.PLACEMENTS)
  if config.identical_channels:
    raise ValueError(
        'config.identical_channels=True reads only the first channel, which '
        'is right only for gray images made 3-channel; CelebA faces are in '
        'colour. Leave it False.')
  common.check_data_fields(config, len(config.attributes))
  validate.number(config.weak_supervision, 'config.weak_supervision', 0, 1,
                  open_high=True, hint='It is the fraction of labels '
                  'removed; 1 would leave none.')
  validate.integer(config.weak_max_epochs, 'config.weak_max_epochs', 1)
  if config.weak_scaling:
    config.batch_size, config.num_epochs = weak_supervision_schedule(
        config.batch_size, config.num_epochs, config.weak_supervision,
        config.weak_max_epochs)
    config.weak_scaling = False
  return config


def load(config: Any) -> celeba_files.CelebASplits:
  """The official splits of the config's attributes, from its source."""
  return celeba_files.load_celeba(
      tuple(config.attributes), source=config.source,
      tfds_data_dir=config.tfds_data_dir, celeba_dir=config.celeba_dir,
      cache_dir=config.cache_dir)


def splits(config: Any, loaded: celeba_files.CelebASplits) -> Splits:
  """The correlated datasets of a resolved config from loaded CelebA."""
  data = celeba.celeba_splits(
      loaded, config.train_corr, weak_supervision=config.weak_supervision,
      noise=config.noise, batch_size=config.batch_size, seed=config.seed,
      occlusion_patch=config.occlusion_patch,
      placement=config.data_placement,
      correlation_mode=config.correlation_mode)
  evals = {s: data[s] for s in EVAL_SPLITS}
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
      'labels_per_attribute': (np.asarray(data['train'].labels) >= 0).sum(
          0).tolist(),
      'weak_supervision': float(config.weak_supervision),
      'batch_size': int(config.batch_size),
      'num_epochs': int(config.num_epochs),
      'placement': data['placement'],  # What 'auto' chose.
      'correlation_mode': data['correlation_mode'],
      'natural_corr': data['natural_corr']}
  return Splits(data['train'], evals, tuple(loaded.attributes),
                       np.shape(data['joint_counts']['val']), counts, info)


def stack(members: Sequence[Splits]) -> tuple[Any, dict[str, Any]]:
  """A vmapped group's data; ``train_eval`` shares the stacked train images.

  Memory: the device holds ``S x N_train x 64 x 64 x 3`` bytes of training
  images (briefly twice, while stacking).
  """
  if isinstance(members[0].train, GroupBalancedDataset):
    raise ValueError(
        'group_weighting=subsample draws each member its own balanced epoch '
        'from images a vmapped group shares; run these cells without vmap.')
  train, evals = driver.stack_members(members)
  evals['train_eval'] = vmapped.Stacked(train.replace(
      labels=jnp.stack([m.evals['train_eval'].labels for m in members]),
      shuffle=False))
  return train, evals


def write_extra(workdir: str, results: Mapping[str, Any],
                splits: Splits) -> None:
  """Writes ``subpopulation_accuracy.csv`` and ``.md``
  (:func:`cmi_jax.records.subpopulation_tables`)."""
  tables = records.subpopulation_tables(results, splits.attributes,
                                        splits.num_classes)
  for suffix, text in zip(('csv', 'md'), tables):
    logs.write_text_atomic(
        os.path.join(workdir, f'subpopulation_accuracy.{suffix}'), text)


def report(results: Mapping[str, Any]) -> None:
  """Prints a run's data and its accuracy per split and attribute."""
  names = results['attributes']
  print(f"data: {results['data']['source']} "
        f"({results['data']['location']}), attributes {', '.join(names)}")
  for split, summary in results['final']['eval'].items():
    per = ', '.join(f'{n} {a:.3f}' for n, a in
                    zip(names, summary['accuracy_per_attribute']))
    print(f"{split:>12}: accuracy {summary['accuracy']:.3f} ({per})")


# Seed and noise change neither a shape nor the trainer: celeba_splits'
# sub-sample sizes follow from the labels and the correlation table alone.
SPEC = driver.Spec('celeba.py', celeba_config.PAPER_OPTIM, check, load,
                   splits, lambda config: ('seed', 'noise'), stack,
                   write_extra)
train_and_evaluate = functools.partial(driver.train, SPEC)

if __name__ == '__main__':
  driver.main(SPEC, report)
