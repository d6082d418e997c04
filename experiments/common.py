"""What every real-data experiment shares: config -> trainer -> fit -> figures.

An experiment module loads its data into device datasets and calls
:func:`run_experiment` with its config (fields: :func:`add_model_fields`).
"""

from __future__ import annotations

import csv
import errno
import io
import os
import sys
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cmi_jax import checkpoint
from cmi_jax import groups
from cmi_jax import logs
from cmi_jax import models
from cmi_jax import plots
from cmi_jax import records
from cmi_jax import run
from cmi_jax import train
from cmi_jax import validate
from cmi_jax.data import base as data_base
from cmi_jax.data.base import DeviceDataset, validate_labels
from cmi_jax.metrics import knn_mi

EVAL_SPLITS = ('train_eval', 'val', 'test_anti', 'test_uncorr')
ENCODERS = ('mlp', 'conv')


def _keep_record(record: logging.logging.LogRecord) -> bool:
  """False for JAX's, orbax's and TensorFlow's INFO, TFDS's folder warnings."""
  # JAX logs through its own Python loggers; orbax and TFDS through absl's.
  if record.name.split('.')[0] in ('jax', 'jaxlib'):
    return record.levelno > logging.logging.INFO
  if not any(p in record.pathname for p in ('/orbax/', '/tensorflow')):
    return True
  if record.levelno <= logging.logging.INFO:
    return False
  return not ('tensorflow_datasets' in record.pathname
              and record.levelno == logging.logging.WARNING
              and 'has no dataset_info.json' in record.getMessage())


def quiet_library_logs() -> None:
  """Shows INFO lines of the ``cmi_jax`` logger, hides other libraries'."""
  logging.get_absl_handler().addFilter(_keep_record)
  logging.logging.getLogger('cmi_jax').setLevel(logging.logging.INFO)


CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'configs')

# Exceptions that mean "the user asked for something that cannot run", with
# a message that says what and how to fix it: one line, exit status 2.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError,
               IsADirectoryError, FileExistsError, PermissionError,
               app.UsageError, checkpoint.UnreadableCheckpointError,
               run.NonFiniteLossError)


def define_config_flag(config_file: str) -> Any:
  """``--config=FILE[:variant]`` with ``--config.FIELD=VALUE`` overrides.

  ``config_file`` is a file name in ``experiments/configs``. The variant is
  applied before the overrides, so it never replaces a value the user gave.
  """
  try:
    return config_flags.DEFINE_config_file(
        'config', os.path.join(CONFIG_DIR, config_file),
        f'The experiment config: a file such as {config_file} (default: '
        f'experiments/configs/{config_file}), optionally FILE:fast; override '
        'fields with --config.FIELD=VALUE.', lock_config=True)
  except (AttributeError, KeyError) as e:
    # Without --config, ml_collections applies the overrides here.
    _unknown_field(e, lambda: _config_fields(config_file))


def _config_fields(config_file: str) -> list[str]:
  """The top-level field names of the default config of ``config_file``."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      '_config', os.path.join(CONFIG_DIR, config_file))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return list(module.get_config().keys())


def _unknown_field(error: Exception,
                   fields: Optional[Callable[[], Iterable[str]]]) -> None:
  """Fails for ml_collections' error of an override of an unknown field."""
  name = str(error).strip('"\'')
  known = ', '.join(sorted(fields())) if fields else ''
  _fail(f'--config.{name} names no field of the config.'
        + (f' The fields are: {known}.' if known else ''))


def define_allow_change_flag() -> Any:
  """``--allow_change``: config fields that may differ when a run resumes."""
  return flags.DEFINE_list(
      'allow_change', [],
      'Config fields that may differ from the saved run when it resumes '
      '(e.g. num_epochs to train on); every other change is refused.')


