"""The command line of every experiment: flags, one-line errors, exit 2.

The library and the experiments name their arguments and config fields
(``workdir``, ``allow_change``, ``config.train_corr``, ``celeba_dir=``); here,
where a message is printed, each is mapped to its flag (:func:`as_flags`).
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import sys
from typing import Callable, Iterable, Optional, Sequence

import ml_collections
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from cmi_jax import checkpoint
from cmi_jax import locks
from cmi_jax import preemption
from cmi_jax import run


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
               run.NonFiniteLossError, locks.DirectoryBusyError)


def _config_fields(config_file: str) -> list[str]:
  """The top-level field names of the default config of ``config_file``."""
  module = importlib.import_module(
      f'experiments.configs.{os.path.splitext(config_file)[0]}')
  return list(module.get_config().keys())


def _unknown_field(error: Exception,
                   fields: Optional[Callable[[], Iterable[str]]]) -> None:
  """Fails for ml_collections' error of an override of an unknown field."""
  name = str(error).strip('"\'')
  known = ', '.join(sorted(fields())) if fields else ''
  _fail(f'--config.{name} names no field of the config.'
        + (f' The fields are: {known}.' if known else ''))


# Arguments of the commands that the library and the experiments name.
_ARGUMENTS = ('workdir', 'allow_change', 'sweep_dir', 'out_dir', 'vmap')


def as_flags(text: str, config_fields: Iterable[str] = ()) -> str:
  """``text`` with the names of arguments and config fields as their flags.

  ``workdir`` -> ``--workdir``, ``config.train_corr`` ->
  ``--config.train_corr``, and a config field written as an assignment
  (``celeba_dir=<dir>``) -> ``--config.celeba_dir=<dir>``.
  """
  # Not inside a path or a word: /runs/workdir/x stays as it is.
  text = re.sub(r'(?<![\w./-])config\.(\w+)', r'--config.\1', text)
  text = re.sub(r'(?<![\w./-])(%s)\b(?!/)' % '|'.join(_ARGUMENTS), r'--\1',
                text)
  for name in config_fields:
    text = re.sub(r'(?<![\w./-])%s(?==)' % re.escape(name),
                  f'--config.{name}', text)
  return text


def _explain(error: BaseException, workdir: Optional[str],
             config_fields: Iterable[str] = ()) -> Optional[str]:
  """The one-line message for a user error, or None for a bug."""
  text = as_flags(str(error), config_fields)
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
  shows it). A stop signal during training (SIGTERM, SIGINT, SIGUSR1) saves
  the step or epoch in flight and exits with
  :data:`cmi_jax.preemption.EXIT_STATUS` (75) and one line; Ctrl-C
  elsewhere exits with 130. ``workdir`` returns the
  directory the disk-full message names; ``config_fields`` the fields an
  unknown ``--config.FIELD`` message lists.
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
    except preemption.Preempted as e:
      print(f'{e}.', file=sys.stderr)
      sys.exit(preemption.EXIT_STATUS)
    except KeyboardInterrupt:
      print('interrupted; run the same command again to resume.',
            file=sys.stderr)
      sys.exit(130)
    except Exception as e:  # pylint: disable=broad-except
      message = _explain(e, workdir() if workdir else None,
                         config_fields() if config_fields else ())
      if message is None or _verbose(sys.argv):
        raise
      _fail(message)
  app.run(guarded, flags_parser=parse)


def run_config_main(config_file: str,
                    body: Callable[[ml_collections.ConfigDict, str], None]
                    ) -> None:
  """The command of an experiment: ``--config``, ``--workdir``, then ``body``.

  ``--config=FILE[:variant]`` (default: ``experiments/configs/<config_file>``)
  with ``--config.FIELD=VALUE`` overrides; the variant is applied before the
  overrides, so it never replaces a value the user gave. ``--workdir`` is
  required. Runs ``body(config, workdir)`` under :func:`run_main`; flags
  ``body`` reads are defined before the call.
  """
  try:
    config = config_flags.DEFINE_config_file(
        'config', os.path.join(CONFIG_DIR, config_file),
        f'The experiment config: a file such as {config_file} (default: '
        f'experiments/configs/{config_file}), optionally FILE:fast; override '
        'fields with --config.FIELD=VALUE.', lock_config=True)
  except (AttributeError, KeyError) as e:
    # Without --config, ml_collections applies the overrides here.
    _unknown_field(e, lambda: _config_fields(config_file))
  workdir = flags.DEFINE_string('workdir', None, 'Output directory.')

  def command(argv):
    del argv
    if not workdir.value:
      raise app.UsageError('--workdir is required (the output directory).')
    body(config.value, workdir.value)

  run_main(command, workdir=lambda: workdir.value,
           config_fields=lambda: _config_fields(config_file))
