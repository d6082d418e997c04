"""The config of every real-data experiment, and config -> engine.

The model, optimiser and run fields every experiment config has
(:func:`add_model_fields`), their checks, the learning rates a run resolves,
and the trainer, group weighting and MI hook a resolved config makes.
Messages name config fields (``config.z_dim``); the command line
(:mod:`experiments.cli`) prints them as flags.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Optional, Sequence

import ml_collections

from cmi_jax import groups
from cmi_jax import models
from cmi_jax import objectives
from cmi_jax import records
from cmi_jax import train
from cmi_jax import validate
from cmi_jax.data import base as data_base
from cmi_jax.data import correlation
from cmi_jax.metrics import knn_mi

ENCODERS = ('mlp', 'conv')


def add_model_fields(config: ml_collections.ConfigDict) -> None:
  """Adds the model, optimiser and run fields every experiment config has.

  ``lr``, ``cls_lr`` and ``d_lr`` default to None: the paper's value for the
  objective times ``lr_scale`` (:func:`resolve_learning_rates`).
  """
  placeholder = ml_collections.config_dict.placeholder
  config.objective = 'cmi'
  config.disentangle_weight = 1.0
  config.encoder = 'mlp'
  config.z_dim = 10
  config.hidden = (50, 50)
  config.conv_channels = (32, 64, 64)
  # For copies of one gray channel: the first layer reads one channel against
  # the channel-summed kernel, the same model (models.MLP).
  config.identical_channels = False
  config.adversary_hidden = (50, 50)
  config.mmd_bandwidths = (1.0,)
  # Rows per block of close values of a continuous attribute in the
  # conditional objectives (None: round(sqrt(batch_size))).
  config.block_size = placeholder(int)
  # The kernel objectives (hsic_cmi, hscic, circe): Gaussian bandwidths on
  # the codes (None: each batch's median) and on one-hot labels, the ridge
  # of their label regressions, and CIRCE's held-out rows as a fraction of
  # the training epoch.
  config.kernel_sigma2 = placeholder(float)
  config.kernel_label_sigma2 = 1.0
  config.kernel_ridge = 0.1
  config.circe_heldout = 0.1
  # Of the heads' cross-entropy (cmi_jax.groups); GroupDRO's eta and C.
  config.group_weighting = 'none'
  config.dro_step_size = 0.01
  config.dro_size_adjustment = 0.0
  config.lr = placeholder(float)
  config.cls_lr = placeholder(float)
  config.d_lr = placeholder(float)
  # Scales the paper's learning rates only, keeping their ratios.
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


# Fields that only change how a run reports or where it reads its read-only
# inputs from, not what it computes: they may differ when a run resumes
# ('location' is where CelebA was found, in the saved data info).
COSMETIC_FIELDS = ('progress', 'tensorboard', 'log_every_steps',
                   'keep_checkpoints', 'checkpoint_every', 'tfds_data_dir',
                   'manual_dir', 'cache_dir', 'celeba_dir', 'location',
                   'data_placement')

LEARNING_RATES = ('lr', 'cls_lr', 'd_lr')


def check_run_fields(config: ml_collections.ConfigDict) -> None:
  """Refuses values that cannot make a meaningful run (ValueError)."""
  validate.choice(config.objective, 'config.objective', objectives.names())
  # Positive where set (None: the paper's rate, the batch median).
  for name in LEARNING_RATES + ('lr_scale', 'kernel_sigma2',
                                'kernel_label_sigma2', 'kernel_ridge'):
    if config[name] is not None:
      validate.number(config[name], f'config.{name}', 0, open_low=True)
  validate.number(config.disentangle_weight,
                  'config.disentangle_weight (lambda)', 0)
  for name in ('num_epochs', 'batch_size', 'eval_every', 'checkpoint_every',
               'keep_checkpoints', 'num_cls_steps', 'z_dim'):
    validate.integer(config[name], f'config.{name}', 1)
  for name in ('mi_every', 'log_every_steps'):
    validate.integer(config[name], f'config.{name}', 0)
  if config.block_size is not None:
    validate.integer(config.block_size, 'config.block_size', 2,
                     hint='None: round(sqrt(batch_size)).')
  validate.choice(config.encoder, 'config.encoder', ENCODERS)
  validate.choice(config.group_weighting, 'config.group_weighting',
                  groups.METHODS)
  validate.number(config.dro_step_size,
                  'config.dro_step_size (GroupDRO eta)', 0, open_low=True)
  validate.number(config.dro_size_adjustment,
                  'config.dro_size_adjustment (GroupDRO C)', 0)
  validate.number(config.circe_heldout, 'config.circe_heldout', 0, 1,
                  open_low=True)


def resolve_learning_rates(config: ml_collections.ConfigDict,
                           paper: Mapping[str, Mapping[str, float]]
                           ) -> ml_collections.ConfigDict:
  """``config`` with every unset learning rate set to ``paper``'s x
  ``lr_scale`` (in place, of a checked config)."""
  for name in LEARNING_RATES:
    if config[name] is None:
      config[name] = paper[config.objective][name] * config.lr_scale
  return config


def check_data_fields(config: ml_collections.ConfigDict,
                      num_attributes: int) -> None:
  """Checks the data fields every experiment has: ``train_corr`` (a joint
  table of ``num_attributes``), ``noise`` and ``z_dim`` (equal subspaces)."""
  try:
    correlation.joint_table(config.train_corr, num_attributes)
  except ValueError as e:
    raise ValueError(f'config.train_corr: {e}') from None
  validate.number(config.noise, 'config.noise (occlusion threshold)', 0, 1)
  subspace_sizes(config.z_dim, num_attributes)


def settings(cls: type, config: Any) -> Any:
  """The dataclass ``cls`` from the config's fields of its fields' names."""
  # Tuples, also from a config read back from JSON (they are hashed).
  return cls(**{f.name: tuple(config[f.name])
                if isinstance(config[f.name], list) else config[f.name]
                for f in dataclasses.fields(cls) if f.name in config})


def resolve_optim(config: Any) -> train.OptimConfig:
  """The optimiser settings of a resolved config."""
  return settings(train.OptimConfig, config)


def subspace_sizes(z_dim: int, num_attributes: int) -> tuple[int, ...]:
  """Equal contiguous subspaces, one per attribute (the paper: 10 -> (5, 5))."""
  if z_dim % num_attributes:
    raise ValueError(
        f'z_dim={z_dim} does not split into {num_attributes} equal subspaces; '
        f'set config.z_dim to a multiple of {num_attributes}.')
  return (z_dim // num_attributes,) * num_attributes


def group_weighting(config: ml_collections.ConfigDict, train_data: Any,
                    num_classes: Sequence[int]) -> groups.GroupWeighting:
  """The :class:`cmi_jax.groups.GroupWeighting` of a checked config."""
  method = config.group_weighting
  counts = (data_base.group_counts(train_data, num_classes)
            if method in ('reweight', 'groupdro') else None)
  try:
    return groups.GroupWeighting(
        method,
        group_freqs=(tuple(counts / counts.sum()) if method == 'reweight'
                     else None),
        group_counts=(tuple(counts) if method == 'groupdro' else None),
        dro_step_size=float(config.dro_step_size),
        dro_size_adjustment=float(config.dro_size_adjustment))
  except ValueError as e:
    raise ValueError(f'config.group_weighting={method}: {e}') from None


def balanced_training_data(config: Any, train_data: Any,
                           num_classes: Sequence[int]) -> Any:
  """The training set of ``group_weighting=subsample`` (else ``train_data``)."""
  if config.group_weighting != 'subsample':
    return train_data
  return data_base.subsample_balanced(train_data, num_classes)


def build_trainer(config: Any, splits: Any) -> train.Trainer:
  """The engine of a resolved config for its data.

  ``splits`` (:class:`cmi_jax.data.base.Splits`) give the class counts and
  the training group counts of the group weighting.
  """
  num_classes = tuple(splits.num_classes)
  identical = bool(config.identical_channels)
  if config.encoder == 'mlp':
    encoder = models.MLPEncoder(config.z_dim, tuple(config.hidden),
                                identical_channels=identical)
  else:
    encoder = models.ConvEncoder(config.z_dim, tuple(config.conv_channels),
                                 tuple(config.hidden[-1:]),
                                 identical_channels=identical)
  return train.make_trainer(
      encoder, config.objective,
      subspace_sizes(config.z_dim, len(num_classes)), num_classes,
      resolve_optim(config),
      adversary_hidden=tuple(config.adversary_hidden),
      mmd_bandwidths=tuple(config.mmd_bandwidths),
      block_size=config.block_size,
      kernel_sigma2=config.kernel_sigma2,
      kernel_label_sigma2=config.kernel_label_sigma2,
      kernel_ridge=config.kernel_ridge,
      circe_heldout_labels=(
          data_base.heldout_labels(splits.train, num_classes,
                                   config.circe_heldout)
          if config.objective == 'circe' else None),
      group_weighting=group_weighting(config, splits.train, num_classes))


def mi_hook(config: Any, subspaces: Sequence[int]
            ) -> Optional[records.EpochHook]:
  """An epoch hook with kNN estimates of I(z1;z2), I(z_k;s_j), I(z1;z2|s_k), ...

  Runs every ``config.mi_every`` epochs (None if it is 0) on at most
  ``config.mi_max_rows`` codes of ``test_uncorr``; keys are
  ``'test_uncorr/<term>'``, in nats.
  """
  if config.mi_every <= 0:
    return None

  def hook(epoch, state, stats):
    del state
    if epoch % config.mi_every:
      return {}
    split = stats['test_uncorr']
    keep = split['mask'] > 0
    report = knn_mi.latent_mi_report(
        split['z'][keep], split['labels'][keep], subspaces,
        max_rows=config.mi_max_rows, seed=config.seed)
    return {f'test_uncorr/{k}': v for k, v in report.items()}
  return hook


def config_with(config: ml_collections.ConfigDict,
                changes: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A copy of ``config`` with ``changes`` (a nested mapping per sub-config).

  Raises:
    ValueError: for a name the config lacks or a value of the wrong type.
  """
  config = ml_collections.ConfigDict(config.to_dict())

  def apply(target, updates, prefix):
    for name, value in updates.items():
      if name not in target:
        raise ValueError(f'{prefix}{name} is not a setting; the settings are: '
                         f'{", ".join(sorted(target.keys()))}.')
      if isinstance(target[name], ml_collections.ConfigDict):
        if not hasattr(value, 'keys'):
          raise ValueError(f'{prefix}{name} is a group of settings; give a '
                           f'mapping of its fields, not {value!r}.')
        apply(target[name], value, f'{prefix}{name}.')
        continue
      if isinstance(target[name], tuple) and isinstance(value, list):
        value = tuple(value)
      try:
        target[name] = value
      except TypeError:
        raise ValueError(
            f'{prefix}{name} must be a {type(target[name]).__name__} like '
            f'{target[name]!r}; got {value!r}.') from None

  apply(config, changes, '')
  return config


def comma_names(values: Iterable[Any]) -> tuple[str, ...]:
  """The names in a tuple field; ``--config.FIELD=base,cmi`` is one string."""
  return tuple(name for entry in values for name in str(entry).split(',')
               if name)
