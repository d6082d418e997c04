"""Runs: their files, exact resume, non-finite losses, label checks, logs."""

import json
import math
import os
import re
import struct
import types

import chex
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX import event_file_writer
from tensorboardX.proto import event_pb2

from cmi_jax import checkpoint as ckpt
from cmi_jax import distributed, epochs, logs, records, run, train
from cmi_jax.data import synthetic
import tiny

TRAIN = synthetic.synthetic_dataset(0.8, batch_size=16, steps_per_epoch=2)
EVAL = {'val': synthetic.synthetic_dataset(0.8, batch_size=16,
                                           steps_per_epoch=2, seed=7)}

pytestmark = pytest.mark.usefixtures('fast_compiles')


def fit(workdir, num_epochs, objective='base', train_data=TRAIN,
        eval_data=None, hook=None, train_epoch=None, **config):
  """``run.fit`` from a fresh initial state (resumes if workdir has one)."""
  config = run.FitConfig(num_epochs=num_epochs, progress=False, **config)
  return run.fit(tiny.trainer(objective),
                 jax.device_put(tiny.host_state(objective)), train_data,
                 EVAL if eval_data is None else eval_data,
                 str(workdir), config, run_config={'objective': objective},
                 epoch_hook=hook, train_epoch=train_epoch)


def listdir(path):
  return sorted(os.listdir(path)) if os.path.isdir(path) else []


def checkpoint_dirs(workdir):
  """``{series: sorted epochs}`` of the finished checkpoints of a run."""
  root = os.path.join(workdir, 'checkpoints')
  return {series: sorted(int(d) for d in listdir(os.path.join(root, series))
                         if d.isdigit())
          for series in (ckpt.LATEST, ckpt.BEST_LOSS, ckpt.BEST_ACCURACY)}


def without_timing(record):
  """A log record minus its wall-clock ``seconds`` (they differ run to run)."""
  if not isinstance(record, dict):
    return record
  return {k: v for k, v in record.items() if k != 'seconds'}


def read_log(workdir, timing=False):
  records = logs.read_jsonl(os.path.join(workdir, 'log.jsonl'))
  return records if timing else [without_timing(r) for r in records]


