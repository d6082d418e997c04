"""Continuous attributes in the engine: heads, losses, evaluation, a real run.

The labels ``[y, v]`` of one categorical and one continuous attribute (class
counts ``(2, 0)``): the head of ``v`` is a regression trained with squared
error, evaluation reports its MSE and R^2, groups come from ``y`` alone, and
the item-and-brightness experiment trains, resumes and sweeps from the
command line with every objective.
"""

import csv
import json
import os
import subprocess
import sys

import celeba_fixture
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmi_jax import attributes
from cmi_jax import distributed
from cmi_jax import evaluation
from cmi_jax import groups
from cmi_jax import models
from cmi_jax import objectives
from cmi_jax import plots
from cmi_jax import records
from cmi_jax import train
from cmi_jax.data import base as data_base
from cmi_jax.data import brightness
from cmi_jax.data import sources
from experiments import brightness as brightness_experiment
from experiments import driver
from experiments import plot_brightness
from experiments import sweeps
from experiments.configs import brightness as brightness_config

pytestmark = pytest.mark.usefixtures('fast_compiles')

NUM_CLASSES = brightness.NUM_CLASSES  # (2, 0)
OPTIM = train.OptimConfig(lr=1e-2, cls_lr=1e-2, d_lr=1e-2)


def mixed_labels(rng, n):
  """``[y, v]`` float32 with a few missing labels of each kind."""
  y = rng.integers(0, 2, n).astype(np.float32)
  v = (2 * y - 1) + rng.normal(size=n).astype(np.float32)
  y[:3] = -1
  v[3:6] = np.nan
  return np.stack([y, v], 1)


def test_row_losses_are_cross_entropy_and_squared_error_on_labelled_rows():
  rng = np.random.default_rng(0)
  labels = mixed_labels(rng, 12)
  logits = rng.normal(size=(12, 2)).astype(np.float32)
  values = rng.normal(size=(12, 1)).astype(np.float32)
  loss, present = attributes.row_losses(
      [jnp.asarray(logits), jnp.asarray(values)], jnp.asarray(labels),
      NUM_CLASSES)
  want_present = np.stack([labels[:, 0] >= 0, ~np.isnan(labels[:, 1])], 1)
  np.testing.assert_array_equal(present, want_present)
  # A negative value is a label, not a missing one.
  assert (labels[want_present[:, 1], 1] < 0).any()
  log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  y = np.maximum(labels[:, 0], 0).astype(int)
  want_ce = np.where(want_present[:, 0], -log_softmax[np.arange(12), y], 0)
  want_se = np.where(want_present[:, 1],
                     (values[:, 0] - np.nan_to_num(labels[:, 1]))**2, 0)
  np.testing.assert_allclose(loss, np.stack([want_ce, want_se], 1),
                             rtol=1e-5, atol=1e-6)
  # The per-head means of the 'none' weighting are those rows' means.
  heads = groups.head_losses([jnp.asarray(logits), jnp.asarray(values)],
                             jnp.asarray(labels), NUM_CLASSES)
  np.testing.assert_allclose(heads, [want_ce.sum() / 9, want_se.sum() / 9],
                             rtol=1e-5)
  assert np.isfinite(jax.grad(lambda v: groups.head_losses(
      [jnp.asarray(logits), v], jnp.asarray(labels), NUM_CLASSES)[1])(
          jnp.asarray(values))).all()


def test_groups_come_from_the_categorical_attributes():
  labels = jnp.asarray([[0, -2.5], [1, 0.3], [-1, 1.0], [1, np.nan]],
                       jnp.float32)
  assert groups.num_groups((2, 0)) == 2 and groups.num_groups((2, 0, 3)) == 6
  np.testing.assert_array_equal(groups.group_index(labels, (2, 0)),
                                [0, 1, -1, 1])
  three = jnp.asarray([[1, 7.0, 2], [0, -1.0, 1]], jnp.float32)
  np.testing.assert_array_equal(groups.group_index(three, (2, 0, 3)), [5, 1])


def test_label_checks_take_values_and_refuse_fractional_classes():
  labels = np.array([[0, -3.2], [1, np.nan], [-1, 0.5]], np.float32)
  data_base.validate_labels(labels, NUM_CLASSES)
  with pytest.raises(ValueError, match='attribute #0 has label 0.5'):
    data_base.validate_labels(np.array([[0.5, 1.0]], np.float32), NUM_CLASSES)
  with pytest.raises(ValueError, match='floating'):
    data_base.validate_labels(np.array([[0, 1]], np.int32), NUM_CLASSES)


@pytest.fixture(scope='module')
def digits():
  return sources.load_digits('mnist', 'embedded')


@pytest.fixture(scope='module')
def splits(digits):
  return brightness.brightness_splits(digits, (3, 8), train_corr=0.9,
                                      noise=0.3, batch_size=50, seed=0)


