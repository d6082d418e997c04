"""The CelebA experiment end to end, on a fake CelebA in the official layout.

One short weakly supervised run goes through the whole path (files -> cache
-> correlated sub-samples -> training -> evaluation -> figures -> tables ->
disentanglement metrics); expected values come from the fixture's files, not
from the code under test.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys

import celeba_fixture
import ml_collections
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags
from PIL import Image

from cmi_jax import checkpoint as ckpt
from cmi_jax import evaluation
from cmi_jax import metrics
from experiments import celeba as celeba_experiment
from experiments import celeba_sweep
from experiments import common
from experiments import driver
from experiments import sweeps
from experiments import evaluate_disentanglement
from experiments import plot_celeba
from experiments.configs import celeba as celeba_config
import tiny

pytestmark = pytest.mark.usefixtures('fast_compiles')

TRAIN_CORR, WEAK, BATCH = (celeba_fixture.TRAIN_CORR, celeba_fixture.WEAK,
                           celeba_fixture.BATCH)
CELL = celeba_sweep.weak_cell(sweeps.cell('cmi', TRAIN_CORR, 0.0, 0), WEAK)
SPEC = celeba_experiment.SPEC


def resolve(config):
  return driver.resolve(SPEC, config)


def load_splits(config):
  """``(loaded CelebA, Splits)`` of a resolved config."""
  loaded = SPEC.load(config)
  return loaded, SPEC.splits(config, loaded)


def _official_labels(celeba_dir, names=('Male', 'Smiling')):
  """{split code: labels [N, K] in {0, 1}} of the official files."""
  header, _, attributes, partition = celeba_fixture.read_official(celeba_dir)
  columns = [header.index(n) for n in names]
  return {s: attributes[partition == s][:, columns].astype(int)
          for s in range(3)}


def _table(corr):
  return np.array([[1 + corr, 1 - corr], [1 - corr, 1 + corr]]) / 4


def _largest_counts(labels, table):
  """Brute force: the largest T with floor(T p) <= available everywhere."""
  available = np.zeros((2, 2), int)
  np.add.at(available, (labels[:, 0], labels[:, 1]), 1)
  for total in range(available.sum(), -1, -1):
    counts = np.floor(total * table + 1e-9).astype(int)
    if np.all(counts <= available):
      return counts
  raise AssertionError('no sub-sample')


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('cache'))


@pytest.fixture(scope='module')
def sweep_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('sweep'))


@pytest.fixture(scope='module')
def finished_run(fake_celeba, cache_dir, sweep_dir):
  """One weak-supervision sweep cell, trained for real (2 scaled epochs)."""
  config = celeba_fixture.tiny_config(fake_celeba, cache_dir)
  config.update(CELL.overrides())
  workdir = os.path.join(celeba_sweep.mode_dir(sweep_dir, 'weak'), CELL.name)
  results = celeba_experiment.train_and_evaluate(config, workdir)
  return workdir, results


def test_run_outputs_and_exact_joint_counts(finished_run, fake_celeba):
  workdir, _ = finished_run
  results = tiny.read_json(workdir, 'results.json')
  saved = tiny.read_json(workdir, 'config.json')
  counts = {k: np.array(v)
            for k, v in tiny.read_json(workdir, 'joint_counts.json').items()}
  labels = _official_labels(fake_celeba)
  expected = {'train_eval': _largest_counts(labels[0], _table(TRAIN_CORR)),
              'val': _largest_counts(labels[1], _table(TRAIN_CORR)),
              'test_anti': _largest_counts(labels[2], _table(-TRAIN_CORR)),
              'test_uncorr': _largest_counts(labels[2], _table(0.0))}
  for split, table in expected.items():
    np.testing.assert_array_equal(counts[split], table, err_msg=split)
  kept = counts['train (every label kept)']
  assert np.all(kept <= expected['train_eval'])

  # Weak supervision: batch and epochs x 1 / (1 - 0.5); config.json holds
  # the resolved values.
  batch = round(BATCH / (1 - WEAK))
  assert saved['config']['batch_size'] == batch == results['data'][
      'batch_size']
  assert saved['config']['num_epochs'] == 2 and results['num_epochs'] == 2
  assert saved['config']['weak_scaling'] is False
  assert saved['config']['attributes'] == ['Male', 'Smiling']
  num_train = int(expected['train_eval'].sum())
  assert results['step'] == 2 * (num_train // batch)
  assert results['data']['labels_per_attribute'] == [
      num_train - round(WEAK * num_train)] * 2
  assert results['data']['source'] == 'files'
  assert results['attributes'] == ['Male', 'Smiling']

  for key in ('final', 'best_val_loss', 'best_val_accuracy'):
    record = results[key]
    assert set(record['eval']) == set(celeba_experiment.EVAL_SPLITS)
    for split, summary in record['eval'].items():
      assert 0.0 <= summary['accuracy'] <= 1.0
      assert all(0.0 <= a <= 1.0 for a in summary['accuracy_per_attribute'])
      assert np.isfinite(summary['loss']) and summary['loss'] > 0
      # Evaluation covers whole batches of the sub-sample.
      table = expected[split]
      covered = (table.sum() // batch) * batch
      combos = np.array(summary['combination_count'])
      assert combos.sum() == covered == summary['num_examples']
      assert np.all(combos <= table.ravel())
      assert np.array(summary['confusion']).sum() == covered
  assert results['final']['epoch'] == 2
  assert 'test_uncorr/I(z1;z2)' in results['final']['extra']
  log = tiny.read_log(workdir)
  assert [r['epoch'] for r in log] == [1, 2]
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      'best_val_accuracy', 'best_val_loss', 'best_val_worst_group', 'latest']


def test_run_figures_are_valid_pngs(finished_run):
  workdir, _ = finished_run
  names = ['curves', 'joint_counts'] + [
      f'samples_{s}' for s in ('train',) + celeba_experiment.EVAL_SPLITS] + [
          f'{kind}_{s}' for kind in ('confusion', 'latent_correlation',
                                     'subpopulation_accuracy', 'predictions')
          for s in ('test_anti', 'test_uncorr')]
  for name in names:
    path = os.path.join(workdir, 'figures', f'{name}.png')
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n', name
    with Image.open(path) as im:
      im.verify()
    with Image.open(path) as im:
      assert im.size[0] > 100 and im.size[1] > 100, name


def test_subpopulation_table_matches_predictions(finished_run):
  workdir, results = finished_run
  config = ml_collections.ConfigDict(
      tiny.read_json(workdir, 'config.json')['config'])
  _, splits = load_splits(config)
  trainer = common.build_trainer(config, splits)
  state = results['state']  # the final state, as the run left it
  with open(os.path.join(workdir, 'subpopulation_accuracy.csv')) as f:
    rows = list(csv.DictReader(f))
  assert {r['record'] for r in rows} == {'final', 'best_val_accuracy',
                                         'best_val_loss',
                                         'best_val_worst_group'}
  for split, data in splits.evals.items():
    stats = evaluation.evaluate(trainer, state, data)
    labels, preds = stats['labels'], stats['preds']
    for row in (r for r in rows if r['record'] == 'final'
                and r['split'] == split):
      cell = (labels[:, 0] == int(row['Male'])) & (
          labels[:, 1] == int(row['Smiling']))
      assert int(row['count']) == cell.sum()
      for k, name in enumerate(('Male', 'Smiling')):
        if cell.any():
          np.testing.assert_allclose(
              float(row[f'accuracy/{name}']),
              np.mean(preds[cell, k] == labels[cell, k]), atol=1e-6)
        else:
          assert row[f'accuracy/{name}'] == 'nan'
  with open(os.path.join(workdir, 'subpopulation_accuracy.md')) as f:
    table = f.read()
  assert table.count('\n| test_anti |') == 4


def test_evaluate_disentanglement_on_the_celeba_run(finished_run):
  workdir, results = finished_run
  report = evaluate_disentanglement.evaluate_run(workdir, ckpt.LATEST)
  assert report['experiment'] == 'celeba' and report['epoch'] == 2
  assert report['attributes'] == ['Male', 'Smiling']
  for split in ('test_uncorr', 'test_anti'):
    entry = report['splits'][split]
    final = results['final']['eval'][split]
    assert entry['accuracy'] == pytest.approx(final['accuracy'], abs=1e-9)
    assert entry['accuracy_per_attribute'] == pytest.approx(
        final['accuracy_per_attribute'], abs=1e-9)
    assert entry['num_rows'] == final['num_examples']
    assert {m.split('/')[0] for m in entry['metrics']} == set(
        metrics.METRIC_NAMES)
    for name in ('dci/disentanglement', 'dci/completeness', 'mig/mig',
                 'sap/sap', 'irs/irs', 'factor_vae/eval_accuracy',
                 'beta_vae/eval_accuracy'):
      assert 0.0 <= entry['metrics'][name] <= 1.0, name
  assert tiny.read_json(workdir, 'disentanglement.json')['splits'][
      'test_anti']['metrics'] == pytest.approx(
          report['splits']['test_anti']['metrics'])
  with open(os.path.join(workdir, 'disentanglement.md')) as f:
    table = f.read()
  assert '| dci/disentanglement |' in table and 'test_anti' in table


def _parse_flags(*args):
  """The experiment's config after ``args``, parsed as the command line is."""
  argv = ['prog', *args]
  values = flags.FlagValues()
  # Field overrides are registered from the argv seen at definition time.
  holder = config_flags.DEFINE_config_dict(
      'config', celeba_config.get_config(), flag_values=values,
      lock_config=True, sys_argv=argv)
  values(argv)
  return resolve(holder.value)


