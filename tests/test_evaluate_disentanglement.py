"""Disentanglement evaluation of a finished run (evaluate_disentanglement.py).

A tiny multi-digit run on the embedded MNIST digits is evaluated from its
checkpoints; the report must equal the metrics computed directly on the codes
of the run's own final state (test_celeba_experiment.py runs the CelebA path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from cmi_jax import checkpoint as ckpt
from cmi_jax import evaluation
from cmi_jax import metrics
from cmi_jax import records
from experiments import evaluate_disentanglement as ed
from experiments import multi_digit_mnist
import tiny

pytestmark = pytest.mark.usefixtures('fast_compiles')

SPLITS = ('test_uncorr', 'test_anti')


@pytest.fixture(scope='module')
def md_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('md_run'))
  # Base: no adversary to compile; large enough steps for 4 steps to move the
  # codes and predictions.
  config = tiny.multi_digit_config(objective='base', mi_every=0, lr=1e-3,
                                   cls_lr=1e-2, d_lr=1e-3)
  return workdir, multi_digit_mnist.train_and_evaluate(config, workdir)


def test_latest_checkpoint_gives_the_final_states_metrics(md_run):
  workdir, results = md_run
  report = ed.evaluate_run(workdir, ckpt.LATEST, SPLITS)
  assert report['experiment'] == 'multi_digit'
  assert report['epoch'] == results['final']['epoch'] == 2
  assert report['attributes'] == ['digit0', 'digit1']

  # The same codes, from the state the run ended with (not a checkpoint).
  saved, info = records.read_config(workdir)
  config = ml_collections.ConfigDict(saved)
  trainer, data, _ = ed.rebuild(config, ed.experiment_kind(config, info))
  counts = tiny.read_json(workdir, 'joint_counts.json')
  for split in SPLITS:
    codes, factors, summary = evaluation.codes_and_labels(
        trainer, results['state'], data[split])
    entry = report['splits'][split]
    final = results['final']['eval'][split]
    assert entry['accuracy'] == pytest.approx(final['accuracy'], abs=1e-9)
    assert entry['accuracy'] == pytest.approx(summary['accuracy'], abs=1e-9)
    assert entry['num_rows'] == len(codes) == final['num_examples']
    np.testing.assert_array_equal(factors, np.asarray(data[split].labels))
    joint = np.zeros((2, 2), int)
    np.add.at(joint, (factors[:, 0], factors[:, 1]), 1)
    np.testing.assert_array_equal(joint, counts[split])
    assert codes.shape == (len(factors), 10) and np.all(np.isfinite(codes))
    assert np.ptp(codes, axis=0).min() > 0  # trained codes vary
    if split == 'test_anti':  # one split suffices (the metrics take time)
      expected = metrics.compute_all(codes, factors, seed=0)
      assert entry['metrics'] == pytest.approx(expected, rel=1e-9,
                                               abs=1e-12)

  saved = tiny.read_json(workdir, ed.OUTPUT_JSON)
  assert saved['checkpoint'] == ckpt.LATEST
  assert saved['splits']['test_anti']['metrics'] == pytest.approx(
      report['splits']['test_anti']['metrics'])
  with open(os.path.join(workdir, ed.OUTPUT_MD)) as f:
    lines = f.read().splitlines()
  assert lines[2] == '| metric | test_uncorr | test_anti |'
  body = {line.split(' | ')[0][2:]: line for line in lines[4:]}
  assert set(body) == {'rows', 'accuracy', *report['splits']['test_uncorr'][
      'metrics']}
  value = report['splits']['test_anti']['metrics']['mig/mig']
  assert body['mig/mig'].endswith(f'| {value:.4f} |')


def test_best_checkpoint_and_row_limit(md_run):
  workdir, results = md_run
  best = results['best_val_accuracy']
  report = ed.evaluate_run(workdir, ckpt.BEST_ACCURACY, ('test_anti',),
                           max_rows=60, seed=3)
  assert report['epoch'] == best['epoch']
  entry = report['splits']['test_anti']
  assert entry['accuracy'] == pytest.approx(
      best['eval']['test_anti']['accuracy'], abs=1e-9)
  assert entry['num_rows'] == 60
  assert list(report['splits']) == ['test_anti'] and report['seed'] == 3


def test_experiment_kind():
  assert ed.experiment_kind({'celeba_dir': None}, {}) == 'celeba'
  assert ed.experiment_kind({}, {'dataset': 'celeba'}) == 'celeba'
  assert ed.experiment_kind({'num_digits': 2, 'classes': [3, 8]},
                            {'dataset': 'mnist'}) == 'multi_digit'
  with pytest.raises(ValueError, match='cannot tell the experiment'):
    ed.experiment_kind({'noise_var': 0.1}, {})


def _copy_config(md_run, tmp_path, edit=None):
  workdir, _ = md_run
  target = tmp_path / 'run'
  target.mkdir()
  saved = tiny.read_json(workdir, 'config.json')
  if edit:
    edit(saved)
  with open(target / 'config.json', 'w') as f:
    json.dump(saved, f)
  return str(target)


def test_bad_inputs_name_the_problem(md_run, tmp_path):
  workdir, _ = md_run
  with pytest.raises(ValueError, match='is not a directory'):
    ed.evaluate_run(str(tmp_path / 'missing'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='config.json not found'):
    ed.evaluate_run(str(tmp_path / 'empty'))
  (tmp_path / 'empty' / 'config.json').write_text('{"no": 1}')
  with pytest.raises(ValueError, match='is not a run config'):
    ed.evaluate_run(str(tmp_path / 'empty'))
  with pytest.raises(ValueError, match='--checkpoint'):
    ed.evaluate_run(workdir, 'best')
  with pytest.raises(ValueError, match='--splits'):
    ed.evaluate_run(workdir, splits=('test',))
  with pytest.raises(ValueError, match='--max_rows'):
    ed.evaluate_run(workdir, max_rows=-1)

  def foreign(saved):
    saved['config'] = {'noise_var': 0.1}
    saved['data'] = {}

  (tmp_path / 'foreign').mkdir()
  with pytest.raises(ValueError, match='cannot tell the experiment'):
    ed.evaluate_run(_copy_config(md_run, tmp_path / 'foreign', foreign))


def test_run_without_checkpoints_lists_what_it_has(md_run, tmp_path):
  bare = _copy_config(md_run, tmp_path)
  with pytest.raises(ValueError, match=r"no 'best_val_accuracy' checkpoint"
                     r'.*none'):
    ed.evaluate_run(bare)
  workdir, _ = md_run
  os.makedirs(os.path.join(bare, 'checkpoints'))
  shutil.copytree(os.path.join(workdir, 'checkpoints', ckpt.LATEST),
                  os.path.join(bare, 'checkpoints', ckpt.LATEST))
  with pytest.raises(ValueError, match=r"it has \['latest'\]"):
    ed.evaluate_run(bare, ckpt.BEST_LOSS)
  assert not os.path.exists(os.path.join(bare, ed.OUTPUT_JSON))


@pytest.mark.slow
def test_command_line(md_run):
  workdir, results = md_run
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.evaluate_disentanglement',
       f'--workdir={workdir}', '--checkpoint=best_val_loss',
       '--splits=test_uncorr', '--max_rows=100'],
      capture_output=True, text=True, timeout=600,
      env=dict(os.environ,
               XLA_FLAGS='--xla_force_host_platform_device_count=1'),
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert out.returncode == 0, out.stderr[-3000:]
  assert '| dci/disentanglement |' in out.stdout
  saved = tiny.read_json(workdir, ed.OUTPUT_JSON)
  assert saved['checkpoint'] == ckpt.BEST_LOSS
  assert saved['epoch'] == results['best_val_loss']['epoch']