def tensorboard_scalars(workdir):
  """``{(tag, step): value}`` as TensorBoard shows them.

  Reads every event file in name order (as TensorBoard does); a START
  session log at step s hides the events at steps >= s read before it.
  """
  tb = os.path.join(workdir, 'tb')
  scalars = {}
  for name in listdir(tb):
    with open(os.path.join(tb, name), 'rb') as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack('<Q', data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4
      if event.session_log.status == event_pb2.SessionLog.START:
        scalars = {k: v for k, v in scalars.items() if k[1] < event.step}
      for value in event.summary.value:
        if not value.tag.startswith('seconds/'):  # Wall clock differs.
          scalars[(value.tag, event.step)] = value.simple_value
  return scalars


class Wrapped:
  """A device dataset that changes the batches of ``self.inner``."""

  @property
  def steps_per_epoch(self):
    return self.inner.steps_per_epoch

  @property
  def batch_size(self):
    return self.inner.batch_size

  def epoch_plan(self, key):
    return self.inner.epoch_plan(key)


@flax.struct.dataclass
class FlippedLabels(Wrapped):
  """``inner`` with every binary label flipped (missing ones stay -1)."""
  inner: synthetic.SyntheticDataset

  def batch(self, plan, step):
    batch = self.inner.batch(plan, step)
    labels = batch['labels']
    return dict(batch, labels=jnp.where(labels >= 0, 1 - labels, labels))


@flax.struct.dataclass
class PoisonedDataset(Wrapped):
  """``inner`` with infinite inputs in batch ``bad_step`` of every epoch."""
  inner: synthetic.SyntheticDataset
  bad_step: int = flax.struct.field(pytree_node=False)

  def batch(self, plan, step):
    batch = self.inner.batch(plan, step)
    image = jnp.where(step == self.bad_step, jnp.inf, batch['image'])
    return dict(batch, image=image)


@flax.struct.dataclass
class ShiftedLabels(Wrapped):
  """``inner`` with ``shift`` added to the labels of ``attribute``."""
  inner: synthetic.SyntheticDataset
  attribute: int = flax.struct.field(pytree_node=False)
  shift: int = flax.struct.field(pytree_node=False)

  def batch(self, plan, step):
    batch = self.inner.batch(plan, step)
    labels = batch['labels'].at[:, self.attribute].add(self.shift)
    return dict(batch, labels=labels)


def test_fit_writes_config_logs_checkpoints_and_results(tmp_path, monkeypatch):
  # From an empty cache, so an earlier test's compile cannot hide a retrace.
  monkeypatch.setattr(epochs, 'scan_epoch',
                      chex.assert_max_traces(epochs.scan_epoch, n=1))
  tiny.trainer('base').jit_train_epoch.clear_cache()
  result = fit(tmp_path, 3, keep_checkpoints=2, log_every_steps=3)
  with open(tmp_path / 'config.json') as f:
    assert json.load(f) == {'objective': 'base'}
  records = read_log(tmp_path, timing=True)
  epoch_records = [r for r in records if 'epoch' in r]
  steps = [r for r in records if 'train_step' in r]
  for r in epoch_records:
    assert set(r['seconds']) == {'train', 'eval'}
    assert all(0 < t < 600 for t in r['seconds'].values())
  assert [r['epoch'] for r in epoch_records] == [1, 2, 3]
  assert [r['step'] for r in epoch_records] == [2, 4, 6]
  assert [r['step'] for r in steps] == [3, 6]
  for r in epoch_records:
    assert set(r['eval']) == {'val'}
    assert np.isfinite(r['train']['loss/ce'])
    assert 0.0 <= r['eval']['val']['accuracy'] <= 1.0
  assert any(n.startswith('events.out.tfevents') for n in listdir(
      tmp_path / 'tb'))
  assert ('train/loss/ce', 6) in tensorboard_scalars(tmp_path)

  with open(tmp_path / 'results.json') as f:
    results = json.load(f)
  losses = [r['eval']['val']['loss'] for r in epoch_records]
  accuracies = [r['eval']['val']['accuracy'] for r in epoch_records]
  best_loss = int(np.argmin(losses)) + 1
  best_accuracy = int(np.argmax(accuracies)) + 1  # The first of ties wins.
  assert results['final'] == epoch_records[-1]
  assert results['best_val_loss'] == epoch_records[best_loss - 1]
  assert results['best_val_accuracy'] == epoch_records[best_accuracy - 1]
  assert checkpoint_dirs(tmp_path) == {
      ckpt.LATEST: [2, 3], ckpt.BEST_LOSS: [best_loss],
      ckpt.BEST_ACCURACY: [best_accuracy]}
  assert int(result['state'].step) == 6 and result['step'] == 6


def test_bad_fit_settings_raise_one_clear_error(tmp_path):
  with pytest.raises(ValueError, match='num_epochs must be >= 1'):
    run.FitConfig(num_epochs=0)
  with pytest.raises(ValueError, match="select_split 'valid' is not"):
    fit(tmp_path, 1, select_split='valid')
  assert not os.path.exists(tmp_path / 'checkpoints')


class SimulatedCrash(Exception):
  pass


def hook_for(crash_at=None):
  """An epoch hook with a value that depends on the state; may raise."""
  def hook(epoch, state, stats):
    if epoch == crash_at:
      raise SimulatedCrash(f'simulated crash at epoch {epoch}')
    # math.fsum: exact, so equal states give equal sums (NumPy's float32
    # sum depends on the buffer's alignment).
    return {'heads_sum': math.fsum(
        float(v) for x in jax.tree.leaves(state.heads_params)
        for v in np.asarray(x).ravel()),
            'val_rows': int(stats['val']['mask'].sum())}
  return hook


def test_resumed_runs_end_bit_for_bit_like_an_uninterrupted_run(tmp_path):
  objective, epochs = 'mmd_cmi', 3
  # Selected on flipped labels, where learning makes the loss worse, the best
  # epoch comes before every interruption below and must survive it.
  eval_data = {**EVAL, 'flipped': FlippedLabels(EVAL['val'])}
  config = dict(objective=objective, eval_data=eval_data, hook=hook_for(),
                log_every_steps=3, select_split='flipped')
  whole = fit(tmp_path / 'whole', epochs, **config)
  assert whole['best_val_loss']['epoch'] == 1, 'the test needs an early best'

  fit(tmp_path / 'twice', 1, **config)
  twice = fit(tmp_path / 'twice', epochs, **config)

  with pytest.raises(SimulatedCrash, match='simulated crash'):
    fit(tmp_path / 'hook_crash', epochs, **dict(config, hook=hook_for(2)))
  assert checkpoint_dirs(tmp_path / 'hook_crash')[ckpt.LATEST] == [1]
  hook_crash = fit(tmp_path / 'hook_crash', epochs, **config)

  expected_log = read_log(tmp_path / 'whole')
  assert [r['epoch'] for r in expected_log if 'epoch' in r] == [1, 2, 3]
  assert [r['step'] for r in expected_log if 'train_step' in r] == [3, 6]
  expected_tb = tensorboard_scalars(tmp_path / 'whole')
  expected_dirs = checkpoint_dirs(tmp_path / 'whole')
  expected_best = best_states(tmp_path / 'whole', objective)
  for name, resumed in (('twice', twice), ('hook_crash', hook_crash)):
    workdir = tmp_path / name
    tiny.assert_trees_close(resumed['state'], whole['state'])
    for key in ('final', 'best_val_loss', 'best_val_accuracy', 'step'):
      assert without_timing(resumed[key]) == without_timing(whole[key]), (
          name, key)
    assert read_log(workdir) == expected_log, name
    assert tensorboard_scalars(workdir) == expected_tb, name
    assert checkpoint_dirs(workdir) == expected_dirs, name
    tiny.assert_trees_close(best_states(workdir, objective), expected_best)

  again = fit(tmp_path / 'whole', epochs, **config)
  tiny.assert_trees_close(again['state'], whole['state'])
  assert without_timing(again['final']) == without_timing(whole['final'])
  assert read_log(tmp_path / 'whole') == expected_log


def best_states(workdir, objective):
  """The states of the best-loss and best-accuracy checkpoints of a run."""
  checkpoints = ckpt.RunCheckpoints(str(workdir))
  try:
    return [checkpoints.restore(series, tiny.host_state(objective))[0]
            for series in (ckpt.BEST_LOSS, ckpt.BEST_ACCURACY)]
  finally:
    checkpoints.close()


def crash_on_latest_save(patch, crash_epoch):
  """Makes saving the latest checkpoint of ``crash_epoch`` raise."""
  save = ckpt.RunCheckpoints.save

  def save_or_crash(self, series, epoch, *args):
    if series == ckpt.LATEST and epoch == crash_epoch:
      raise SimulatedCrash('simulated crash while saving')
    return save(self, series, epoch, *args)

  patch.setattr(ckpt.RunCheckpoints, 'save', save_or_crash)


def test_best_checkpoints_stay_consistent_across_repeated_crashes(
    tmp_path, monkeypatch):
  # Epoch 2 improves on epoch 1, and the run crashes just after saving its
  # best checkpoints, before the latest checkpoint that records them.
  with monkeypatch.context() as patch:
    crash_on_latest_save(patch, 2)
    with pytest.raises(SimulatedCrash):
      fit(tmp_path, 2)
  log = read_log(tmp_path)
  losses = [r['eval']['val']['loss'] for r in log]
  assert losses[1] < losses[0], 'the test needs a new best at epoch 2'
  # Resumed from epoch 1 and crashed again before epoch 2's evaluation: the
  # best checkpoint recorded at epoch 1 must still be there.
  with pytest.raises(SimulatedCrash):
    fit(tmp_path, 2, hook=hook_for(crash_at=2))
  assert checkpoint_dirs(tmp_path)[ckpt.BEST_LOSS] == [1]
  result = fit(tmp_path, 2)
  assert result['best_val_loss']['epoch'] == 2
  # Epoch 2 was logged before each crash, and is logged once.
  assert [r['epoch'] for r in read_log(tmp_path)] == [1, 2]
  assert checkpoint_dirs(tmp_path) == {
      ckpt.LATEST: [1, 2], ckpt.BEST_LOSS: [2],
      ckpt.BEST_ACCURACY: [result['best_val_accuracy']['epoch']]}


def test_non_finite_loss_names_step_term_and_last_checkpoint(tmp_path):
  trainer = tiny.trainer('base')
  poisoned = PoisonedDataset(TRAIN, bad_step=1)
  epochs_run = []

  def poison_second_epoch(state, data):
    epochs_run.append(len(epochs_run) + 1)
    data = poisoned if len(epochs_run) == 2 else data
    return trainer.jit_train_epoch(state, data)

  # Epoch 2 starts after step 2; its second batch is update number 4.
  expected = [r'at step 4 \(epoch 2\)', 'loss/ce', 'loss/encoder',
              os.path.join(str(tmp_path), 'checkpoints', 'latest', '1')]
  with pytest.raises(run.NonFiniteLossError) as error:
    fit(tmp_path, 3, train_epoch=poison_second_epoch)
  for pattern in expected:
    assert re.search(pattern, str(error.value)), (pattern, str(error.value))
  assert epochs_run == [1, 2]
  after_failure = {ckpt.LATEST: [1], ckpt.BEST_LOSS: [1],
                   ckpt.BEST_ACCURACY: [1]}
  assert checkpoint_dirs(tmp_path) == after_failure
  assert [r.get('epoch') for r in read_log(tmp_path)] == [1]
  assert not os.path.exists(tmp_path / 'results.json')

  with pytest.raises(run.NonFiniteLossError) as error:
    fit(tmp_path, 3, train_data=poisoned)
  for pattern in expected:
    assert re.search(pattern, str(error.value)), (pattern, str(error.value))
  assert checkpoint_dirs(tmp_path) == after_failure
  assert not os.path.exists(tmp_path / 'results.json')


def test_first_non_finite_finds_the_first_bad_step():
  metrics = {'loss/a': np.array([1.0, 2.0, np.nan, np.inf]),
             'loss/b': np.array([0.0, 0.0, 1.0, np.inf])}
  assert records.first_non_finite(metrics) == (2, ['loss/a'])
  assert records.first_non_finite({'loss/a': np.ones(3)}) is None


def test_out_of_range_labels_are_rejected_before_training(tmp_path):
  with pytest.raises(ValueError,
                     match=r'training data .*attribute #1 has label 2'):
    fit(tmp_path, 1, train_data=ShiftedLabels(TRAIN, 1, 1))
  bad_eval = {'val': ShiftedLabels(EVAL['val'], 0, -2)}
  with pytest.raises(ValueError,
                     match=r"evaluation split 'val' .*attribute #0 has label"):
    fit(tmp_path, 1, eval_data=bad_eval)
  assert not os.path.exists(tmp_path / 'checkpoints')
  assert not os.path.exists(tmp_path / 'log.jsonl')


def test_resumed_logger_keeps_earlier_records_in_log_and_tensorboard(
    tmp_path, monkeypatch):
  # Both writers in the same second, as when a run resumes at once.
  monkeypatch.setattr(event_file_writer, 'time',
                      types.SimpleNamespace(time=lambda: 1.7e9))
  logger = logs.RunLogger(str(tmp_path))
  for step in (1, 2, 3):
    logger.write({'step': step, 'x': float(step)})
  logger.close()
  # Resumed from a checkpoint at step 2: step 3 is redone with a new value.
  logger = logs.RunLogger(str(tmp_path), keep_until_step=2)
  logger.write({'step': 3, 'x': 30.0})
  logger.close()
  assert read_log(tmp_path) == [{'step': 1, 'x': 1.0}, {'step': 2, 'x': 2.0},
                                {'step': 3, 'x': 30.0}]
  assert tensorboard_scalars(tmp_path) == {('x', 1): 1.0, ('x', 2): 2.0,
                                           ('x', 3): 30.0}
  # A fresh run in the same directory starts both logs over.
  logger = logs.RunLogger(str(tmp_path))
  logger.write({'step': 1, 'x': -1.0})
  logger.close()
  assert read_log(tmp_path) == [{'step': 1, 'x': -1.0}]
  assert tensorboard_scalars(tmp_path) == {('x', 1): -1.0}


def test_checkpoints_round_trip_a_state_with_adversaries(tmp_path):
  state = tiny.host_state('cmi')
  checkpoints = ckpt.RunCheckpoints(str(tmp_path), keep=2)
  try:
    for epoch in (1, 2, 3):
      path = checkpoints.save(ckpt.LATEST, epoch, state, {'epoch': epoch})
      assert path == os.path.join(str(tmp_path), 'checkpoints', 'latest',
                                  str(epoch))
    assert checkpoints.latest_epoch() == 3
    restored, meta = checkpoints.restore(ckpt.LATEST, state)
    assert meta == {'epoch': 3}
    tiny.assert_trees_close(restored, state)
    with pytest.raises(FileNotFoundError, match='no checkpoint'):
      checkpoints.restore(ckpt.BEST_LOSS, state)
    assert checkpoint_dirs(tmp_path)[ckpt.LATEST] == [2, 3]  # keep=2
    checkpoints.delete_after(ckpt.LATEST, 2)
    assert checkpoints.latest_epoch() == 2
  finally:
    checkpoints.close()
  assert checkpoint_dirs(tmp_path)[ckpt.LATEST] == [2]


def test_crash_before_the_first_latest_checkpoint_starts_over_cleanly(
    tmp_path):
  # checkpoint_every=3: epoch 1 saves best checkpoints and a log record but
  # no latest checkpoint; the crash in epoch 2's hook leaves them behind.
  whole = fit(tmp_path / 'whole', 3, checkpoint_every=3, hook=hook_for())
  with pytest.raises(SimulatedCrash):
    fit(tmp_path / 'crash', 3, checkpoint_every=3, hook=hook_for(2))
  assert checkpoint_dirs(tmp_path / 'crash')[ckpt.LATEST] == []
  assert checkpoint_dirs(tmp_path / 'crash')[ckpt.BEST_LOSS] == [1]
  again = fit(tmp_path / 'crash', 3, checkpoint_every=3, hook=hook_for())
  tiny.assert_trees_close(again['state'], whole['state'])
  assert without_timing(again['final']) == without_timing(whole['final'])
  assert read_log(tmp_path / 'crash') == read_log(tmp_path / 'whole')
  assert checkpoint_dirs(tmp_path / 'crash') == checkpoint_dirs(
      tmp_path / 'whole')


def damage(checkpoint_dir):
  """Overwrites every file of a checkpoint with bytes no reader accepts."""
  for root, _, files in os.walk(checkpoint_dir):
    for name in files:
      with open(os.path.join(root, name), 'wb') as f:
        f.write(b'\x00not a checkpoint')


def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one(
    tmp_path, caplog):
  whole = fit(tmp_path / 'whole', 3)
  fit(tmp_path / 'run', 2)  # latest/1 and latest/2 (keep 2)
  damage(os.path.join(tmp_path, 'run', 'checkpoints', ckpt.LATEST, '2'))
  with caplog.at_level('WARNING'):
    resumed = fit(tmp_path / 'run', 3)
  warned = [r.getMessage() for r in caplog.records
            if 'cannot be read' in r.getMessage()]
  assert len(warned) == 1 and os.path.join('latest', '2') in warned[0]
  assert 'falling back' in warned[0]
  # Resumed from epoch 1: the damaged epoch 2 was trained again.
  tiny.assert_trees_close(resumed['state'], whole['state'])
  assert [r['epoch'] for r in read_log(tmp_path / 'run')] == [1, 2, 3]
  assert checkpoint_dirs(tmp_path / 'run')[ckpt.LATEST] == [2, 3]


def test_no_readable_checkpoint_says_how_to_start_over(tmp_path):
  fit(tmp_path, 2)
  for epoch in ('1', '2'):
    damage(os.path.join(tmp_path, 'checkpoints', ckpt.LATEST, epoch))
  with pytest.raises(ckpt.UnreadableCheckpointError,
                     match=r'none of the checkpoints .* delete .*checkpoints'):
    fit(tmp_path, 3)


def test_resume_refuses_a_changed_config_before_writing(tmp_path):
  fit(tmp_path, 1)
  saved = open(os.path.join(tmp_path, 'config.json')).read()
  state = jax.device_put(tiny.host_state('base'))
  config = run.FitConfig(num_epochs=2, progress=False)
  with pytest.raises(run.ConfigMismatchError,
                     match=r"objective \('base' -> 'cmi'\).*in allow_change"):
    run.fit(tiny.trainer('base'), state, TRAIN, EVAL, str(tmp_path), config,
            run_config={'objective': 'cmi'})
  assert open(os.path.join(tmp_path, 'config.json')).read() == saved
  # A field named in may_change is not compared.
  result = run.fit(tiny.trainer('base'), state, TRAIN, EVAL, str(tmp_path),
                   config, run_config={'objective': 'cmi'},
                   may_change=('objective',))
  assert result['final']['epoch'] == 2
  assert run.config_differences({'config': {'lr': 1, 'progress': True}},
                                {'config': {'lr': 2, 'progress': False}},
                                ('progress',)) == ['config.lr']


def test_temporary_files_of_an_interrupted_write_are_removed(tmp_path):
  fit(tmp_path, 1)
  stale = [os.path.join(tmp_path, '.results.json.abc123.tmp'),
           os.path.join(tmp_path, 'log.jsonl.tmp')]
  for path in stale:
    with open(path, 'w') as f:
      f.write('{"half": ')
  fit(tmp_path, 2)
  assert not any(os.path.exists(p) for p in stale)
  assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]