def test_attribute_flag_syntax():
  resolved = _parse_flags('--config.attributes=Male,Smiling,Eyeglasses',
                          '--config.weak_supervision=0.9', '--config.z_dim=9')
  assert resolved.attributes == ('Male', 'Smiling', 'Eyeglasses')
  assert (resolved.batch_size, resolved.num_epochs) == (1000, 2000)
  resolved = _parse_flags("--config.attributes=('Eyeglasses', 'Young')")
  assert resolved.attributes == ('Eyeglasses', 'Young')
  assert _parse_flags().attributes == ('Male', 'Smiling')


@pytest.mark.parametrize('attributes, match', [
    ('Male,smiling', r"did you mean \['Smiling'\]"),
    ('Male,Smilling', 'unknown CelebA attributes'),
    ('Male', 'at least two'),
    ('Male,Male', 'at least two different'),
    ('', 'at least two'),
])
def test_bad_attributes_name_the_flag(attributes, match, tmp_path):
  config = celeba_config.get_config()
  config.attributes = (attributes,)
  with pytest.raises(ValueError, match=match) as info:
    celeba_experiment.train_and_evaluate(config, str(tmp_path / 'run'))
  assert 'config.attributes' in str(info.value)
  assert not os.path.exists(tmp_path / 'run')  # failed before any work


