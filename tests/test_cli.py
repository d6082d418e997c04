"""The command lines as a user meets them: mistakes, kills, a full disk.

Every case runs the real entry point in a subprocess (``python -m
experiments.NAME``) from the repository root.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A tiny multi-digit run on the embedded digits.
TINY = ['--config.source=embedded', '--config.epoch_size=200',
        '--config.mi_every=0', '--config.tensorboard=False',
        '--config.progress=False']


def command(module, *args, **popen):
  env = dict(os.environ, JAX_PLATFORMS='cpu', CUDA_VISIBLE_DEVICES='',
             TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=ROOT)
  env.pop('XLA_FLAGS', None)  # one device: the runs of a user
  return subprocess.Popen(
      [sys.executable, '-m', f'experiments.{module}', *args], cwd=ROOT,
      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      **popen)


def run_command(module, *args, timeout=300):
  proc = command(module, *args)
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


def tree(path):
  """Every file below ``path`` (relative), for 'nothing new was written'."""
  found = set()
  for root, _, files in os.walk(path):
    for name in files:
      found.add(os.path.relpath(os.path.join(root, name), path))
  return found


def error_lines(err):
  return [line for line in err.splitlines() if line.startswith('error: ')]


@pytest.fixture(scope='module')
def workdir_file(tmp_path_factory):
  path = tmp_path_factory.mktemp('cli') / 'a_file'
  path.write_text('not a directory')
  return str(path)


# (module, flags, words the one error line must contain). {work} is a fresh
# directory, {file} an existing file. Each case starts a Python process, so
# most are slow-marked; the default suite keeps one of each kind: a flag, a
# value, a variant, a workdir, the data.
SLOW = pytest.mark.slow
MISTAKES = [
    ('multi_digit_mnist', ['--config.nonexistent=3'],
     ['--config.nonexistent names no field', 'num_epochs']),
    pytest.param('multi_digit_mnist', ['--config.lr=abc'], ['--config.lr=abc'],
                 marks=SLOW),
    ('multi_digit_mnist', ['--config.lr=-1'], ['--config.lr must be > 0']),
    pytest.param('multi_digit_mnist', ['--config.disentangle_weight=-0.5'],
                 ['disentangle_weight', '>= 0'], marks=SLOW),
    pytest.param('multi_digit_mnist', ['--config.num_epochs=0'],
                 ['--config.num_epochs must be >= 1'], marks=SLOW),
    pytest.param('multi_digit_mnist', ['--config.train_corr=1.5'],
                 ['--config.train_corr'], marks=SLOW),
    pytest.param('multi_digit_mnist', ['--config.classes=3,3'],
                 ['--config.classes'], marks=SLOW),
    ('multi_digit_mnist', ['--config=experiments/configs/multi_digit.py:fsat'],
     ['unknown config variant']),
    ('multi_digit_mnist', ['--config.source=idx',
                           '--config.manual_dir=/nonexistent'],
     ['no mnist data found']),
    pytest.param('multi_digit_mnist', ['stray'], ['unexpected arguments'],
                 marks=SLOW),
    pytest.param('multi_digit_mnist', ['--workdir='], ['--workdir is required'],
                 marks=SLOW),
    ('multi_digit_mnist', ['--workdir={file}'], ['is a file']),
    ('toy_linear_regression', ['--config.train_corr=1.0'],
     ['train_corr must satisfy |c| < 1']),
    pytest.param('toy_linear_classification', ['--config.objectives=base,gan'],
                 ["objective 'gan'"], marks=SLOW),
    pytest.param('multi_digit_sweep', ['--noises=0,x'], ['--noises'],
                 marks=SLOW),
    pytest.param('multi_digit_sweep', ['--workdir='],
                 ['--workdir is required'], marks=SLOW),
    ('toy_linear_regression', ['--workdir='], ['--workdir is required']),
    pytest.param('plot_multi_digit', ['--sweep_dir={work}/none'],
                 ['no finished run'], marks=SLOW),
    pytest.param('evaluate_disentanglement', ['--workdir={work}/none'],
                 ['not a directory'], marks=SLOW),
    pytest.param('reproduction', ['--steps=5000,700'],
                 ['--steps must be increasing positive multiples of 500'],
                 marks=SLOW),
]


NO_WORKDIR = ('reproduction',)  # commands that write nothing


def _case_id(case):
  module, args, _ = case.values if hasattr(case, 'values') else case
  return f'{module}:{" ".join(args)}'


@pytest.mark.parametrize('module, args, words', MISTAKES,
                         ids=[_case_id(c) for c in MISTAKES])
def test_a_mistake_is_one_line_and_exit_status_2(module, args, words,
                                                 tmp_path, workdir_file):
  work = tmp_path / 'work'
  work.mkdir()
  args = [a.format(work=work, file=workdir_file) for a in args]
  if module not in NO_WORKDIR and not any(
      a.startswith(('--workdir', '--sweep_dir')) for a in args):
    args = [f'--workdir={work}' if module != 'plot_multi_digit'
            else f'--sweep_dir={work}'] + args
  config = TINY if module in ('multi_digit_mnist', 'multi_digit_sweep') else []
  code, out, err = run_command(module, *config, *args)
  assert code == 2, (code, out, err)
  assert 'Traceback' not in err + out, err
  lines = error_lines(err)
  assert len(lines) == 1, err
  for word in words:
    assert word in err, (word, err)
  assert tree(work) == set(), 'a refused command wrote files'


@pytest.mark.slow  # test_multi_digit_experiment.py checks it in process
def test_resume_with_a_changed_config_is_refused_then_allowed(tmp_path):
  work = str(tmp_path / 'run')
  code, _, err = run_command('multi_digit_mnist', f'--workdir={work}', *TINY,
                             '--config.num_epochs=2')
  assert code == 0, err
  files = {p: os.path.getmtime(os.path.join(work, p)) for p in tree(work)}
  code, _, err = run_command('multi_digit_mnist', f'--workdir={work}', *TINY,
                             '--config.num_epochs=3', '--config.z_dim=12')
  assert code == 2 and 'Traceback' not in err, err
  (line,) = error_lines(err)
  assert 'config.num_epochs (2 -> 3)' in line and 'config.z_dim' in line
  assert '--allow_change' in line
  assert {p: os.path.getmtime(os.path.join(work, p))
          for p in tree(work)} == files, 'the refusal touched the run'
  code, _, err = run_command('multi_digit_mnist', f'--workdir={work}', *TINY,
                             '--config.num_epochs=3',
                             '--allow_change=num_epochs')
  assert code == 0, err
  with open(os.path.join(work, 'results.json')) as f:
    assert json.load(f)['final']['epoch'] == 3


@pytest.mark.slow
def test_fast_variant_keeps_explicit_values(tmp_path):
  work = str(tmp_path / 'run')
  # ml_collections wants --config before its field overrides.
  code, _, err = run_command(
      'multi_digit_mnist', f'--workdir={work}',
      '--config=experiments/configs/multi_digit.py:fast', *TINY,
      '--config.num_epochs=1')
  assert code == 0, err
  with open(os.path.join(work, 'config.json')) as f:
    config = json.load(f)['config']
  assert config['num_epochs'] == 1  # explicit, kept
  assert config['checkpoint_every'] == 10  # from the variant
  assert config['lr'] == pytest.approx(1e-5)  # resolved: cmi's paper value
  assert 'fast' not in config


def without_seconds(value):
  if isinstance(value, dict):
    return {k: without_seconds(v) for k, v in value.items() if k != 'seconds'}
  if isinstance(value, list):
    return [without_seconds(v) for v in value]
  return value


def finished(work):
  with open(os.path.join(work, 'results.json')) as f:
    results = json.load(f)
  log = [json.loads(line) for line in open(os.path.join(work, 'log.jsonl'))]
  return without_seconds(results), without_seconds(log)


KILL_RUN = TINY + ['--config.num_epochs=8', '--config.checkpoint_every=3']


@pytest.mark.slow
def test_kill_anywhere_then_rerun_equals_an_uninterrupted_run(tmp_path):
  clean = str(tmp_path / 'clean')
  code, _, err = run_command('multi_digit_mnist', f'--workdir={clean}',
                             *KILL_RUN)
  assert code == 0, err
  work = str(tmp_path / 'killed')
  rng = random.Random(0)
  # The first kill lands after epoch 1 is logged and before the first latest
  # checkpoint (epoch 3); the others at random moments, one with Ctrl-C.
  signals = [signal.SIGKILL, signal.SIGKILL, signal.SIGINT, signal.SIGKILL,
             signal.SIGKILL, signal.SIGKILL]
  for i, sig in enumerate(signals):
    proc = command('multi_digit_mnist', f'--workdir={work}', *KILL_RUN)
    log = os.path.join(work, 'log.jsonl')
    deadline = time.time() + 120
    if i == 0:
      while time.time() < deadline and not (
          os.path.exists(log) and open(log).read().count('"epoch"') >= 1):
        time.sleep(0.05)
    else:
      time.sleep(rng.uniform(2.0, 16.0))
    if proc.poll() is None:
      proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT and proc.returncode in (75, 130):
      assert 'the same command' in err
    assert 'Traceback' not in err or proc.returncode in (0, -9), err
  code, _, err = run_command('multi_digit_mnist', f'--workdir={work}',
                             *KILL_RUN)
  assert code == 0, err
  assert finished(work) == finished(clean)
  assert not [p for p in tree(work) if p.endswith('.tmp')]


@pytest.mark.slow
@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_saves_the_epoch_in_flight_and_the_rerun_equals(
    tmp_path, sig):
  clean = str(tmp_path / 'clean')
  code, _, err = run_command('multi_digit_mnist', f'--workdir={clean}',
                             *KILL_RUN)
  assert code == 0, err
  work = str(tmp_path / 'stopped')
  proc = command('multi_digit_mnist', f'--workdir={work}', *KILL_RUN)
  log = os.path.join(work, 'log.jsonl')
  deadline = time.time() + 120
  while time.time() < deadline and not (
      os.path.exists(log) and open(log).read().count('"epoch"') >= 4):
    time.sleep(0.02)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 75, err[-2000:]
  assert 'Traceback' not in err
  (line,) = [l for l in err.splitlines() if l.startswith('stopped by')]
  epoch = int(line.split('after epoch ')[1].split(',')[0])
  assert 4 <= epoch < 8 and 'the same command resumes' in line
  # Saved where it stopped, although checkpoint_every is 3.
  assert str(epoch) in os.listdir(os.path.join(work, 'checkpoints', 'latest'))
  code, _, err = run_command('multi_digit_mnist', f'--workdir={work}',
                             *KILL_RUN)
  assert code == 0, err
  assert finished(work) == finished(clean)


def _mount_tmpfs(path, size):
  path.mkdir()
  result = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}',
                           'tmpfs', str(path)], capture_output=True)
  return result.returncode == 0


@pytest.mark.slow  # two whole command-line runs (~40 s)
def test_disk_full_is_one_message_and_the_run_resumes_after(tmp_path):
  disk = tmp_path / 'disk'
  if os.geteuid() != 0 or not _mount_tmpfs(disk, '600k'):
    pytest.skip('needs a small tmpfs (root and mount)')
  try:
    work = str(disk / 'run')
    code, out, err = run_command('multi_digit_mnist', f'--workdir={work}',
                                 *TINY, '--config.num_epochs=2',
                                 '--config.checkpoint_every=1')
    assert code == 2, (code, err[-3000:])
    assert 'Traceback' not in err + out
    (line,) = error_lines(err)
    assert 'no space left on device' in line and work in line
    subprocess.run(['mount', '-o', 'remount,size=200m', str(disk)],
                   check=True)
    code, _, err = run_command('multi_digit_mnist', f'--workdir={work}',
                               *TINY, '--config.num_epochs=2',
                               '--config.checkpoint_every=1')
    assert code == 0, err[-3000:]
    with open(os.path.join(work, 'results.json')) as f:
      assert json.load(f)['final']['epoch'] == 2
  finally:
    subprocess.run(['umount', str(disk)], capture_output=True)


SWEEP = TINY + ['--config.num_epochs=1', '--objectives=base,cmi',
                '--train_corrs=0.9', '--noises=0.8', '--seeds=0,1']


@pytest.mark.slow
def test_two_shards_as_two_processes_equal_the_unsharded_sweep(tmp_path):
  shared = str(tmp_path / 'sharded')
  procs = [command('multi_digit_sweep', f'--workdir={shared}',
                   f'--shard={i}/2', *SWEEP) for i in (0, 1)]
  for proc in procs:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
  whole = str(tmp_path / 'whole')
  code, _, err = run_command('multi_digit_sweep', f'--workdir={whole}',
                             *SWEEP, timeout=600)
  assert code == 0, err
  cells = sorted(os.path.relpath(r, whole) for r, _, f in os.walk(whole)
                 if 'results.json' in f)
  assert len(cells) == 4
  assert sorted(os.path.relpath(r, shared) for r, _, f in os.walk(shared)
                if 'results.json' in f) == cells
  for cell in cells:
    got, want = (without_seconds(json.load(open(os.path.join(d, cell,
                                                             'results.json'))))
                 for d in (shared, whole))
    assert got == want, cell
  code, out, err = run_command('plot_multi_digit', f'--sweep_dir={shared}')
  assert code == 0, err
  assert '| base | 0.9 | 0.8 | 2 |' in out and '| cmi | 0.9 | 0.8 | 2 |' in out