def test_group_accuracies_against_a_numpy_count():
  from cmi_jax import evaluation  # pylint: disable=g-import-not-at-top
  # Two binary attributes, groups 00, 01, 10, 11 (row-major); group 10 has
  # no examples. Rows: (labels, predictions).
  labels = np.array([[0, 0], [0, 0], [0, 1], [0, 1], [0, 1], [1, 1]])
  preds = np.array([[0, 0], [1, 0], [0, 0], [0, 1], [1, 1], [1, 1]])
  group = labels[:, 0] * 2 + labels[:, 1]
  correct = preds == labels
  combo_count = np.bincount(group, minlength=4)
  combo_correct = np.stack([np.bincount(group, correct[:, k], minlength=4)
                            for k in range(2)], 1)
  train_counts = np.array([40, 10, 10, 40])
  out = evaluation.group_accuracies(combo_correct, combo_count, train_counts)
  # Group 00: head 0 1/2, head 1 2/2 -> 0.75; group 01: 2/3, 2/3 -> 2/3;
  # group 11: 1, 1 -> 1.
  assert out['worst_group_accuracy'] == pytest.approx(2 / 3)
  assert out['worst_group_accuracy_per_attribute'] == pytest.approx(
      [1 / 2, 2 / 3])
  assert out['mean_group_accuracy'] == pytest.approx((0.75 + 2 / 3 + 1) / 3)
  assert out['train_weighted_accuracy'] == pytest.approx(
      (40 * 0.75 + 10 * 2 / 3 + 40 * 1) / 90)


