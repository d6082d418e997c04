"""The figures of a run: its data, then its final state (PNG files).

Drawn into ``workdir/figures`` with the primitives of :mod:`cmi_jax.plots`
from a run's :class:`~cmi_jax.data.base.Splits`, its trainer and state.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from cmi_jax import attributes
from cmi_jax import evaluation
from cmi_jax import logs
from cmi_jax import plots
from cmi_jax import train
from cmi_jax.data import base as data_base
from cmi_jax.data.base import Splits


def combination_names(num_classes: Sequence[int]) -> list[str]:
  """Names of the combinations of the categorical attributes' labels, in
  row-major order ('00', '01', ...)."""
  return [''.join(map(str, combo)) for combo in itertools.product(
      *(range(num_classes[k]) for k in attributes.categorical(num_classes)))]


def _path(workdir: str, name: str) -> str:
  return os.path.join(workdir, 'figures', f'{name}.png')


def data_figures(splits: Splits, train_data: Any, workdir: str) -> None:
  """The joint label counts and sample images of every split.

  ``train_data``: the training set as trained (group-balanced with
  ``subsample``), in place of ``splits.train``.
  """
  categorical = attributes.categorical(splits.num_classes)
  plots.joint_count_tables(splits.joint_counts,
                           [splits.attributes[k] for k in categorical],
                           _path(workdir, 'joint_counts'))
  for name, data in {'train': train_data, **splits.evals}.items():
    sample = data_base.first_batches(data, 16)
    plots.image_grid(sample['image'], sample['labels'],
                     _path(workdir, f'samples_{name}'),
                     f'{name}: labels ({", ".join(splits.attributes)})',
                     class_names=splits.info.get('class_names'),
                     num_classes=splits.num_classes)


def run_figures(trainer: train.Trainer, state: train.TrainState,
                splits: Splits, workdir: str, *,
                final_eval: Optional[Mapping[str, Any]] = None,
                shifted: Sequence[str] = ('test_anti', 'test_uncorr')
                ) -> list[str]:
  """The figures of a finished run, from its final state and log.

  Training curves, then for each ``shifted`` split its joint confusion,
  latent correlation, accuracy per label combination and predictions.
  ``final_eval``: the ``final`` record's ``eval`` (evaluated again from
  ``state`` where it lacks a split).
  """
  names = combination_names(splits.num_classes)
  categorical = list(attributes.categorical(splits.num_classes))
  paths = [plots.training_curves(
      logs.read_jsonl(os.path.join(workdir, 'log.jsonl')),
      _path(workdir, 'curves'))]
  for split in shifted:
    data = splits.evals[split]
    summary = (final_eval or {}).get(split) or evaluation.summarize(
        evaluation.evaluate(trainer, state, data))
    paths.append(plots.confusion_matrix(
        np.asarray(summary['confusion']), names,
        _path(workdir, f'confusion_{split}'), f'{split}: joint predictions'))
    paths.append(plots.latent_correlation(
        np.asarray(summary['z_correlation'], float),
        trainer.objective.subspaces,
        _path(workdir, f'latent_correlation_{split}'),
        f'{split}: correlation of z'))
    paths.append(plots.subpopulation_accuracy(
        np.asarray(summary['accuracy_per_combination'], float)[:, categorical],
        np.asarray(summary['combination_count']),
        [splits.attributes[k] for k in categorical], names,
        _path(workdir, f'subpopulation_accuracy_{split}'),
        f'{split}: accuracy per attribute in each combination'))
    sample = data_base.first_batches(data, 32)
    preds = np.asarray(trainer.predict_from_codes(
        state.heads_params,
        trainer.encoder.apply(state.encoder_params, sample['image'])))
    paths.append(plots.image_grid(
        sample['image'], sample['labels'],
        _path(workdir, f'predictions_{split}'),
        f'{split}: label → prediction', preds=preds,
        class_names=splits.info.get('class_names'),
        num_classes=splits.num_classes))
  return paths
