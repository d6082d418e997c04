"""The CelebA sweep's ``--vmap`` mode on the fake CelebA.

One vmapped group (2 seeds x 2 noise levels, weakly supervised) trains for
real; two of its cells also run separately, and each member's results must
equal the separate run's (losses and MI estimates to ``TOL``; accuracies,
counts and confusions exactly). Weak supervision makes ``train_eval`` (full
labels) differ from ``train``, so a group that evaluated the wrong labels
would fail. Grouping and restarts are checked with recorders for trainers.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import subprocess
import sys

import celeba_fixture
import numpy as np
import pytest

from cmi_jax import records
from experiments import celeba as celeba_experiment
from experiments import celeba_sweep
from experiments import driver
from experiments import sweeps
from experiments import plot_celeba
import tiny

pytestmark = pytest.mark.usefixtures('fast_compiles')

TRAIN_CORR, WEAK, BATCH = (celeba_fixture.TRAIN_CORR, celeba_fixture.WEAK,
                           celeba_fixture.BATCH)
TOL = 1e-5  # float32 rounding of vmapped vs unbatched matmuls
CELLS = [celeba_sweep.weak_cell(sweeps.cell('base', TRAIN_CORR, noise, seed),
                                WEAK)
         for noise in (0.0, 0.5) for seed in (0, 1)]
# Two members that differ in both seed and noise.
REFERENCE = (CELLS[0], CELLS[3])


@pytest.fixture(scope='module')
def config(fake_celeba, tmp_path_factory):
  # The base objective compiles fastest; tests/test_sweep.py covers the rest.
  return celeba_fixture.tiny_config(
      fake_celeba, tmp_path_factory.mktemp('cache'), objective='base')


@pytest.fixture(scope='module')
def vmapped_dir(config, tmp_path_factory):
  """A sweep directory whose weak cells were trained as one vmapped group."""
  sweep_dir = str(tmp_path_factory.mktemp('vmapped'))
  separate = []
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(driver, '_train_one',
                  lambda spec, config, *a: separate.append(config))
    driver.train_cells(celeba_experiment.SPEC, config,
                       celeba_sweep.mode_dir(sweep_dir, 'weak'), CELLS,
                       vmap=True)
  assert separate == []  # one group of four; nothing ran separately
  return sweep_dir


@pytest.fixture(scope='module')
def separate_dir(config, tmp_path_factory):
  """The REFERENCE cells run one by one (the sweep without --vmap)."""
  sweep_dir = str(tmp_path_factory.mktemp('separate'))
  with pytest.MonkeyPatch.context() as patch:
    celeba_fixture.skip_figures(patch)  # not compared
    driver.train_cells(celeba_experiment.SPEC, config,
                       celeba_sweep.mode_dir(sweep_dir, 'weak'),
                       list(REFERENCE))
  return sweep_dir


def _cell_dir(sweep_dir, cell):
  return os.path.join(celeba_sweep.mode_dir(sweep_dir, 'weak'), cell.name)


@pytest.mark.parametrize('cell', REFERENCE, ids=lambda c: c.name)
def test_member_equals_its_separate_run(vmapped_dir, separate_dir, cell):
  got_dir, want_dir = (_cell_dir(d, cell) for d in (vmapped_dir, separate_dir))
  got, want = (tiny.read_json(d, 'results.json') for d in (got_dir, want_dir))
  for name in ('config.json', 'joint_counts.json'):
    assert tiny.read_json(got_dir, name) == tiny.read_json(want_dir, name)
  for key in ('data', 'attributes', 'objective', 'num_epochs', 'step'):
    assert got[key] == want[key], key
  assert got['num_epochs'] == 2 and got['data']['batch_size'] == 20
  final, reference = got['final'], want['final']
  assert final['epoch'] == reference['epoch'] == 2
  assert final['step'] == reference['step']
  assert set(final['eval']) == set(celeba_experiment.EVAL_SPLITS)
  for split, summary in reference['eval'].items():
    for name, value in summary.items():
      where = f'{cell.name} {split} {name}'
      # JSON holds NaN (an empty combination) as null.
      got_value = np.asarray(final['eval'][split][name], float)
      value = np.asarray(value, float)
      if name in ('loss', 'z_correlation'):
        np.testing.assert_allclose(got_value, value, rtol=TOL, atol=TOL,
                                   err_msg=where)
      else:  # accuracies, counts, confusion: exactly
        np.testing.assert_array_equal(got_value, value, err_msg=where)
  assert sorted(final['train']) == sorted(reference['train'])
  for name, value in reference['train'].items():
    np.testing.assert_allclose(final['train'][name], value, rtol=TOL,
                               atol=TOL, err_msg=f'train {name}')
  assert sorted(final['extra']) == sorted(reference['extra'])
  assert final['extra']  # mi_every=2: the final epoch has MI estimates
  for name, value in reference['extra'].items():
    np.testing.assert_allclose(final['extra'][name], value, rtol=TOL,
                               atol=TOL, err_msg=f'extra {name}')


def test_members_are_different_runs(vmapped_dir):
  losses = [tiny.read_json(_cell_dir(vmapped_dir, c), 'results.json')[
      'final']['eval']['train_eval']['loss'] for c in CELLS]
  assert len({round(l, 6) for l in losses}) == len(CELLS)


def test_vmapped_cells_say_what_they_hold(vmapped_dir):
  for cell in CELLS:
    workdir = _cell_dir(vmapped_dir, cell)
    results = tiny.read_json(workdir, 'results.json')
    assert results['mode'] == 'vmapped'
    assert results['group']['cells'] == [c.name for c in CELLS]
    # The group's checkpoints are gone once it is written.
    for key in ('best_val_loss', 'best_val_accuracy', 'best_val_worst_group'):
      assert results[key]['epoch'] in (1, 2), key
    log = tiny.read_log(workdir)
    assert [r['epoch'] for r in log] == [1, 2]
    assert log[-1]['eval'] == results['final']['eval']
    assert not os.path.exists(os.path.join(workdir, 'checkpoints'))
    with open(os.path.join(workdir, 'subpopulation_accuracy.csv')) as f:
      rows = list(csv.DictReader(f))
    assert {r['record'] for r in rows} == set(records.SELECTIONS)
    assert len(rows) == 4 * len(celeba_experiment.EVAL_SPLITS) * len(
        records.SELECTIONS)
  weak = os.path.join(celeba_sweep.mode_dir(vmapped_dir, 'weak'), 'weak0.5')
  assert not os.path.exists(os.path.join(weak, sweeps.GROUPS_DIR)) or not (
      os.listdir(os.path.join(weak, sweeps.GROUPS_DIR)))
  assert len(records.collect(weak, 'best_val_worst_group')) == len(CELLS)


def test_plot_celeba_reads_a_vmapped_sweep(vmapped_dir, tmp_path):
  paths = plot_celeba.make_report(vmapped_dir, str(tmp_path))
  assert set(paths) == {f'celeba_weak_supervision.{e}'
                        for e in ('png', 'csv', 'md')}
  with open(paths['celeba_weak_supervision.csv']) as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 2  # one per noise level, each over two seeds
  for row in rows:
    members = [c for c in CELLS
               if c.overrides()['noise'] == float(row['noise'])]
    accuracy = [tiny.read_json(_cell_dir(vmapped_dir, c), 'results.json')[
        'final']['eval']['test_anti']['accuracy'] for c in members]
    assert int(row['num_seeds']) == 2
    assert float(row['test_anti/accuracy/mean']) == pytest.approx(
        np.mean(accuracy))


def _recording(monkeypatch, cells):
  """Replaces both trainers of the driver by recorders of their ``cells``."""
  calls = []
  done = {'final': {'eval': {}}}

  def group(spec, configs, cells, source, root):
    calls.append(('vmapped', list(cells), [c.batch_size for c in configs]))
    return [done] * len(cells)

  def one(spec, config, source, workdir, allow_change=()):
    calls.append(('separate', [c for c in cells
                               if workdir.endswith(os.sep + c.name)]))
    return done

  monkeypatch.setattr(driver, '_train_group', group)
  monkeypatch.setattr(driver, '_train_one', one)
  monkeypatch.setattr(celeba_experiment, 'SPEC', dataclasses.replace(
      celeba_experiment.SPEC, load=lambda config: None))
  return calls


def test_restart_skips_finished_and_resumes_started_cells(
    vmapped_dir, config, tmp_path, monkeypatch):
  weak_dir = str(tmp_path / 'weak')
  shutil.copytree(celeba_sweep.mode_dir(vmapped_dir, 'weak'), weak_dir)
  done = os.path.join(weak_dir, CELLS[0].name, 'results.json')
  before = os.path.getmtime(done)
  calls = _recording(monkeypatch, CELLS)
  driver.train_cells(celeba_experiment.SPEC, config, weak_dir, CELLS, vmap=True)
  assert calls == [] and os.path.getmtime(done) == before

  # Two cells lose their results: one was started by a separate run (it has
  # a checkpoint), the other is left alone in its group; both run separately.
  for cell in CELLS[1:3]:
    os.remove(os.path.join(weak_dir, cell.name, 'results.json'))
  os.makedirs(os.path.join(weak_dir, CELLS[2].name, 'checkpoints', 'latest',
                           '1'))
  driver.train_cells(celeba_experiment.SPEC, config, weak_dir, CELLS, vmap=True)
  assert calls == [('separate', [CELLS[2]]), ('separate', [CELLS[1]])]
  assert os.path.getmtime(done) == before


def test_grouping_rule(config, monkeypatch, tmp_path):
  cells = sweeps.grid(['base', 'cmi'], [0.2, 0.6], [0.0, 0.5], [1, 2])
  weak = celeba_sweep.weak_grid(['cmi'], [0.0, 0.75], TRAIN_CORR, 0.0,
                                [1, 2, 3])
  calls = _recording(monkeypatch, cells + weak)
  driver.train_cells(celeba_experiment.SPEC, config, str(tmp_path / 'corr'),
                     cells, vmap=True)
  # Seeds and noise levels train together; objective and correlation not.
  assert [c[0] for c in calls] == ['vmapped'] * 4
  for _, group, _ in calls:
    assert len(group) == 4
    settings = [c.overrides() for c in group]
    assert len({(s['objective'], s['train_corr']) for s in settings}) == 1
    assert {(s['noise'], s['seed']) for s in settings} == {
        (n, s) for n in (0.0, 0.5) for s in (1, 2)}

  calls.clear()
  driver.train_cells(celeba_experiment.SPEC, config, str(tmp_path / 'weak'),
                     weak, vmap=True, max_members=2)
  # One group per fraction (its batch size is scaled), split at 2 members;
  # the single cell left over runs separately.
  assert calls == [('vmapped', weak[0:2], [BATCH] * 2),
                   ('separate', weak[2:3]),
                   ('vmapped', weak[3:5], [4 * BATCH] * 2),
                   ('separate', weak[5:6])]


def test_group_of_unequal_datasets_names_the_cells(config, tmp_path,
                                                   monkeypatch):
  real = celeba_experiment.SPEC.splits

  def shrink_seed_1(cell_config, loaded):
    splits = real(cell_config, loaded)
    if cell_config.seed == 1:
      splits.train = splits.train.replace(images=splits.train.images[:-1])
    return splits

  monkeypatch.setattr(celeba_experiment, 'SPEC', dataclasses.replace(
      celeba_experiment.SPEC, splits=shrink_seed_1))
  with pytest.raises(ValueError, match=r'differ only in \(.seed., .noise.\).*'
                     r'datasets\[1\]\.images.*without vmap'):
    driver.train_cells(celeba_experiment.SPEC, config, str(tmp_path), CELLS[:2],
                       vmap=True)
  assert not os.listdir(tmp_path)  # nothing written


def test_seeds_and_noise_levels_give_equal_shapes(config):
  # What the grouping rule rests on.
  spec = celeba_experiment.SPEC
  loaded = spec.load(driver.resolve(spec, config))
  shapes = set()
  for cell in CELLS:
    splits = spec.splits(driver.resolve(spec, config, cell.overrides()),
                         loaded)
    shapes.add(tuple(d.images.shape for d in (splits.train,
                                              *splits.evals.values())))
  assert len(shapes) == 1
  other = spec.splits(driver.resolve(spec, config, sweeps.cell(
      'base', 0.0, 0.0, 0).overrides()), loaded)
  assert other.train.images.shape != splits.train.images.shape


@pytest.mark.slow
def test_command_line_vmap(config, tmp_path):
  workdir = str(tmp_path / 'cli')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  command = [
      sys.executable, '-m', 'experiments.celeba_sweep', f'--workdir={workdir}',
      '--mode=weak', '--vmap', '--objectives=base', '--weak_fractions=0.5',
      f'--weak_train_corr={TRAIN_CORR}', '--seeds=0,1',
      '--config.source=files', f'--config.celeba_dir={config.celeba_dir}',
      f'--config.cache_dir={config.cache_dir}',
      f'--config.batch_size={BATCH}', '--config.num_epochs=1',
      '--config.mi_every=0', '--config.progress=False']
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run(command, capture_output=True, text=True, env=env,
                       timeout=600, cwd=root)
  assert out.returncode == 0, out.stderr[-3000:]
  assert '2 finished cells' in out.stdout
  assert 'Training 2 cells together' in out.stderr
  summary = tiny.read_json(workdir, 'weak', 'summary.json')
  assert [r['seed'] for r in summary] == [0, 1]
  for cell in CELLS[:2]:
    results = tiny.read_json(_cell_dir(workdir, cell), 'results.json')
    assert results['mode'] == 'vmapped'