def test_best_worst_group_checkpoint_and_record(tmp_path):
  result = fit(tmp_path, 3)
  best = result['best_val_worst_group']
  values = [r['eval']['val']['worst_group_accuracy']
            for r in read_log(tmp_path)]
  assert best['epoch'] == 1 + int(np.argmax(values))
  root = os.path.join(tmp_path, 'checkpoints', ckpt.BEST_WORST_GROUP)
  assert sorted(os.listdir(root)) == [str(best['epoch'])]
  saved = json.load(open(os.path.join(tmp_path, 'results.json')))
  assert saved['best_val_worst_group']['epoch'] == best['epoch']
  final = saved['final']['eval']['val']
  for key in ('worst_group_accuracy', 'mean_group_accuracy',
              'worst_group_accuracy_per_attribute'):
    assert key in final


def test_a_run_on_a_data_mesh_equals_the_one_device_run(tmp_path):
  """``run.fit(mesh=...)``: the loop's mesh option, 8 devices, same run."""
  # The step's device invariance per objective is tests/test_train.py's.
  one = fit(tmp_path / 'one', 2)
  mesh = distributed.data_mesh()
  config = run.FitConfig(num_epochs=2, progress=False)
  eight = run.fit(tiny.trainer('base'), jax.device_put(tiny.host_state('base')),
                  TRAIN, EVAL, str(tmp_path / 'eight'), config,
                  run_config={'objective': 'base'}, mesh=mesh)
  assert len(eight['state'].step.sharding.device_set) == 8
  tiny.assert_trees_close(jax.device_get(eight['state']),
                          jax.device_get(one['state']), rtol=1e-5, atol=1e-6)
  for key in ('final', 'best_val_loss'):
    assert without_timing(eight[key])['epoch'] == one[key]['epoch']
    np.testing.assert_allclose(eight[key]['eval']['val']['loss'],
                               one[key]['eval']['val']['loss'], rtol=1e-5)