@pytest.mark.parametrize('overrides, match', [
    ({'source': 'tfds_or_files'}, r'config.source must be one of'),
    ({'train_corr': 1.5}, r'config.train_corr: correlation 1.5'),
    ({'attributes': ('Male,Smiling,Young',), 'train_corr': -0.5,
      'z_dim': 12}, r'config.train_corr'),
    ({'noise': 2.0}, r'config.noise'),
    ({'data_placement': 'gpu'},
     r"config.data_placement must be one of \('auto', 'device', 'host'\); "
     r"got 'gpu'"),
    ({'objective': 'gan'}, 'objective'),
    ({'encoder': 'resnet'}, 'encoder'),
    ({'attributes': ('Male,Smiling,Young',)}, 'z_dim=10'),
])
def test_bad_fields_fail_before_reading_data(overrides, match, tmp_path):
  config = celeba_fixture.tiny_config(tmp_path / 'no_data', tmp_path / 'cache',
                                      **overrides)
  with pytest.raises(ValueError, match=match):
    celeba_experiment.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'cache')
  assert not os.path.exists(tmp_path / 'run')


def test_host_placement_trains_end_to_end_and_resumes(fake_celeba, cache_dir,
                                                       tmp_path, monkeypatch):
  """Images in host memory: a run stopped after epoch 1, then resumed."""
  celeba_fixture.skip_figures(monkeypatch)  # finished_run checks them
  config = celeba_fixture.tiny_config(
      fake_celeba, cache_dir, objective='base', weak_supervision=0.0,
      num_epochs=1, data_placement='host')
  workdir = str(tmp_path / 'host')
  first = celeba_experiment.train_and_evaluate(config, workdir)
  config.num_epochs = 2
  # The CelebA files moved in between: a read-only input's path is cosmetic.
  config.celeba_dir = shutil.copytree(fake_celeba, str(tmp_path / 'moved'))
  resumed = celeba_experiment.train_and_evaluate(
      config, workdir, allow_change=('num_epochs',))
  assert resumed['data']['location'] == str(tmp_path / 'moved')

  steps = resumed['data']['num_examples']['train'] // BATCH
  assert resumed['data']['placement'] == 'host'
  assert (first['step'], resumed['step']) == (steps, 2 * steps)
  log = tiny.read_log(workdir)
  assert [r['epoch'] for r in log] == [1, 2]
  assert log[0] == json.loads(json.dumps(first['final']))  # kept on resume
  for split, summary in resumed['final']['eval'].items():
    covered = resumed['data']['num_examples'][split] // BATCH * BATCH
    assert summary['num_examples'] == covered, split
    assert np.isfinite(summary['loss']) and 0 <= summary['accuracy'] <= 1
  assert tiny.read_json(workdir, 'config.json')['config'][
      'data_placement'] == 'host'


