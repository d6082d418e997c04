"""Workers sharing one sweep directory: real processes, the same command."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = [0, 1, 2, 3]
# Four tiny cells of Base on the embedded digits.
SWEEP = ['--objectives=base', '--train_corrs=0.9', '--noises=0.8',
         f'--seeds={",".join(map(str, SEEDS))}', '--config.source=embedded',
         '--config.epoch_size=200', '--config.num_epochs=3',
         '--config.mi_every=0', '--config.tensorboard=False',
         '--config.progress=False', '--config.checkpoint_every=1']


def worker(sweep_dir, *extra):
  env = dict(os.environ, JAX_PLATFORMS='cpu', CUDA_VISIBLE_DEVICES='',
             TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
  for name in ('XLA_FLAGS', 'SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_COUNT'):
    env.pop(name, None)
  return subprocess.Popen(
      [sys.executable, '-m', 'experiments.multi_digit_sweep',
       f'--workdir={sweep_dir}', *SWEEP, *extra], cwd=ROOT, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cell_dir(sweep_dir, seed):
  return os.path.join(sweep_dir, 'base', 'corr0.9_noise0.8', f'seed{seed}')


def trained_cells(err):
  """The cells a worker started training, from its log lines."""
  return re.findall(r'Training base for \d+ epochs of \d+ steps in \S*/(seed\d)',
                    err)


def finished(sweep_dir):
  out = {}
  for seed in SEEDS:
    with open(os.path.join(cell_dir(sweep_dir, seed), 'results.json')) as f:
      results = json.load(f)
    out[seed] = results['final']['eval']
  return out


@pytest.mark.slow
def test_two_workers_train_every_cell_once(tmp_path):
  sweep_dir = str(tmp_path / 'sweep')
  workers = [worker(sweep_dir) for _ in range(2)]
  errs = [w.communicate(timeout=600)[1] for w in workers]
  assert [w.returncode for w in workers] == [0, 0], errs[0][-2000:]
  trained = [c for err in errs for c in trained_cells(err)]
  assert sorted(trained) == [f'seed{s}' for s in SEEDS]
  assert len(finished(sweep_dir)) == len(SEEDS)
  assert not [p for p, _, names in os.walk(sweep_dir) if '.lock' in names]


@pytest.mark.slow
def test_a_killed_workers_cell_is_taken_over_by_the_next(tmp_path):
  sweep_dir = str(tmp_path / 'sweep')
  first = worker(sweep_dir)
  log = os.path.join(cell_dir(sweep_dir, 0), 'log.jsonl')
  deadline = time.time() + 300
  while time.time() < deadline and not (
      os.path.exists(log) and '"epoch"' in open(log).read()):
    time.sleep(0.05)
  first.send_signal(signal.SIGKILL)
  first.wait()
  assert os.path.exists(os.path.join(cell_dir(sweep_dir, 0), '.lock'))
  workers = [worker(sweep_dir) for _ in range(3)]
  errs = [w.communicate(timeout=600)[1] for w in workers]
  assert [w.returncode for w in workers] == [0, 0, 0], errs[0][-2000:]
  trained = [c for err in errs for c in trained_cells(err)]
  assert sorted(trained) == [f'seed{s}' for s in SEEDS]
  assert sum('took over the lock' in err for err in errs) == 1
  clean_dir = str(tmp_path / 'clean')
  clean = worker(clean_dir)
  assert clean.communicate(timeout=600) and clean.returncode == 0
  assert finished(sweep_dir) == finished(clean_dir)


def test_a_second_run_on_one_workdir_is_refused(tmp_path):
  work = str(tmp_path / 'run')
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=ROOT)
  env.pop('XLA_FLAGS', None)
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time\n'
       'from cmi_jax import locks\n'
       'locks.DirectoryLock(sys.argv[1]).acquire()\n'
       'print("held", flush=True)\ntime.sleep(600)', work],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    proc = subprocess.run(
        [sys.executable, '-m', 'experiments.multi_digit_mnist',
         f'--workdir={work}', *SWEEP[4:]], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=300)
  finally:
    holder.kill()
    holder.wait()
  assert proc.returncode == 2, proc.stderr[-2000:]
  (line,) = [l for l in proc.stderr.splitlines() if l.startswith('error: ')]
  assert f'pid {holder.pid}' in line and 'in use by another process' in line
  assert sorted(os.listdir(work)) == ['.lock']
