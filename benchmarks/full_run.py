r"""Wall time of one whole multi-digit run: training, per-epoch evaluation, I/O.

Runs :func:`experiments.multi_digit_mnist.train_and_evaluate` as the command
line does and reports the total wall and CPU time, samples/s, and the epoch
time split into training and evaluation (the ``seconds`` of ``log.jsonl``).
The embedded MNIST is repeated to the paper's epoch size::

  PYTHONPATH=. python benchmarks/full_run.py --out=/tmp/full_run.json
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from absl import flags
import numpy as np
from ml_collections import config_flags

from experiments import cli
from cmi_jax import logs
from experiments import multi_digit_mnist
from experiments.configs import multi_digit as multi_digit_config

PAPER_EPOCH_SIZE = 9985  # MNIST 3 vs 8 among the first 50,000 images
TARGET_SECONDS = 300  # the target of a full 400-epoch run


def _default_config():
  config = multi_digit_config.get_config()
  config.source = 'embedded'
  config.epoch_size = PAPER_EPOCH_SIZE
  config.progress = False
  return config


def summarize(log: list[dict], total_s: float, cpu_s: float,
              samples_per_epoch: int) -> dict:
  """The timings of a finished run from its ``log.jsonl`` records (seconds)."""
  epochs = [r for r in log if 'seconds' in r]
  train_s = np.array([r['seconds']['train'] for r in epochs])
  eval_s = np.array([r['seconds'].get('eval', 0.0) for r in epochs])
  num_epochs = len(epochs)
  samples = num_epochs * samples_per_epoch
  # The first epoch pays the compilation of the scanned epoch.
  steady = train_s[1:] if num_epochs > 1 else train_s
  return {
      'epochs': num_epochs,
      'samples_per_epoch': samples_per_epoch,
      'total_s': total_s,
      'cpu_s': cpu_s,
      'samples_per_s_whole_run': samples / total_s,
      'samples_per_s_training': samples / float(train_s.sum()),
      'samples_per_s_steady_epochs': samples_per_epoch / float(steady.mean()),
      'epoch_s_mean': float((train_s + eval_s).mean()),
      'epoch_train_s_median': float(np.median(train_s)),
      'epoch_eval_s_median': float(np.median(eval_s)),
      'first_epoch_train_s': float(train_s[0]),
      'train_s_total': float(train_s.sum()),
      'eval_s_total': float(eval_s.sum()),
      'outside_epochs_s': total_s - float(train_s.sum() + eval_s.sum()),
      'under_target': total_s < TARGET_SECONDS,
  }


def main(argv):
  """Runs the experiment once and prints its timing."""
  del argv
  cli.quiet_library_logs()
  config = flags.FLAGS.config
  keep = flags.FLAGS.workdir is not None
  workdir = flags.FLAGS.workdir or tempfile.mkdtemp(prefix='full_run_')
  load_before = os.getloadavg()
  try:
    tic, cpu_tic = time.perf_counter(), time.process_time()
    results = multi_digit_mnist.train_and_evaluate(config, workdir)
    total_s = time.perf_counter() - tic
    cpu_s = time.process_time() - cpu_tic
    log = logs.read_jsonl(os.path.join(workdir, 'log.jsonl'))
  finally:
    if not keep:
      shutil.rmtree(workdir, ignore_errors=True)
  resolved = multi_digit_mnist.resolve_config(config)
  steps = results['step'] // max(1, results['num_epochs'])
  summary = summarize(log, total_s, cpu_s, steps * resolved.batch_size)
  summary.update({
      'objective': resolved.objective,
      'batch_size': resolved.batch_size,
      'eval_every': resolved.eval_every,
      'mi_every': resolved.mi_every,
      'data': results['data'],
      'load_before': list(load_before),
      'load_after': list(os.getloadavg()),
      'cpus': os.cpu_count(),
      'test_anti_accuracy': results['final']['eval']['test_anti']['accuracy'],
  })
  print(f"{summary['objective']}: {summary['epochs']} epochs of "
        f"{summary['samples_per_epoch']} samples (batch "
        f"{summary['batch_size']}), evaluation every {summary['eval_every']} "
        f"epoch(s) on 4 splits, kNN MI every {summary['mi_every']}")
  print(f"total {summary['total_s']:.1f} s wall ({summary['cpu_s']:.1f} s "
        f"CPU), target < {TARGET_SECONDS} s: "
        f"{'met' if summary['under_target'] else 'NOT met'}")
  print(f"samples/s: whole run {summary['samples_per_s_whole_run']:,.0f}, "
        f"training only {summary['samples_per_s_training']:,.0f}, steady "
        f"epochs {summary['samples_per_s_steady_epochs']:,.0f}")
  print(f"epoch: mean {summary['epoch_s_mean']:.3f} s (median train "
        f"{summary['epoch_train_s_median']:.3f} s + eval "
        f"{summary['epoch_eval_s_median']:.3f} s); first epoch train "
        f"{summary['first_epoch_train_s']:.1f} s; outside epochs "
        f"{summary['outside_epochs_s']:.1f} s")
  print(f"load average {summary['load_before']} -> {summary['load_after']} "
        f"on {summary['cpus']} CPUs")
  if flags.FLAGS.out:
    logs.write_json_atomic(flags.FLAGS.out, summary)
    print(f'wrote {flags.FLAGS.out}')


if __name__ == '__main__':
  config_flags.DEFINE_config_dict('config', _default_config(),
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'Keep the run here (default: a '
                      'temporary directory, removed afterwards).')
  flags.DEFINE_string('out', None, 'Write the figures as JSON here.')
  cli.run_main(main)
