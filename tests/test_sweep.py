"""A vmapped sweep equals its members trained one by one.

The reference for member i is the plain engine: a trainer built with member
i's ``OptimConfig`` initialises the state (so the learning rates reach the
optax states the documented way), and ``Trainer.jit_train_epoch`` trains it
on member i's own dataset. One shared compiled epoch trains every reference;
:func:`test_learning_rates_are_not_compiled_in` checks that each member's own
trainer compiles to the very same program.
"""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absl import app

from cmi_jax import evaluation
from cmi_jax import loop
from cmi_jax import models
from cmi_jax import records
from cmi_jax import train
from cmi_jax import vmapped
from cmi_jax.data import synthetic
from experiments import sweeps
import tiny

pytestmark = pytest.mark.usefixtures('fast_compiles')

SUBSPACES, NUM_CLASSES = tiny.SUBSPACES, tiny.NUM_CLASSES
BATCH = 32
STEPS = 3
EPOCHS = 2
# Four members that differ in every swept number and in their data.
HPARAMS = {'lr': [1e-3, 3e-3, 1e-3, 2e-3],
           'cls_lr': [1e-3, 1e-3, 5e-3, 2e-3],
           'd_lr': [1e-3, 2e-3, 1e-3, 5e-4],
           'disentangle_weight': [1.0, 0.5, 2.0, 0.0]}
NOISE = [0.5, 1.0, 1.5, 0.8]
CORR = [0.0, 0.5, 0.9, -0.6]
SIZE = len(NOISE)


def _optim(i, hparams=HPARAMS):
  return train.OptimConfig(
      lr=hparams['lr'][i], cls_lr=hparams['cls_lr'][i],
      d_lr=hparams.get('d_lr', [1e-4] * SIZE)[i])


@functools.cache
def _trainer(objective, optim=train.OptimConfig()):
  return train.make_trainer(models.MLPEncoder(4, (16,)), objective, SUBSPACES,
                            NUM_CLASSES, optim, adversary_hidden=(16,))


def _datasets():
  return [synthetic.synthetic_dataset(c, batch_size=BATCH,
                                      steps_per_epoch=STEPS, noise=n,
                                      features=3)
          for c, n in zip(CORR, NOISE)]


def _keys():
  return jax.random.split(jax.random.PRNGKey(7), SIZE)


def _example():
  return jnp.zeros((BATCH, 6), jnp.float32)


def _reference_runs(objective, hparams):
  """Each member trained alone; returns (states, metrics) per member."""
  shared = _trainer(objective)
  results = []
  for i, data in enumerate(_datasets()):
    state = _trainer(objective, _optim(i, hparams)).init(
        _keys()[i], _example(), hparams['disentangle_weight'][i])
    metrics = []
    for _ in range(EPOCHS):
      state, m = shared.jit_train_epoch(state, data)
      metrics.append(jax.device_get(m))
    results.append((jax.device_get(state), {
        k: np.concatenate([m[k] for m in metrics]) for k in metrics[0]}))
  return results


def _run_sweep(objective, hparams, mesh=None):
  trainer = _trainer(objective)
  states = vmapped.init_sweep(trainer, _keys(), _example(), hparams)
  datas = vmapped.stack_datasets(_datasets())
  epoch = vmapped.sweep_train_epoch(trainer, mesh)
  metrics = []
  for _ in range(EPOCHS):
    states, m = epoch(states, datas)
    metrics.append(jax.device_get(m))
  return states, {k: np.concatenate([m[k] for m in metrics], 1)
                  for k in metrics[0]}


def _assert_member_equal(states, metrics, i, want_state, want_metrics):
  tiny.assert_trees_close(vmapped.unstack(jax.device_get(states))[i],
                          want_state, 1e-5)
  assert sorted(metrics) == sorted(want_metrics)
  for name, want in want_metrics.items():
    np.testing.assert_allclose(metrics[name][i], want, rtol=1e-5, atol=1e-5,
                               err_msg=f'member {i} {name}')


@pytest.fixture(scope='module')
def cmi_sweep():
  states, metrics = _run_sweep('cmi', HPARAMS)
  return states, metrics, _reference_runs('cmi', HPARAMS)


