r"""Correlated multi-digit MNIST: the paper's main experiment.

  python -m experiments.multi_digit_mnist --workdir=/tmp/md \
      [--config.objective=cmi --config.train_corr=0.9 --config.noise=0.8 ...]

Writes to ``workdir``: ``results.json``, ``log.jsonl``, ``tb/``,
``checkpoints/``, ``config.json``, ``joint_counts.json`` and ``figures/``.
Started again with the same command, a run resumes where it stopped.
"""

from __future__ import annotations

from typing import Any

from absl import app
from absl import flags
from absl import logging
import ml_collections
import numpy as np
from ml_collections import config_flags

from experiments import common
from cmi_jax.data import correlation
from cmi_jax.data import multi_digit
from cmi_jax.data import sources
from experiments.configs import multi_digit as multi_digit_config

def resolve_config(config: ml_collections.ConfigDict
                   ) -> ml_collections.ConfigDict:
  """Applies ``config.fast`` (a copy; the input is left as it is)."""
  config = ml_collections.ConfigDict(config.to_dict())
  if config.fast:
    config.update(multi_digit_config.FAST)
  return config


def make_splits(config: ml_collections.ConfigDict, digits: Any
                ) -> dict[str, Any]:
  """The train and evaluation splits of ``config`` from loaded ``digits``."""
  splits = multi_digit.multi_digit_splits(
      digits, tuple(config.classes), config.num_digits, config.train_corr,
      config.noise, config.patch, config.batch_size, config.seed)
  if config.epoch_size is not None:
    splits['train'] = common.set_epoch_size(splits['train'],
                                                config.epoch_size)
  return splits


def load_data(config: ml_collections.ConfigDict):
  """``(digits, splits, joint_counts)`` of the config's data."""
  digits = sources.load_digits(config.dataset, config.source,
                               tfds_data_dir=config.tfds_data_dir,
                               manual_dir=config.manual_dir)
  logging.info('Digits from %s: %s', digits.source, digits.num_examples())
  splits = make_splits(config, digits)
  counts = {'train (expected per epoch)': np.asarray(
      splits['train'].table) * splits['train'].steps_per_epoch
            * splits['train'].batch_size}
  for name in common.EVAL_SPLITS:
    counts[name] = correlation.joint_counts(np.asarray(splits[name].labels))
  return digits, splits, counts


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Runs the experiment of ``config`` in ``workdir``; returns its results."""
  config = resolve_config(config)
  digits, splits, counts = load_data(config)
  names = tuple(f'digit{k}' for k in range(config.num_digits))
  info = {'dataset': digits.dataset, 'source': digits.source,
          'num_images': digits.num_examples(),
          'classes': list(config.classes)}
  return common.run_experiment(
      config, workdir, splits, attribute_names=names,
      paper_optim=multi_digit_config.PAPER_OPTIM, joint_counts=counts,
      data_info=info)


def main() -> None:
  """Command line: flags are defined here, not at import, so that modules
  composing this one (the sweep) can define their own."""
  config_flag = config_flags.DEFINE_config_dict(
      'config', multi_digit_config.get_config(), lock_config=True)
  workdir_flag = flags.DEFINE_string('workdir', None, 'Output directory.')

  def run(argv):
    common.quiet_library_logs()
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    if not workdir_flag.value:
      raise app.UsageError('--workdir is required (the output directory).')
    results = train_and_evaluate(config_flag.value, workdir_flag.value)
    print(f"data: {results['data']['source']}")
    for split, summary in results['final']['eval'].items():
      print(f"{split:>12}: accuracy {summary['accuracy']:.3f} "
            f"per digit {np.round(summary['accuracy_per_attribute'], 3)}")

  app.run(run)


if __name__ == '__main__':
  main()