def test_brightness_follows_the_value_and_the_splits_their_correlation(
    splits, digits):
  # Every split's value has the split's correlation with the class sign.
  for name, want in (('train', 0.9), ('val', 0.9), ('test_anti', -0.9),
                     ('test_uncorr', 0.0)):
    labels = np.asarray(splits[name].labels)
    assert labels.dtype == np.float32 and set(labels[:, 0]) == {0.0, 1.0}
    corr = np.corrcoef(2 * labels[:, 0] - 1, labels[:, 1])[0, 1]
    assert abs(corr - want) < 0.1, (name, corr)
    assert len(labels) % 50 == 0 or name in ('train', 'train_eval')
  # Without occlusion an image is its item dimmed by b(v), to rounding.
  images = digits.split('val')[0][:5]
  v = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
  out = brightness.render(images, v, 0.0, 4, jax.random.key(0))[..., 0]
  want = images / 255.0 * brightness.brightness(v)[:, None, None] * 255.0
  assert np.abs(out.astype(float) - want).max() <= 0.5 + 1e-9
  assert np.all(np.diff(brightness.brightness(v)) > 0)


def mixed_trainer(objective, data):
  return train.make_trainer(
      models.MLPEncoder(4, (8,)), objective, (2, 2), NUM_CLASSES, OPTIM,
      adversary_hidden=(8,), block_size=5,
      circe_heldout_labels=data_base.heldout_labels(data, NUM_CLASSES, 0.1))


@pytest.mark.parametrize('objective', objectives.names())
def test_every_objective_trains_with_a_continuous_attribute(objective,
                                                            splits):
  data = splits['train']
  trainer = mixed_trainer(objective, data)
  assert trainer.objective.block_size == 5
  state = trainer.init(jax.random.PRNGKey(0),
                       data_base.first_batches(data, 50)['image'])
  state, metrics = trainer.jit_train_epoch(state, data, 4)
  assert {'loss/ce_0', 'accuracy/attr_0', 'loss/mse_1'} <= set(metrics)
  assert 'accuracy/attr_1' not in metrics
  assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
  assert all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(
      jax.device_get(state)))


def test_evaluation_reports_the_regression_of_the_stacked_predictions(
    splits):
  trainer = mixed_trainer('cmi', splits['train'])
  state = trainer.init(jax.random.PRNGKey(0), data_base.first_batches(
      splits['train'], 50)['image'])
  state, _ = trainer.jit_train_epoch(state, splits['train'], 6)
  stats = evaluation.evaluate(trainer, state, splits['test_uncorr'])
  summary = evaluation.summarize(stats)
  keep = stats['mask'] > 0
  y, v_hat = stats['labels'][keep, 1], stats['preds'][keep, 1]
  mse = np.mean((y - v_hat)**2)
  np.testing.assert_allclose(summary['mse'], mse, rtol=1e-4)
  np.testing.assert_allclose(summary['r2'], 1 - mse / np.var(y), rtol=1e-3,
                             atol=1e-4)
  assert np.isnan(summary['accuracy_per_attribute'][1])
  item = np.mean(stats['preds'][keep, 0] == stats['labels'][keep, 0])
  np.testing.assert_allclose(summary['accuracy'], item, rtol=1e-6)
  assert np.isnan(summary['mse_per_attribute'][0])
  assert np.asarray(summary['confusion']).shape == (2, 2)


def tiny_config(**overrides):
  config = brightness_config.get_config()
  config.update({'dataset': 'mnist', 'source': 'embedded', 'classes': (3, 8),
                 'noise': 0.3, 'num_epochs': 2, 'batch_size': 50,
                 'checkpoint_every': 1, 'mi_every': 0, 'progress': False,
                 'tensorboard': False, 'lr_scale': 10.0, **overrides})
  return config


def test_a_run_trains_evaluates_and_resumes(tmp_path, monkeypatch):
  celeba_fixture.skip_figures(monkeypatch)  # The slow command draws them.
  workdir = str(tmp_path / 'run')
  config = tiny_config(objective='cmi', block_size=6, num_epochs=1)
  driver.train(brightness_experiment.SPEC, config, workdir)
  # Resumed for one more epoch: it starts from the saved epoch.
  config.num_epochs = 2
  results = driver.train(brightness_experiment.SPEC, config, workdir,
                         allow_change=('num_epochs',))
  log = [json.loads(line) for line in open(os.path.join(workdir,
                                                         'log.jsonl'))]
  assert [r['epoch'] for r in log] == [1, 2]
  assert np.isfinite(log[-1]['eval']['test_anti']['mse'])
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['config']['block_size'] == 6
  for summary in results['final']['eval'].values():
    assert np.isfinite(summary['mse']) and summary['r2'] <= 1.0
    assert 0.0 <= summary['worst_group_accuracy'] <= summary['accuracy']