@pytest.mark.parametrize('member', range(SIZE))
def test_cmi_sweep_equals_separate_runs(cmi_sweep, member):
  states, metrics, reference = cmi_sweep
  assert metrics['loss/encoder'].shape == (SIZE, EPOCHS * STEPS)
  _assert_member_equal(states, metrics, member, *reference[member])


def test_cmi_members_differ(cmi_sweep):
  _, metrics, _ = cmi_sweep
  losses = metrics['loss/ce']
  for i in range(SIZE):
    for j in range(i + 1, SIZE):
      assert not np.allclose(losses[i], losses[j], atol=1e-4)


def test_sweep_state_holds_the_hyperparameters(cmi_sweep):
  states = cmi_sweep[0]
  for name, field in (('lr', 'encoder_opt'), ('cls_lr', 'heads_opt'),
                      ('d_lr', 'adversary_opt')):
    np.testing.assert_allclose(
        getattr(states, field).hyperparams['learning_rate'], HPARAMS[name],
        rtol=1e-6)
  np.testing.assert_allclose(states.disentangle_weight,
                             HPARAMS['disentangle_weight'])


@pytest.mark.slow  # one more compile of the CMI epoch
def test_sharded_sweep_equals_unsharded(cmi_sweep):
  states, metrics, _ = cmi_sweep
  mesh = vmapped.sweep_mesh(SIZE)
  assert mesh.size == SIZE  # 8 fake devices: one member per device
  sharded_states, sharded_metrics = _run_sweep('cmi', HPARAMS, mesh)
  leaf = jax.tree.leaves(sharded_states)[0]
  assert len(leaf.sharding.device_set) == SIZE
  tiny.assert_trees_close(sharded_states, states, 1e-5)
  for name, want in metrics.items():
    np.testing.assert_allclose(sharded_metrics[name], want, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.slow  # two more epoch compiles
def test_base_sweep_equals_separate_runs():
  hparams = {k: v for k, v in HPARAMS.items() if k != 'd_lr'}
  states, metrics = _run_sweep('base', hparams)
  reference = _reference_runs('base', hparams)
  for i in range(SIZE):
    _assert_member_equal(states, metrics, i, *reference[i])


def test_learning_rates_are_not_compiled_in():
  # The references above train with one shared trainer. That equals training
  # with each member's own trainer iff the learning rates are not constants of
  # the compiled program: then both trainers lower to the same text.
  data = _datasets()[1]
  batch = data.batch(data.epoch_plan(jax.random.PRNGKey(0)), 0)
  state = _trainer('cmi', _optim(1)).init(_keys()[1], _example())

  def program(trainer):
    return jax.jit(trainer.step).lower(state, batch).as_text()
  assert program(_trainer('cmi', _optim(1))) == program(_trainer('cmi'))
  # The comparison can fail: a static setting changes the program.
  assert program(_trainer('cmi', train.OptimConfig(num_cls_steps=2))) != (
      program(_trainer('cmi')))


@pytest.mark.slow  # three evaluation compiles
def test_sweep_evaluate_equals_evaluate(cmi_sweep):
  states = cmi_sweep[0]
  trainer = _trainer('cmi')
  shared = synthetic.synthetic_dataset(0.0, batch_size=BATCH, steps_per_epoch=2,
                                       features=3, seed=11)
  own = [synthetic.synthetic_dataset(c, batch_size=BATCH, steps_per_epoch=2,
                                     noise=n, features=3, seed=12)
         for c, n in zip(CORR, NOISE)]
  stats = vmapped.sweep_evaluate(trainer, states,
                               {'shared': shared, 'own': own})
  members = vmapped.unstack(states)
  for i, member in enumerate(members):
    for split, data in (('shared', shared), ('own', own[i])):
      want = evaluation.evaluate(trainer, member, data)
      for name, value in want.items():
        np.testing.assert_allclose(stats[split][name][i], value, rtol=1e-5,
                                   atol=1e-5, err_msg=f'{split} {name} {i}')
  summaries = vmapped.summarize(stats['own'])
  assert len(summaries) == SIZE
  assert summaries[0]['num_examples'] == 2 * BATCH


@pytest.mark.parametrize('change, match', [
    ({'batch_size': BATCH // 2}, r'datasets\[2\]\.batch_size is 16'),
    ({'steps_per_epoch': STEPS + 1}, r'datasets\[2\]\.steps_per_epoch'),
    ({'num_attributes': 3}, r'datasets\[2\]\.table'),
], ids=['batch_size', 'steps_per_epoch', 'table'])
def test_stack_datasets_names_the_mismatched_field(change, match):
  data = _datasets()
  data[2] = synthetic.synthetic_dataset(
      0.5, **{'batch_size': BATCH, 'steps_per_epoch': STEPS, 'features': 3,
              **change})
  with pytest.raises(ValueError, match=match):
    vmapped.stack_datasets(data)


def test_stack_datasets_rejects_mixed_types():
  with pytest.raises(ValueError, match='one type'):
    vmapped.stack_datasets([_datasets()[0], {'table': jnp.zeros((2, 2))}])


def test_stack_datasets_stacks_array_fields():
  stacked = vmapped.stack_datasets(_datasets())
  np.testing.assert_allclose(stacked.noise, NOISE)
  assert stacked.table.shape == (SIZE, 2, 2)
  assert stacked.batch_size == BATCH


@pytest.mark.parametrize('hparams, match', [
    ({'lr': [1e-3, 1e-3]}, r'shape \(2,\).*\[4\]'),
    ({'momentum': [0.9] * 4}, 'unknown hyper-parameter'),
    ({'lr': [1e-3, -1.0, 1e-3, 1e-3]}, 'positive'),
])
def test_init_sweep_rejects_bad_hparams(hparams, match):
  with pytest.raises(ValueError, match=match):
    vmapped.init_sweep(_trainer('cmi'), _keys(), _example(), hparams)


def test_init_sweep_rejects_adversary_rate_without_adversary():
  with pytest.raises(ValueError, match='no adversary'):
    vmapped.init_sweep(_trainer('base'), _keys(), _example(),
                     {'d_lr': [1e-3] * SIZE})


def test_init_sweep_rejects_typed_keys():
  with pytest.raises(ValueError, match=r'uint32 keys of shape \[S, 2\]'):
    vmapped.init_sweep(_trainer('base'), jax.random.split(jax.random.key(0), 4),
                     _example())


def test_sweep_mesh_uses_most_devices_that_divide():
  assert vmapped.sweep_mesh(8).size == 8
  assert vmapped.sweep_mesh(12).size == 6
  assert vmapped.sweep_mesh(7).size == 7
  assert vmapped.sweep_mesh(3, jax.devices()[:2]).size == 1


def test_sharded_epoch_rejects_indivisible_members(cmi_sweep):
  three = jax.tree.map(lambda a: a[:3], cmi_sweep[0])
  datas = vmapped.stack_datasets(_datasets()[:3])
  epoch = vmapped.sweep_train_epoch(_trainer('cmi'), vmapped.sweep_mesh(4))
  with pytest.raises(ValueError, match='3 sweep members do not split over 4'):
    epoch(three, datas)


def test_epoch_rejects_member_count_mismatch(cmi_sweep):
  epoch = vmapped.sweep_train_epoch(_trainer('cmi'))
  with pytest.raises(ValueError, match='4 states but 3 datasets'):
    epoch(cmi_sweep[0], vmapped.stack_datasets(_datasets()[:3]))


def test_fit_sweep_equals_the_epoch_loop(cmi_sweep):
  # The same compiled programs as the cmi_sweep fixture (no evaluation
  # split: no evaluation compile), so the states agree exactly.
  states, metrics, _ = cmi_sweep
  seen = []

  def hook(i):
    def record(epoch, state, stats):
      seen.append((i, epoch, int(state.step), stats))
      return {'member': i}
    return record

  got, records = vmapped.fit_sweep(
      _trainer('cmi'), _keys(), _example(), vmapped.stack_datasets(_datasets()),
      {}, loop.FitConfig(EPOCHS, eval_every=0, progress=False),
      hparams=HPARAMS, hooks=[hook(i) for i in range(SIZE)])
  tiny.assert_trees_close(got, states)
  assert len(records) == SIZE
  for i, results in enumerate(records):
    record = results['final']
    assert results['best_val_loss'] is None  # no evaluation split
    assert record['epoch'] == EPOCHS and record['step'] == EPOCHS * STEPS
    assert record['eval'] == {} and record['extra'] == {'member': i}
    for name, value in metrics.items():  # the last epoch's mean, as run.fit
      assert record['train'][name] == pytest.approx(
          float(np.mean(value[i, -STEPS:])), rel=1e-6, abs=1e-7)
  assert seen == [(i, EPOCHS, EPOCHS * STEPS, {}) for i in range(SIZE)]


def test_fit_sweep_reports_a_diverged_member_and_trains_the_others(
    cmi_sweep):
  states, metrics, _ = cmi_sweep
  datas = _datasets()
  datas[2] = datas[2].replace(noise=jnp.float32(np.nan))  # NaN inputs
  got, records = vmapped.fit_sweep(
      _trainer('cmi'), _keys(), _example(), vmapped.stack_datasets(datas), {},
      loop.FitConfig(EPOCHS, eval_every=0, progress=False), hparams=HPARAMS)
  assert set(records[2]) == {'epoch', 'non_finite'}
  assert 'at step 1 (epoch 1)' in records[2]['non_finite']
  for i in (0, 1, 3):  # members are independent: untouched by member 2
    assert 'non_finite' not in records[i]
    for name, value in metrics.items():
      assert records[i]['final']['train'][name] == pytest.approx(
          float(np.mean(value[i, -STEPS:])), rel=1e-6, abs=1e-7)
    tiny.assert_trees_close(vmapped.unstack(got)[i],
                            vmapped.unstack(states)[i])


def test_fit_sweep_rejects_bad_arguments():
  data = vmapped.stack_datasets(_datasets())
  with pytest.raises(ValueError, match='num_epochs must be >= 1; got 0'):
    loop.FitConfig(0)
  with pytest.raises(ValueError, match='num_epochs must be an integer'):
    loop.FitConfig(2.0)
  with pytest.raises(ValueError, match='eval_every must be >= 0; got -1'):
    loop.FitConfig(1, eval_every=-1)
  with pytest.raises(ValueError, match='3 hooks for 4 members'):
    vmapped.fit_sweep(_trainer('cmi'), _keys(), _example(), data, {},
                      loop.FitConfig(1), hparams=HPARAMS, hooks=[None] * 3)


def test_stacked_eval_split_must_match_the_member_count(cmi_sweep):
  three = vmapped.Stacked(vmapped.stack_datasets(_datasets()[:3]))
  with pytest.raises(ValueError, match="'own' is stacked for 3 members but "
                     'the sweep has 4'):
    vmapped.sweep_evaluate(_trainer('cmi'), cmi_sweep[0], {'own': three})


def test_keys_from_seeds_are_the_separate_runs_keys():
  keys = vmapped.keys_from_seeds([3, 0])
  assert keys.dtype == np.uint32 and keys.shape == (2, 2)
  np.testing.assert_array_equal(keys[0], jax.random.PRNGKey(3))


def test_parse_list_names_the_flag():
  assert sweeps.parse_list(['0', '0.5'], 'noises') == [0.0, 0.5]
  assert sweeps.parse_list(['1', '2'], 'seeds', int) == [1, 2]
  with pytest.raises(app.UsageError, match=r"--seeds takes comma-separated "
                     r"integers; '1\.5' is not one"):
    sweeps.parse_list(['1', '1.5'], 'seeds', int)
  with pytest.raises(app.UsageError, match='--noises .* numbers; .a. is'):
    sweeps.parse_list(['a'], 'noises')


def test_group_cells_keeps_order_and_splits_large_groups():
  cells = sweeps.grid(['base', 'cmi'], [0.0], [0.0, 0.5], [0, 1])
  by_objective = sweeps.group_cells(cells, lambda c: c.overrides()['objective'])
  assert by_objective == [cells[:4], cells[4:]]
  assert sweeps.group_cells(cells, lambda c: c.overrides()['objective'], 3) == [
      cells[:3], cells[3:4], cells[4:7], cells[7:]]
  # Equal keys need not be neighbours.
  assert sweeps.group_cells(cells, lambda c: c.overrides()['seed']) == [cells[0::2],
                                                         cells[1::2]]
  with pytest.raises(ValueError, match='max_members must be >= 1'):
    sweeps.group_cells(cells, lambda c: c.overrides()['seed'], 0)


def test_config_key_leaves_out_the_varying_fields():
  a = {'objective': 'cmi', 'seed': 1, 'noise': 0.0, 'hidden': (50, 50)}
  assert sweeps.config_key(a, ('seed', 'noise')) == sweeps.config_key(
      dict(a, seed=2, noise=0.5), ('seed', 'noise'))
  assert sweeps.config_key(a, ('seed',)) != sweeps.config_key(
      dict(a, noise=0.5), ('seed',))


def _finish(sweep_dir, cell):
  sweeps.write_cell(os.path.join(sweep_dir, cell.name),
                    {'config': cell.overrides()},
                    {'final': {'epoch': 1, 'eval': {}}})


def test_plan_of_a_vmapped_sweep(tmp_path):
  sweep_dir = str(tmp_path)
  cells = sweeps.grid(['base', 'cmi'], [0.0], [0.0], [0, 1, 2])
  _finish(sweep_dir, cells[0])  # done: skipped
  started = os.path.join(sweep_dir, cells[4].name, 'checkpoints', 'latest')
  os.makedirs(os.path.join(started, '3'))  # a separate run's checkpoint
  os.makedirs(os.path.join(sweep_dir, cells[5].name, 'checkpoints', 'latest'))
  objective = lambda c: c.overrides()['objective']
  groups = sweeps.plan(sweep_dir, cells, objective)
  assert sweeps.is_started(sweep_dir, cells[4])
  assert not sweeps.is_started(sweep_dir, cells[5])  # no checkpoint saved
  assert groups == [[cells[4]], cells[1:3], [cells[3], cells[5]]]
  assert sweeps.plan(sweep_dir, cells) == [[c] for c in cells[1:]]
  _finish(sweep_dir, cells[5])  # cells[3] is left alone: a group of one
  assert sweeps.plan(sweep_dir, cells, objective, max_members=1) == [
      [cells[4]], [cells[1]], [cells[2]], [cells[3]]]


def test_write_members_writes_the_finished_and_raises_for_the_rest(
    tmp_path):
  cells = sweeps.grid(['cmi'], [0.0], [0.0], [0, 1, 2])
  records = [{'epoch': 1}, {'epoch': 1, 'non_finite': 'NaN at step 3'},
             {'epoch': 1}]
  with pytest.raises(FloatingPointError,
                     match=r'1 of 3 cells .*seed1: NaN at step 3'):
    sweeps.write_members(cells, records,
                         lambda cell, record: _finish(str(tmp_path), cell))
  assert [sweeps.is_done(str(tmp_path), c) for c in cells] == [True, False,
                                                               True]
  with open(os.path.join(tmp_path, cells[0].name, 'config.json')) as f:
    assert json.load(f) == {'config': cells[0].overrides()}


def test_a_corrupt_cell_counts_as_unfinished_and_does_not_block_collect(
    tmp_path, caplog):
  good, bad = sweeps.grid(['cmi'], [0.9], [0.8], [0, 1])
  record = {'epoch': 2, 'step': 4, 'eval': {
      'val': {'accuracy': 0.75, 'loss': 0.5}}}
  for cell in (good, bad):
    sweeps.write_cell(str(tmp_path / cell.name),
                      {'config': {'objective': 'cmi', 'train_corr': 0.9,
                                  'noise': 0.8,
                                  'seed': cell.overrides()['seed']}},
                      {'final': record})
  with open(tmp_path / bad.name / records.RESULTS_FILE, 'w') as f:
    f.write('{"final": {"epo')  # a kill during a copy
  with caplog.at_level('WARNING'):
    assert sweeps.is_done(str(tmp_path), good)
    assert not sweeps.is_done(str(tmp_path), bad)
    rows = records.collect(str(tmp_path))
  assert [r['seed'] for r in rows] == [0]
  assert any(str(tmp_path / bad.name / records.RESULTS_FILE) in r.getMessage()
             and 'trained again' in r.getMessage() for r in caplog.records)


def test_fit_sweep_evaluates_logs_selects_and_resumes_like_separate_runs(
    tmp_path):
  """Every member gets a run's per-epoch log and best-epoch records, and a
  group killed after a checkpoint resumes to the uninterrupted states."""
  trainer = _trainer('cmi')
  val = synthetic.synthetic_dataset(0.8, batch_size=BATCH, steps_per_epoch=2,
                                    features=3, seed=9)
  evals = {'val': val}
  datas = vmapped.stack_datasets(_datasets())
  epochs = 4

  config = loop.FitConfig(epochs, checkpoint_every=2, progress=False,
                          tensorboard=False)

  def driver(name):
    return {'checkpoint_dir': str(tmp_path / name / 'group'),
            'log_dirs': [str(tmp_path / name / f'm{i}') for i in range(SIZE)]}

  whole_states, whole = vmapped.fit_sweep(
      trainer, _keys(), _example(), datas, evals, config, hparams=HPARAMS,
      **driver('whole'))
  # Interrupted: the first call stops after epoch 3 (checkpoint at 2).
  class Stop(Exception):
    pass

  calls = []

  def stop_in_epoch_3(epoch, state, stats):
    del state, stats
    calls.append(epoch)
    if epoch == 3 and len(calls) == 3 * SIZE:
      raise Stop()
    return {}

  with pytest.raises(Stop):
    vmapped.fit_sweep(trainer, _keys(), _example(), datas, evals, config,
                      hparams=HPARAMS, hooks=[stop_in_epoch_3] * SIZE,
                      **driver('killed'))
  states, resumed = vmapped.fit_sweep(
      trainer, _keys(), _example(), datas, evals, config, hparams=HPARAMS,
      **driver('killed'))
  tiny.assert_trees_close(states, whole_states)
  strip = lambda r: {k: v for k, v in r.items()
                     if k not in ('extra', 'seconds')}
  for i in range(SIZE):
    for key in ('final', 'best_val_loss', 'best_val_accuracy',
                'best_val_worst_group'):
      assert strip(resumed[i][key]) == strip(whole[i][key]), (i, key)
    log = [json.loads(l) for l in open(tmp_path / 'killed' / f'm{i}' /
                                       'log.jsonl')]
    assert [r['epoch'] for r in log] == [1, 2, 3, 4]  # each epoch once
    whole_log = [json.loads(l) for l in open(tmp_path / 'whole' / f'm{i}' /
                                             'log.jsonl')]
    assert [strip(r) for r in log] == [strip(r) for r in whole_log]
    losses = [r['eval']['val']['loss'] for r in whole_log]
    assert whole[i]['best_val_loss']['epoch'] == 1 + int(np.argmin(losses))
    wga = [r['eval']['val']['worst_group_accuracy'] for r in whole_log]
    assert whole[i]['best_val_worst_group']['epoch'] == 1 + int(
        np.argmax(wga))
  assert set(whole[0]) == {'final', 'num_epochs', 'step', *(
      series for _, series, _ in records.BEST_CRITERIA)}


def test_shards_are_disjoint_deterministic_and_cover_the_grid():
  cells = sweeps.grid(['base', 'cmi'], [0.0, 0.9], [0.0, 0.8], [0, 1, 2])
  shards = [sweeps.select_shard(cells, i, 5) for i in range(5)]
  assert sorted(c.name for s in shards for c in s) == sorted(
      c.name for c in cells)
  assert all(set(a).isdisjoint(b) for i, a in enumerate(shards)
             for b in shards[i + 1:])
  assert shards == [sweeps.select_shard(cells, i, 5) for i in range(5)]
  assert sweeps.parse_shard('2/5', {}) == (2, 5)
  assert sweeps.parse_shard(None, {}) == (0, 1)
  assert sweeps.parse_shard(None, {'SLURM_ARRAY_TASK_ID': '3',
                                   'SLURM_ARRAY_TASK_COUNT': '4'}) == (3, 4)
  assert sweeps.parse_shard(None, {'SLURM_ARRAY_TASK_ID': '5',
                                   'SLURM_ARRAY_TASK_COUNT': '4',
                                   'SLURM_ARRAY_TASK_MIN': '2'}) == (3, 4)
  assert sweeps.parse_shard('1/2', {'SLURM_ARRAY_TASK_ID': '0',
                                    'SLURM_ARRAY_TASK_COUNT': '4'}) == (1, 2)
  for bad in ('3/3', '1', 'a/b', '0/0'):
    with pytest.raises(app.UsageError, match='--shard'):
      sweeps.parse_shard(bad, {})