def test_weak_supervision_schedule_is_the_papers():
  for p in (0.0, 0.5, 0.75, 0.9, 0.95):
    batch, epochs = celeba_experiment.weak_supervision_schedule(
        100, 200, p, 2200)
    assert batch == round(100 / (1 - p))
    assert epochs == min(2200, round(200 / (1 - p)))
  assert celeba_experiment.weak_supervision_schedule(100, 200, 0.95, 2200) == (
      2000, 2200)  # capped
  # The cap never shortens a run below its unscaled length.
  assert celeba_experiment.weak_supervision_schedule(
      100, 3000, 0.5, 2200) == (200, 3000)


@pytest.mark.parametrize('field, value, match', [
    ('weak_supervision', 1.0,
     r'config.weak_supervision must lie in \[0, 1\)'),
    ('weak_supervision', -0.1, r'config.weak_supervision'),
    ('weak_max_epochs', 0, r'config.weak_max_epochs'),
    ('batch_size', 0, r'config.batch_size'),
])
def test_bad_schedule_fields_are_named(field, value, match):
  config = celeba_config.get_config()
  config[field] = value
  with pytest.raises(ValueError, match=match):
    resolve(config)


def test_resolve_is_idempotent_and_fast_comes_before_scaling():
  config = celeba_config.get_config('fast')
  config.weak_supervision = 0.75
  resolved = resolve(config)
  assert resolved.num_epochs == round(celeba_config.FAST['num_epochs'] / 0.25)
  assert resolved.batch_size == 400
  assert resolved.mi_every == celeba_config.FAST['mi_every']
  again = resolve(resolved)
  assert again.to_dict() == resolved.to_dict()
  assert config.num_epochs == celeba_config.FAST['num_epochs']  # untouched
  assert resolved.lr == 1e-5 and config.lr is None
  config = celeba_config.get_config()
  config.weak_supervision = 0.75
  config.weak_scaling = False
  unscaled = resolve(config)
  assert (unscaled.batch_size, unscaled.num_epochs) == (100, 200)