def _explain(error: BaseException, workdir: Optional[str]) -> Optional[str]:
  """The one-line message for a user error, or None for a bug."""
  text = str(error)
  if (isinstance(error, OSError) and error.errno == errno.ENOSPC
      or 'No space left on device' in text or 'ENOSPC' in text):
    where = f' in {workdir}' if workdir else ''
    return (f'no space left on device while writing{where}. Free some space '
            '(or pass another --workdir) and run the same command again: the '
            'run resumes from its last checkpoint.')
  if not isinstance(error, USER_ERRORS):
    return None
  if isinstance(error, OSError) and error.filename is not None:
    return f'{error.strerror}: {error.filename}'
  return text.strip() or type(error).__name__


def _fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def _verbose(argv: Sequence[str]) -> bool:
  return any(a.startswith(('--verbosity', '-v')) and not a.endswith(('=0',
             '=-1')) for a in argv[1:])


def run_main(main: Callable[[Sequence[str]], None], *,
             workdir: Optional[Callable[[], Optional[str]]] = None,
             config_fields: Optional[Callable[[], Iterable[str]]] = None
             ) -> None:
  """Runs ``main(argv)`` as a command: user errors are one line, exit 2.

  A user error (:data:`USER_ERRORS`, bad flags, a full disk) prints
  ``error: <what and how to fix it>`` without a traceback (``--verbosity=1``
  shows it); Ctrl-C exits with 130. ``workdir`` returns the directory the
  disk-full message names; ``config_fields`` the fields an unknown
  ``--config.FIELD`` message lists.
  """
  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      text = str(e)
      if 'Traceback' in text:
        # A config file that raised while it was built: keep its last line.
        lines = [l for l in text.splitlines() if l.strip()]
        text = next((l for l in reversed(lines) if 'Error' in l), lines[-1])
      _fail(f'{text.rstrip(". ")}. Run with --helpshort for the flags.')
    except (AttributeError, KeyError) as e:
      _unknown_field(e, config_fields)

  def guarded(argv):
    quiet_library_logs()
    if len(argv) > 1:
      _fail(f'unexpected arguments {argv[1:]}; every option is --flag=value.')
    try:
      main(argv)
    except KeyboardInterrupt:
      print('interrupted; run the same command again to resume.',
            file=sys.stderr)
      sys.exit(130)
    except Exception as e:  # pylint: disable=broad-except
      message = _explain(e, workdir() if workdir else None)
      if message is None or _verbose(sys.argv):
        raise
      _fail(message)
  app.run(guarded, flags_parser=parse)


def run_config_main(config_file: str,
                    body: Callable[[ml_collections.ConfigDict, str], None]
                    ) -> None:
  """The command of an experiment: ``--config``, ``--workdir``, then ``body``.

  Defines ``--config`` of ``experiments/configs/<config_file>``
  (:func:`define_config_flag`) and ``--workdir`` (required), then runs
  ``body(config, workdir)`` under :func:`run_main`. Flags ``body`` reads are
  defined before the call.
  """
  config = define_config_flag(config_file)
  workdir = flags.DEFINE_string('workdir', None, 'Output directory.')

  def command(argv):
    del argv
    if not workdir.value:
      raise app.UsageError('--workdir is required (the output directory).')
    body(config.value, workdir.value)

  run_main(command, workdir=lambda: workdir.value,
           config_fields=lambda: _config_fields(config_file))


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
  for name in LEARNING_RATES + ('lr_scale',):
    if config[name] is not None:
      validate.number(config[name], f'--config.{name}', 0, open_low=True)
  validate.number(config.disentangle_weight,
                  '--config.disentangle_weight (lambda)', 0)
  for name in ('num_epochs', 'batch_size', 'eval_every', 'checkpoint_every',
               'keep_checkpoints', 'num_cls_steps', 'z_dim'):
    validate.integer(config[name], f'--config.{name}', 1)
  for name in ('mi_every', 'log_every_steps'):
    validate.integer(config[name], f'--config.{name}', 0)
  validate.choice(config.group_weighting, '--config.group_weighting',
                  groups.METHODS)
  validate.number(config.dro_step_size,
                  '--config.dro_step_size (GroupDRO eta)', 0, open_low=True)
  validate.number(config.dro_size_adjustment,
                  '--config.dro_size_adjustment (GroupDRO C)', 0)


