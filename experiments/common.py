"""What every real-data experiment shares: config -> trainer -> fit -> figures.

An experiment module (``experiments/multi_digit_mnist.py``,
``experiments/celeba.py``) only loads its data into device datasets and calls
:func:`run_experiment` with its config. The config fields read here are
listed in :func:`add_model_fields`.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import jax
import ml_collections
import numpy as np
from absl import flags
from absl import logging

from cmi_jax import logs
from cmi_jax import models
from cmi_jax import plots
from cmi_jax import run
from cmi_jax import train
from cmi_jax.data.base import DeviceDataset, validate_labels
from cmi_jax.metrics import knn_mi

EVAL_SPLITS = ('train_eval', 'val', 'test_anti', 'test_uncorr')
ENCODERS = ('mlp', 'conv')


class _DropLibraryInfo(logging.logging.Filter):
  """Drops INFO records of chatty libraries (orbax logs every save step)."""

  def filter(self, record):
    return record.levelno > logging.logging.INFO or not any(
        part in record.pathname for part in ('/orbax/', '/tensorflow'))


def quiet_library_logs() -> None:
  """Keeps the experiment's own INFO lines, hides the libraries' INFO noise."""
  logging.get_absl_handler().addFilter(_DropLibraryInfo())


def parse_private_flags(flag_values: Any, argv: Sequence[str]
                        ) -> Optional[dict[str, Any]]:
  """Parses ``argv`` with a module's private ``absl.flags.FlagValues``.

  For experiment modules whose ``main(argv)`` is also called from Python
  (tests, notebooks), where global flags would clash between modules.

  Returns:
    ``{flag name: value}``, or None after printing the help for ``--help``.

  Raises:
    ValueError: one message for an unknown or malformed flag, or positional
      arguments, naming the fix.
  """
  if any(arg in ('-h', '--help', '--helpfull') for arg in argv[1:]):
    print(flag_values.get_help())
    return None
  try:
    extra = flag_values(list(argv))
  except flags.Error as e:
    raise ValueError(f'bad command line: {e}. Run with --help for the flags.'
                     ) from None
  if len(extra) > 1:
    raise ValueError(f'unexpected positional arguments {extra[1:]}; all '
                     'options are --flag=value.')
  return {name: flag_values[name].value for name in flag_values}


def add_model_fields(config: ml_collections.ConfigDict) -> None:
  """Adds the model, optimiser and run fields every experiment config has.

  ``lr``, ``cls_lr`` and ``d_lr`` default to None, meaning "the paper's value
  for this objective" (see :func:`resolve_optim`).
  """
  placeholder = ml_collections.config_dict.placeholder
  config.objective = 'cmi'
  config.disentangle_weight = 1.0
  config.encoder = 'mlp'
  config.z_dim = 10
  config.hidden = (50, 50)
  config.conv_channels = (32, 64, 64)
  # The images' channels are copies of one gray channel (multi-digit): the
  # encoder's first layer then reads one channel against the channel-summed
  # kernel, the same model at a third of its FLOPs (models.MLP).
  config.identical_channels = False
  config.adversary_hidden = (50, 50)
  config.mmd_bandwidths = (1.0,)
  config.lr = placeholder(float)
  config.cls_lr = placeholder(float)
  config.d_lr = placeholder(float)
  # Multiplies the paper's learning rates (not explicit --config.lr etc.):
  # a shorter budget of steps can keep the paper's ratios between players.
  config.lr_scale = 1.0
  config.betas = (0.9, 0.999)
  config.d_betas = (0.9, 0.999)
  config.num_cls_steps = 1
  config.num_epochs = 400
  config.batch_size = 100
  config.seed = 0
  config.eval_every = 1
  config.checkpoint_every = 10
  config.keep_checkpoints = 2
  config.log_every_steps = 0
  config.mi_every = 50  # epochs between kNN MI estimates (0: never)
  config.mi_max_rows = 2000
  config.progress = placeholder(bool)
  config.tensorboard = True


def resolve_optim(config: ml_collections.ConfigDict,
                  paper: Mapping[str, Mapping[str, float]]) -> train.OptimConfig:
  """The optimiser settings; unset learning rates are ``paper``'s times ``lr_scale``.

  Args:
    config: experiment config (``lr``, ``cls_lr``, ``d_lr`` may be None).
    paper: objective -> {'lr', 'cls_lr', 'd_lr'} reference values.
  """
  if config.objective not in paper:
    raise ValueError(f'objective {config.objective!r} is unknown; choose one '
                     f'of {tuple(paper)}.')
  defaults = paper[config.objective]
  scale = config.get('lr_scale', 1.0)  # Absent in configs saved before it.
  pick = lambda name: (defaults[name] * scale if config[name] is None
                       else float(config[name]))
  return train.OptimConfig(
      lr=pick('lr'), cls_lr=pick('cls_lr'), d_lr=pick('d_lr'),
      betas=tuple(config.betas), d_betas=tuple(config.d_betas),
      num_cls_steps=int(config.num_cls_steps))


def subspace_sizes(z_dim: int, num_attributes: int) -> tuple[int, ...]:
  """Equal contiguous subspaces, one per attribute (the paper: 10 -> (5, 5))."""
  if z_dim % num_attributes:
    raise ValueError(
        f'z_dim={z_dim} does not split into {num_attributes} equal subspaces; '
        f'set --config.z_dim to a multiple of {num_attributes}.')
  return (z_dim // num_attributes,) * num_attributes


def build_trainer(config: ml_collections.ConfigDict, num_attributes: int,
                  paper: Mapping[str, Mapping[str, float]]) -> train.Trainer:
  """The engine for an experiment config (encoder, heads, adversaries)."""
  if config.encoder not in ENCODERS:
    raise ValueError(f'encoder {config.encoder!r} is unknown; choose one of '
                     f'{ENCODERS}.')
  # Absent in configs saved before the field existed.
  identical = bool(config.get('identical_channels', False))
  if config.encoder == 'mlp':
    encoder = models.MLPEncoder(config.z_dim, tuple(config.hidden),
                                identical_channels=identical)
  else:
    encoder = models.ConvEncoder(config.z_dim, tuple(config.conv_channels),
                                 tuple(config.hidden[-1:]),
                                 identical_channels=identical)
  if config.objective not in train.OBJECTIVES:
    raise ValueError(f'objective {config.objective!r} is unknown; choose one '
                     f'of {train.OBJECTIVES}.')
  return train.make_trainer(
      encoder, config.objective,
      subspace_sizes(config.z_dim, num_attributes), (2,) * num_attributes,
      resolve_optim(config, paper),
      adversary_hidden=tuple(config.adversary_hidden),
      mmd_bandwidths=tuple(config.mmd_bandwidths))


def fit_config(config: ml_collections.ConfigDict) -> run.FitConfig:
  """The :class:`run.FitConfig` (epochs, evaluation, checkpoints) of a config."""
  return run.FitConfig(
      num_epochs=config.num_epochs, eval_every=config.eval_every,
      checkpoint_every=config.checkpoint_every,
      keep_checkpoints=config.keep_checkpoints,
      log_every_steps=config.log_every_steps, progress=config.progress,
      tensorboard=config.tensorboard)


def mi_hook(subspaces: Sequence[int], every: int, max_rows: int,
            splits: Sequence[str] = ('test_uncorr',), seed: int = 0
            ) -> Optional[run.EpochHook]:
  """An epoch hook with kNN estimates of I(z1;z2), I(z_k;s_j), I(z1;z2|s_k), ...

  Runs every ``every`` epochs on the codes of ``splits`` (at most
  ``max_rows`` rows, for time); keys are ``'<split>/<term>'`` in nats.
  """
  if every <= 0:
    return None

  def hook(epoch, state, stats):
    del state
    if epoch % every:
      return {}
    out = {}
    for split in splits:
      codes = stats[split]['z'][stats[split]['mask'] > 0]
      labels = stats[split]['labels'][stats[split]['mask'] > 0]
      report = knn_mi.latent_mi_report(codes, labels, subspaces,
                                       max_rows=max_rows, seed=seed)
      out.update({f'{split}/{k}': v for k, v in report.items()})
    return out
  return hook


def set_epoch_size(dataset: DeviceDataset, epoch_size: int) -> DeviceDataset:
  """A training set with ``epoch_size // batch_size`` steps per epoch.

  For i.i.d. streams (multi-digit, synthetic) the epoch is only a unit of
  training length; this keeps the data and changes that unit.
  """
  if epoch_size < dataset.batch_size:
    raise ValueError(
        f'epoch_size={epoch_size} is smaller than one batch '
        f'({dataset.batch_size}); use at least the batch size.')
  return dataset.replace(steps_per_epoch=epoch_size // dataset.batch_size)


def combination_names(num_attributes: int) -> list[str]:
  """Names of the ``2**K`` label combinations in row-major order ('00', ...)."""
  return [format(i, f'0{num_attributes}b') for i in range(2**num_attributes)]


def first_batches(dataset: DeviceDataset, count: int) -> dict[str, np.ndarray]:
  """At least ``count`` examples from the first batches of a dataset."""
  plan = dataset.epoch_plan(jax.random.PRNGKey(0))
  batches, total = [], 0
  for step in range(dataset.steps_per_epoch):
    batch = jax.device_get(dataset.batch(plan, step))
    batches.append(batch)
    total += len(batch['labels'])
    if total >= count:
      break
  return {k: np.concatenate([b[k] for b in batches])[:count]
          for k in batches[0]}


def check_data(data: Mapping[str, DeviceDataset], num_attributes: int) -> None:
  """Checks the labels of the first batch of every split (host side)."""
  for name, dataset in data.items():
    batch = first_batches(dataset, 1)
    validate_labels(batch['labels'], (2,) * num_attributes,
                    where=f'the first batch of split {name!r}')


def run_experiment(config: ml_collections.ConfigDict, workdir: str,
                   data: Mapping[str, DeviceDataset], *,
                   attribute_names: Sequence[str],
                   paper_optim: Mapping[str, Mapping[str, float]],
                   joint_counts: Mapping[str, np.ndarray],
                   data_info: Mapping[str, Any]) -> dict[str, Any]:
  """Trains, evaluates and draws one experiment.

  Args:
    config: the experiment config (see :func:`add_model_fields`).
    workdir: output directory.
    data: ``'train'`` plus the evaluation splits of :data:`EVAL_SPLITS`.
    attribute_names: K names (for figures and results).
    paper_optim: objective -> reference learning rates.
    joint_counts: split -> joint label counts ``(2,) * K``.
    data_info: what was loaded (source, dataset, ...), saved in the results.

  Returns:
    The results written to ``workdir/results.json`` (plus ``'state'``).
  """
  missing = [s for s in ('train',) + EVAL_SPLITS if s not in data]
  if missing:
    raise ValueError(f'the experiment needs the splits {missing}; got '
                     f'{sorted(data)}.')
  num_attributes = len(attribute_names)
  check_data(data, num_attributes)
  trainer = build_trainer(config, num_attributes, paper_optim)
  os.makedirs(workdir, exist_ok=True)
  figures = os.path.join(workdir, 'figures')
  if jax.process_index() == 0:
    logs.write_json_atomic(os.path.join(workdir, 'joint_counts.json'),
                           {k: np.asarray(v) for k, v in joint_counts.items()})
    plots.joint_count_tables(joint_counts, attribute_names,
                             os.path.join(figures, 'joint_counts.png'))
    for split in ('train',) + EVAL_SPLITS:
      sample = first_batches(data[split], 16)
      plots.image_grid(sample['image'], sample['labels'],
                       os.path.join(figures, f'samples_{split}.png'),
                       f'{split}: labels ({", ".join(attribute_names)})')

  example = first_batches(data['train'], data['train'].batch_size)['image']
  state = trainer.init(jax.random.PRNGKey(config.seed), example,
                       config.disentangle_weight)
  logging.info('Training %s for %d epochs of %d steps in %s.',
               config.objective, config.num_epochs,
               data['train'].steps_per_epoch, workdir)
  eval_data = {s: data[s] for s in EVAL_SPLITS}
  result = run.fit(
      trainer, state, data['train'], eval_data, workdir, fit_config(config),
      run_config={'config': config.to_dict(), 'data': dict(data_info)},
      epoch_hook=mi_hook(trainer.subspaces, config.mi_every,
                         config.mi_max_rows, seed=config.seed))
  state = result.pop('state')
  result['data'] = dict(data_info)
  result['attributes'] = list(attribute_names)
  result['objective'] = config.objective
  if jax.process_index() == 0:
    logs.write_json_atomic(os.path.join(workdir, 'results.json'), result)
    draw_run_figures(trainer, state, eval_data, workdir, attribute_names)
  return {'state': state, **result}


def draw_run_figures(trainer: train.Trainer, state: train.TrainState,
                     eval_data: Mapping[str, DeviceDataset], workdir: str,
                     attribute_names: Sequence[str]) -> list[str]:
  """The figures of a finished run, from its final state and log."""
  from cmi_jax import evaluation  # Local: evaluation imports train.
  figures = os.path.join(workdir, 'figures')
  names = combination_names(len(attribute_names))
  paths = [plots.training_curves(
      logs.read_jsonl(os.path.join(workdir, 'log.jsonl')),
      os.path.join(figures, 'curves.png'))]
  for split in ('test_anti', 'test_uncorr'):
    summary = evaluation.summarize(
        evaluation.evaluate(trainer, state, eval_data[split]))
    paths.append(plots.confusion_matrix(
        np.asarray(summary['confusion']), names,
        os.path.join(figures, f'confusion_{split}.png'),
        f'{split}: joint predictions'))
    paths.append(plots.latent_correlation(
        np.asarray(summary['z_correlation']), trainer.subspaces,
        os.path.join(figures, f'latent_correlation_{split}.png'),
        f'{split}: correlation of z'))
    paths.append(plots.subpopulation_accuracy(
        np.asarray(summary['accuracy_per_combination']),
        np.asarray(summary['combination_count']), attribute_names, names,
        os.path.join(figures, f'subpopulation_accuracy_{split}.png'),
        f'{split}: accuracy per attribute in each combination'))
    sample = first_batches(eval_data[split], 32)
    preds = np.asarray(trainer.predict_from_codes(
        state.heads_params,
        trainer.encoder.apply(state.encoder_params, sample['image'])))
    paths.append(plots.image_grid(
        sample['image'], sample['labels'],
        os.path.join(figures, f'predictions_{split}.png'),
        f'{split}: label → prediction', preds=preds))
  return paths