def test_paper_defaults():
  config = celeba_config.get_config()
  assert tuple(config.attributes) == ('Male', 'Smiling')
  assert config.train_corr == 0.8 and config.objective == 'cmi'
  assert config.disentangle_weight == 10.0 and config.num_epochs == 200
  assert config.batch_size == 100 and config.num_cls_steps == 1
  assert config.noise == 0.0 and config.weak_supervision == 0.0
  for objective in ('base', 'mi', 'cmi'):
    config.objective = objective
    optim = common.resolve_optim(common.resolve_learning_rates(
        ml_collections.ConfigDict(config.to_dict()), celeba_config.PAPER_OPTIM))
    assert (optim.lr, optim.cls_lr, optim.d_lr) == (1e-5, 1e-4, 1e-4)


def test_three_attributes_load(fake_celeba, cache_dir):
  config = resolve(celeba_fixture.tiny_config(
      fake_celeba, cache_dir, attributes=('Male,Smiling,Eyeglasses',),
      train_corr=0.3, weak_supervision=0.0, batch_size=4, z_dim=9))
  loaded, splits = load_splits(config)
  assert loaded.attributes == ('Male', 'Smiling', 'Eyeglasses')
  assert splits.train.labels.shape[1] == 3
  assert splits.num_classes == (2, 2, 2)
  counts = splits.joint_counts['train_eval']
  assert counts.shape == (2, 2, 2)
  # All-equal combinations are favoured at a positive correlation.
  assert counts[0, 0, 0] > counts[0, 1, 0] and counts[1, 1, 1] > counts[1, 0, 1]


@pytest.mark.slow
def test_tfds_source_through_the_experiment(tmp_path):
  import tensorflow_datasets as tfds
  data_dir = str(tmp_path / 'tfds')
  celeba_fixture.write_celeba_tfds_metadata(data_dir, 48, 'array_record')
  config = resolve(celeba_fixture.tiny_config(
      tmp_path / 'no_files', tmp_path / 'cache', source='tfds',
      tfds_data_dir=data_dir, celeba_dir=None, train_corr=0.0,
      weak_supervision=0.0, batch_size=4))
  with tfds.testing.mock_data(num_examples=48, data_dir=data_dir,
                              policy=tfds.testing.MockPolicy.USE_FILES):
    loaded, splits = load_splits(config)
  assert loaded.source == 'tfds'
  assert splits.evals['test_uncorr'].images.shape[1:] == (64, 64, 3)
  counts = splits.joint_counts['test_uncorr']
  assert np.all(counts == counts[0, 0]) and counts.sum() > 0


def test_weak_grid_names_and_overrides():
  cells = celeba_sweep.weak_grid(['base', 'cmi'], [0, 0.5, 0.95], 0.8, 0.0,
                                 [1, 2])
  assert len(cells) == 12 and len({c.name for c in cells}) == 12
  assert cells[2].name == os.path.join('weak0.5', 'base', 'corr0.8_noise0',
                                       'seed1')
  assert cells[2].overrides() == {'objective': 'base', 'train_corr': 0.8,
                                  'noise': 0.0, 'seed': 1,
                                  'weak_supervision': 0.5}
  with pytest.raises(ValueError, match='weak_fractions'):
    celeba_sweep.weak_grid(['cmi'], [0.5, 1.0], 0.8, 0.0, [1])