def resolve_learning_rates(config: ml_collections.ConfigDict,
                           paper: Mapping[str, Mapping[str, float]]
                           ) -> ml_collections.ConfigDict:
  """A copy with every unset learning rate set to ``paper``'s x ``lr_scale``.

  Checks the run fields first (:func:`check_run_fields`).
  """
  validate.choice(config.objective, '--config.objective', tuple(paper))
  check_run_fields(config)
  config = ml_collections.ConfigDict(config.to_dict())
  defaults = paper[config.objective]
  for name in LEARNING_RATES:
    if config[name] is None:
      config[name] = defaults[name] * config.lr_scale
  return config


def resolve_optim(config: ml_collections.ConfigDict) -> train.OptimConfig:
  """The optimiser settings of a config with its learning rates resolved."""
  missing = [name for name in LEARNING_RATES if config[name] is None]
  if missing:
    raise ValueError(f'learning rates {missing} are unset; resolve the config '
                     'with resolve_learning_rates first.')
  return train.OptimConfig(
      lr=float(config.lr), cls_lr=float(config.cls_lr),
      d_lr=float(config.d_lr), betas=tuple(config.betas),
      d_betas=tuple(config.d_betas), num_cls_steps=int(config.num_cls_steps))


def subspace_sizes(z_dim: int, num_attributes: int) -> tuple[int, ...]:
  """Equal contiguous subspaces, one per attribute (the paper: 10 -> (5, 5))."""
  if z_dim % num_attributes:
    raise ValueError(
        f'z_dim={z_dim} does not split into {num_attributes} equal subspaces; '
        f'set --config.z_dim to a multiple of {num_attributes}.')
  return (z_dim // num_attributes,) * num_attributes


def training_group_counts(data: Any, num_classes: Sequence[int]
                          ) -> np.ndarray:
  """Examples per group of attribute values in an epoch of ``data``, ``[G]``.

  For a generated stream (a joint ``table``) the expected counts, otherwise
  the fully labelled rows of each group.
  """
  if hasattr(data, 'table'):
    table = np.asarray(data.table, np.float64).reshape(-1)
    return table * data.steps_per_epoch * data.batch_size
  labels = np.asarray(data.labels)
  full = (labels >= 0).all(1)
  index = np.ravel_multi_index(tuple(np.maximum(labels[full], 0).T),
                               tuple(num_classes))
  return np.bincount(index, minlength=int(np.prod(num_classes))).astype(
      np.float64)


def group_weighting(config: ml_collections.ConfigDict, train_data: Any,
                    num_classes: Sequence[int]) -> groups.GroupWeighting:
  """The :class:`cmi_jax.groups.GroupWeighting` of a checked config."""
  method = config.group_weighting
  counts = (training_group_counts(train_data, num_classes)
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
    raise ValueError(f'--config.group_weighting={method}: {e}') from None


def balanced_training_data(config: ml_collections.ConfigDict, train_data: Any,
                           num_classes: Sequence[int]) -> Any:
  """The training set of ``group_weighting=subsample`` (else ``train_data``).

  A stored split draws a group-balanced subsample every epoch
  (:func:`cmi_jax.data.base.group_balanced`); a generated stream (a joint
  ``table``) draws from the uniform table, its epoch shrunk to
  ``G * min_g p(g)`` of its length.
  """
  if config.group_weighting != 'subsample':
    return train_data
  if hasattr(train_data, 'table'):
    table = np.asarray(train_data.table, np.float64)
    steps = max(1, int(round(train_data.steps_per_epoch * table.size
                             * table.min())))
    return train_data.replace(
        table=jnp.full(table.shape, 1.0 / table.size, jnp.float32),
        steps_per_epoch=steps)
  if not hasattr(train_data, 'images') or not hasattr(train_data, 'replace'):
    raise ValueError('--config.group_weighting=subsample needs the training '
                     'images on the device (--config.data_placement=device).')
  return data_base.group_balanced(train_data, num_classes)


def build_trainer(config: ml_collections.ConfigDict, num_attributes: int,
                  paper: Mapping[str, Mapping[str, float]],
                  weighting: Optional[groups.GroupWeighting] = None
                  ) -> train.Trainer:
  """The engine for an experiment config (encoder, heads, adversaries).

  Unset learning rates are the ``paper``'s; ``weighting`` is the heads'
  group weighting (:func:`group_weighting`), default none.
  """
  config = resolve_learning_rates(config, paper)
  validate.choice(config.encoder, '--config.encoder', ENCODERS)
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
      subspace_sizes(config.z_dim, num_attributes), (2,) * num_attributes,
      resolve_optim(config),
      adversary_hidden=tuple(config.adversary_hidden),
      mmd_bandwidths=tuple(config.mmd_bandwidths),
      group_weighting=weighting)


def mi_hook(subspaces: Sequence[int], every: int, max_rows: int,
            splits: Sequence[str] = ('test_uncorr',), seed: int = 0
            ) -> Optional[records.EpochHook]:
  """An epoch hook with kNN estimates of I(z1;z2), I(z_k;s_j), I(z1;z2|s_k), ...

  Runs every ``every`` epochs (None if ``every <= 0``) on at most
  ``max_rows`` codes of each split; keys are ``'<split>/<term>'``, in nats.
  """
  if every <= 0:
    return None

  def hook(epoch, state, stats):
    del state
    if epoch % every:
      return {}
    out = {}
    for split in splits:
      keep = stats[split]['mask'] > 0
      report = knn_mi.latent_mi_report(
          stats[split]['z'][keep], stats[split]['labels'][keep], subspaces,
          max_rows=max_rows, seed=seed)
      out.update({f'{split}/{k}': v for k, v in report.items()})
    return out
  return hook


def csv_text(rows: Iterable[Mapping[str, Any]], header: Sequence[str],
             **options: Any) -> str:
  """``rows`` as CSV text with ``header`` (other keys are left out)."""
  out = io.StringIO()
  writer = csv.DictWriter(out, header, extrasaction='ignore', **options)
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


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
    validate_labels(first_batches(dataset, 1)['labels'],
                    (2,) * num_attributes,
                    where=f'the first batch of split {name!r}')


def check_workdir(workdir: str) -> None:
  """Refuses a ``--workdir`` that is a file or cannot be written."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f'--workdir {workdir} is a file, not a directory; pass '
                     'a directory (it is created if needed).')
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(os.path.abspath(existing))
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f'--workdir {workdir} cannot be written ({existing} is '
                     'read-only for this user); pass a writable directory.')


def run_experiment(config: ml_collections.ConfigDict, workdir: str,
                   data: Mapping[str, DeviceDataset], *,
                   attribute_names: Sequence[str],
                   paper_optim: Mapping[str, Mapping[str, float]],
                   joint_counts: Mapping[str, np.ndarray],
                   data_info: Mapping[str, Any],
                   allow_change: Sequence[str] = ()) -> dict[str, Any]:
  """Trains, evaluates and draws one experiment; returns its results.

  Everything that can refuse the run is checked before the first file is
  written. ``data`` holds ``'train'`` and :data:`EVAL_SPLITS`;
  ``paper_optim`` maps objectives to learning rates, which fill the unset
  ones (so ``config.json`` holds the values that ran); ``joint_counts``
  maps splits to ``(2,) * K`` label counts; ``data_info`` (what was loaded)
  is saved in the results; ``allow_change`` names the fields beyond
  :data:`COSMETIC_FIELDS` that may differ on resume (e.g. ``num_epochs``).
  The results are ``workdir/results.json``'s, plus ``'state'``.
  """
  missing = [s for s in ('train',) + EVAL_SPLITS if s not in data]
  if missing:
    raise ValueError(f'the experiment needs the splits {missing}; got '
                     f'{sorted(data)}.')
  config = resolve_learning_rates(config, paper_optim)
  fit = run.FitConfig(
      num_epochs=config.num_epochs, eval_every=config.eval_every,
      checkpoint_every=config.checkpoint_every,
      keep_checkpoints=config.keep_checkpoints,
      log_every_steps=config.log_every_steps, progress=config.progress,
      tensorboard=config.tensorboard)
  num_attributes = len(attribute_names)
  check_data(data, num_attributes)
  num_classes = (2,) * num_attributes
  weighting = group_weighting(config, data['train'], num_classes)
  data = {**data, 'train': balanced_training_data(config, data['train'],
                                                  num_classes)}
  trainer = build_trainer(config, num_attributes, paper_optim, weighting)
  run_config = {'config': config.to_dict(), 'data': dict(data_info)}
  may_change = tuple(COSMETIC_FIELDS) + tuple(allow_change)
  check_workdir(workdir)
  run.check_resumable(workdir, run_config, may_change)
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
                       f'{split}: labels ({", ".join(attribute_names)})',
                       class_names=data_info.get('class_names'))

  example = first_batches(data['train'], data['train'].batch_size)['image']
  state = trainer.init(jax.random.PRNGKey(config.seed), example,
                       config.disentangle_weight)
  logging.info('Training %s for %d epochs of %d steps in %s.',
               config.objective, config.num_epochs,
               data['train'].steps_per_epoch, workdir)
  eval_data = {s: data[s] for s in EVAL_SPLITS}
  result = run.fit(
      trainer, state, data['train'], eval_data, workdir, fit,
      run_config=run_config, may_change=may_change,
      results_extra={'data': dict(data_info),
                     'attributes': list(attribute_names),
                     'objective': config.objective},
      epoch_hook=mi_hook(trainer.objective.subspaces, config.mi_every,
                         config.mi_max_rows, seed=config.seed))
  state = result.pop('state')
  if jax.process_index() == 0:
    draw_run_figures(trainer, state, eval_data, workdir, attribute_names,
                     final_eval=result['final'].get('eval'),
                     class_names=data_info.get('class_names'))
  return {'state': state, **result}


def draw_run_figures(trainer: train.Trainer, state: train.TrainState,
                     eval_data: Mapping[str, DeviceDataset], workdir: str,
                     attribute_names: Sequence[str], *,
                     final_eval: Optional[Mapping[str, Any]] = None,
                     class_names: Optional[Sequence[Sequence[str]]] = None
                     ) -> list[str]:
  """The figures of a finished run, from its final state and log.

  ``final_eval``: the ``final`` record's ``eval`` (evaluated again from
  ``state`` if None); ``class_names``: per attribute, its classes' names.
  """
  from cmi_jax import evaluation  # Local: evaluation imports train.
  figure = lambda name: os.path.join(workdir, 'figures', f'{name}.png')
  names = combination_names(len(attribute_names))
  paths = [plots.training_curves(
      logs.read_jsonl(os.path.join(workdir, 'log.jsonl')), figure('curves'))]
  for split in ('test_anti', 'test_uncorr'):
    if final_eval is not None and split in final_eval:
      summary = final_eval[split]
    else:
      summary = evaluation.summarize(
          evaluation.evaluate(trainer, state, eval_data[split]))
    paths.append(plots.confusion_matrix(
        np.asarray(summary['confusion']), names,
        figure(f'confusion_{split}'), f'{split}: joint predictions'))
    paths.append(plots.latent_correlation(
        np.asarray(summary['z_correlation'], float), trainer.objective.subspaces,
        figure(f'latent_correlation_{split}'), f'{split}: correlation of z'))
    paths.append(plots.subpopulation_accuracy(
        np.asarray(summary['accuracy_per_combination'], float),
        np.asarray(summary['combination_count']), attribute_names, names,
        figure(f'subpopulation_accuracy_{split}'),
        f'{split}: accuracy per attribute in each combination'))
    sample = first_batches(eval_data[split], 32)
    preds = np.asarray(trainer.predict_from_codes(
        state.heads_params,
        trainer.encoder.apply(state.encoder_params, sample['image'])))
    paths.append(plots.image_grid(
        sample['image'], sample['labels'], figure(f'predictions_{split}'),
        f'{split}: label → prediction', preds=preds, class_names=class_names))
  return paths


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