@pytest.mark.slow  # A whole command; the run above is the same driver.
def test_the_command_line_reports_the_regression_and_draws(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'experiments.brightness',
       f'--workdir={tmp_path}', '--config.dataset=mnist',
       '--config.source=embedded', '--config.classes=3,8',
       '--config.noise=0.3', '--config.batch_size=50', '--config.num_epochs=1',
       '--config.mi_every=0', '--config.progress=False',
       '--config.tensorboard=False', '--config.objective=mmd_cmi'],
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.count('brightness MSE') == 4
  assert {'predictions_test_anti.png', 'subpopulation_accuracy_test_anti.png',
          'joint_counts.png'} <= set(os.listdir(tmp_path / 'figures'))


def test_a_prediction_grid_never_marks_a_value_wrong(tmp_path, monkeypatch):
  errors = []
  real = plots.border_color
  monkeypatch.setattr(plots, 'border_color',
                      lambda wrong: errors.append(list(wrong)) or real(wrong))
  labels = np.array([[0, -1.25], [1, 0.5]], np.float32)
  preds = np.array([[1, -1.0], [1, 0.75]], np.float32)
  path = plots.image_grid(np.zeros((2, 4, 4, 1)), labels,
                          str(tmp_path / 'grid.png'), 'grid', preds=preds,
                          class_names=[['a', 'b'], None],
                          num_classes=NUM_CLASSES)
  assert os.path.getsize(path) > 0
  assert errors == [[True, False], [False, False]]


@pytest.mark.slow  # Three runs; tests/test_sweep.py checks the vmapped loop.
def test_a_vmapped_sweep_equals_separate_runs(tmp_path, monkeypatch):
  celeba_fixture.skip_figures(monkeypatch)
  cells = sweeps.with_lambdas([sweeps.cell('cmi', 0.9, 0.3, 0)], [0.5, 2.0])
  config = tiny_config(num_epochs=1)
  vmapped = driver.run_sweep(brightness_experiment.SPEC, config,
                             str(tmp_path / 'vmapped'), cells, vmap=True,
                             extra=('disentangle_weight',))
  separate = driver.run_sweep(brightness_experiment.SPEC, config,
                              str(tmp_path / 'separate'), cells,
                              extra=('disentangle_weight',))
  assert [r['disentangle_weight'] for r in vmapped] == [0.5, 2.0]
  for a, b in zip(vmapped, separate):
    for key in ('test_anti/mse', 'test_anti/r2', 'test_anti/accuracy'):
      np.testing.assert_allclose(a[key], b[key], rtol=2e-3, atol=2e-4)
  table = records.aggregate(vmapped, ('test_anti/mse', 'test_anti/r2'))
  assert np.isfinite(table[0]['test_anti/mse/mean'])


@pytest.mark.slow  # The gather is dtype-blind; tests/test_train.py checks it.
def test_eight_devices_give_the_one_device_epoch(splits):
  # The sharded step gathers the float labels with the codes: a continuous
  # attribute's blocks and the regression head see the global batch.
  data = splits['train'].replace(batch_size=48)
  trainer = train.make_trainer(models.MLPEncoder(4, (8,)), 'cmi', (2, 2),
                               NUM_CLASSES, OPTIM, adversary_hidden=(8,))
  example = data_base.first_batches(data, 48)['image']
  fresh = jax.device_get(trainer.init(jax.random.PRNGKey(1), example))
  expected = jax.device_get(trainer.jit_train_epoch(
      jax.device_put(fresh), data, 3))
  mesh = distributed.data_mesh()
  assert mesh.size == 8
  actual = jax.device_get(distributed.shard_map_train_epoch(trainer, mesh)(
      distributed.replicate_state(jax.device_put(fresh), mesh), data, 3))
  for got, want in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_sweep_table_reports_the_regression_of_the_cells(tmp_path):
  # The committed 100-epoch probe: 3 seeds of Base and of CMI.
  sweep_dir = os.path.join(os.path.dirname(__file__), os.pardir, 'docs',
                           'results', 'brightness_probe')
  paths = plot_brightness.make_report(sweep_dir, str(tmp_path))
  with open(paths['table.csv']) as f:
    rows = {row['objective']: row for row in csv.DictReader(f)}
  for objective in ('base', 'cmi'):
    r2 = []
    for seed in range(3):
      with open(os.path.join(sweep_dir, objective, 'corr0.9_noise0.8',
                             f'seed{seed}', 'results.json')) as f:
        r2.append(json.load(f)['final']['eval']['test_anti']['r2'])
    np.testing.assert_allclose(float(rows[objective]['test_anti/r2/mean']),
                               np.mean(r2), rtol=1e-12)
    assert rows[objective]['num_seeds'] == '3'