def test_sweep_skips_finished_cells_and_runs_the_rest(finished_run, sweep_dir,
                                                      monkeypatch):
  weak_dir = celeba_sweep.mode_dir(sweep_dir, 'weak')
  done = os.path.join(weak_dir, CELL.name, 'results.json')
  before = os.path.getmtime(done)
  calls = []

  def fake_train(spec, config, source, workdir, allow_change=()):
    calls.append((config, workdir))
    raise RuntimeError('stop')

  monkeypatch.setattr(driver, '_train_one', fake_train)
  monkeypatch.setattr(celeba_experiment, 'SPEC', dataclasses.replace(
      SPEC, load=lambda config: None))
  base = celeba_config.get_config()
  base.celeba_dir = '/data/celeba'
  driver.train_cells(celeba_experiment.SPEC, base, weak_dir, [CELL])
  assert calls == [] and os.path.getmtime(done) == before
  other = celeba_sweep.weak_cell(sweeps.cell('base', 0.8, 0.0, 3), 0.9)
  with pytest.raises(RuntimeError, match='stop'):
    driver.train_cells(celeba_experiment.SPEC, base, weak_dir, [CELL, other])
  (config, workdir), = calls
  assert workdir == os.path.join(weak_dir, other.name)
  assert (config.objective, config.train_corr, config.seed,
          config.weak_supervision) == ('base', 0.8, 3, 0.9)
  assert config.celeba_dir == '/data/celeba'
  # Resolved once, by the driver: the scaling applied exactly once.
  assert config.batch_size == 1000 and not config.weak_scaling


def test_report_of_the_real_cell(finished_run, sweep_dir, tmp_path):
  _, results = finished_run
  paths = plot_celeba.make_report(sweep_dir, str(tmp_path / 'out'))
  assert set(paths) == {'celeba_weak_supervision.png',
                        'celeba_weak_supervision.csv',
                        'celeba_weak_supervision.md'}
  with open(paths['celeba_weak_supervision.csv']) as f:
    (row,) = list(csv.DictReader(f))
  assert float(row['weak_supervision']) == WEAK and row['objective'] == 'cmi'
  assert float(row['test_anti/accuracy/mean']) == pytest.approx(
      results['final']['eval']['test_anti']['accuracy'])


def _write_cell(root, cell, accuracies):
  """A finished cell as the experiment writes it (only what is collected)."""
  workdir = os.path.join(root, cell.name)
  os.makedirs(workdir)
  record = {'epoch': 3, 'eval': {s: {'accuracy': a, 'loss': 1.0 - a}
                                 for s, a in accuracies.items()}}
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'config': {**cell.overrides()}}, f)
  with open(os.path.join(workdir, 'results.json'), 'w') as f:
    json.dump({'final': record, 'best_val_loss': record,
               'best_val_accuracy': record, 'data': {'source': 'files'}}, f)


def test_paper_figures_and_tables_from_a_sweep(tmp_path):
  rng = np.random.default_rng(0)
  sweep = str(tmp_path / 'sweep')
  values = {}
  cells = sweeps.grid(['base', 'cmi'], [0.0, 0.4, 0.8], [0.0], [1, 2, 3])
  weak = celeba_sweep.weak_grid(['base', 'mi', 'cmi'], [0.0, 0.9], 0.8, 0.0,
                                [1, 2])
  for mode, group in (('corr', cells), ('weak', weak)):
    for cell in group:
      acc = {s: float(rng.uniform(0.5, 1.0)) for s in
             ('train_eval', 'val', 'test_anti', 'test_uncorr')}
      values[mode, cell.name] = acc
      _write_cell(celeba_sweep.mode_dir(sweep, mode), cell, acc)
  paths = plot_celeba.make_report(sweep)
  for name in ('celeba_correlation', 'celeba_weak_supervision'):
    with Image.open(paths[f'{name}.png']) as im:
      assert im.format == 'PNG' and im.size[0] > 500
  with open(paths['celeba_correlation.csv']) as f:
    corr_rows = list(csv.DictReader(f))
  assert len(corr_rows) == 2 * 3
  for row in corr_rows:
    members = [values['corr', c.name]['test_anti'] for c in cells
               if c.overrides()['objective'] == row['objective']
               and c.overrides()['train_corr'] == float(row['train_corr'])]
    assert int(row['num_seeds']) == 3
    assert float(row['test_anti/accuracy/mean']) == pytest.approx(
        np.mean(members))
    assert float(row['test_anti/accuracy/std']) == pytest.approx(
        np.std(members, ddof=1))
  with open(paths['celeba_weak_supervision.csv']) as f:
    weak_rows = list(csv.DictReader(f))
  assert len(weak_rows) == 3 * 2
  for row in weak_rows:
    members = [values['weak', c.name]['test_uncorr'] for c in weak
               if c.overrides()['objective'] == row['objective']
               and c.overrides()['weak_supervision']
               == float(row['weak_supervision'])]
    assert len(members) == 2 == int(row['num_seeds'])
    assert float(row['test_uncorr/accuracy/mean']) == pytest.approx(
        np.mean(members))
  with open(paths['celeba_weak_supervision.md']) as f:
    table = f.read()
  assert '| 90 % |' in table and table.count('\n') == 2 + 6
  with pytest.raises(ValueError, match='neither corr/ nor weak/'):
    plot_celeba.make_report(str(tmp_path / 'empty'))


@pytest.mark.slow
def test_command_line(fake_celeba, cache_dir, tmp_path):
  workdir = str(tmp_path / 'cli')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  out = subprocess.run(
      [sys.executable, '-m', 'experiments.celeba', f'--workdir={workdir}',
       '--config.source=files', f'--config.celeba_dir={fake_celeba}',
       f'--config.cache_dir={cache_dir}', '--config.attributes=Male,Smiling',
       '--config.train_corr=0.4', '--config.batch_size=10',
       '--config.num_epochs=1', '--config.mi_every=0',
       '--config.objective=base', '--config.progress=False'],
      capture_output=True, text=True, env=env, timeout=600,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'test_uncorr: accuracy' in out.stdout
  assert os.path.isfile(os.path.join(workdir, 'results.json'))


def test_blond_male_preset_trains_on_the_natural_splits_with_group_dro(
    fake_celeba, cache_dir, tmp_path):
  preset = celeba_config.get_config('blond_male')
  assert tuple(preset.attributes) == ('Blond_Hair', 'Male')
  assert preset.correlation_mode == 'natural'
  config = celeba_fixture.tiny_config(
      fake_celeba, cache_dir, attributes=('Blond_Hair', 'Male'),
      correlation_mode='natural', weak_supervision=0.0, batch_size=4,
      mi_every=0, group_weighting='groupdro')
  results = celeba_experiment.train_and_evaluate(config, str(tmp_path / 'run'))
  loaded = SPEC.load(resolve(config))
  assert results['data']['correlation_mode'] == 'natural'
  assert results['data']['num_examples']['train_eval'] == (
      len(loaded.train.labels) // 4 * 4)
  assert -1.0 <= results['data']['natural_corr'] <= 1.0
  final = results['final']
  assert 'group_dro/max_weight' in final['train']
  for split in ('val', 'test_anti', 'test_uncorr'):
    assert 0.0 <= final['eval'][split]['worst_group_accuracy'] <= 1.0
  assert results['best_val_worst_group']['epoch'] == 1


@pytest.mark.slow  # three short runs
@pytest.mark.parametrize('placement', ['device', 'host'])
def test_kernel_objectives_train_on_celeba_with_weak_labels(
    fake_celeba, cache_dir, tmp_path, monkeypatch, placement):
  """hsic_cmi, hscic and circe on the CelebA experiment, half the labels
  removed; circe fits its regression from the stored training labels."""
  celeba_fixture.skip_figures(monkeypatch)
  for objective in ('hsic_cmi', 'hscic', 'circe'):
    config = celeba_fixture.tiny_config(
        fake_celeba, cache_dir, objective=objective, weak_supervision=0.5,
        num_epochs=1, data_placement=placement, disentangle_weight=10.0)
    result = celeba_experiment.train_and_evaluate(
        config, str(tmp_path / objective))
    train = result['final']['train']
    assert np.isfinite(train['loss/disentangle']), objective
    assert train['loss/encoder'] != train['loss/ce'], objective
