"""Host-memory datasets: same batches as the device path, prefetching, runs."""

import functools
import gc
import json
import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cmi_jax import checkpoint as ckpt
from cmi_jax import epochs, evaluation, preemption, run, train
from cmi_jax.data import host
from cmi_jax.data.base import ArrayDataset, to_float_image
import tiny

N, BATCH = 53, 8  # 6 steps per epoch, 5 rows dropped
# Draws from the loss key every step, so the two paths must also agree on the
# step's randomness.
OBJECTIVE = 'mmd_cmi'

pytestmark = pytest.mark.usefixtures('fast_compiles')


def arrays(n=N, seed=0, row_ids=False):
  """uint8 images ``[n, 4, 4, 3]`` and labels ``[n, 2]`` (some missing).

  With ``row_ids`` the first label column is the row number, so a batch
  tells which rows it holds.
  """
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
  labels = rng.integers(-1, 2, (n, 2)).astype(np.int32)
  if row_ids:
    labels[:, 0] = np.arange(n)
  return images, labels


def both(images, labels, shuffle=True, batch_size=BATCH):
  """The same rows as an ArrayDataset and as a HostDataset."""
  return (ArrayDataset(jnp.asarray(images), jnp.asarray(labels),
                       batch_size=batch_size, shuffle=shuffle),
          host.HostDataset(images, labels, batch_size=batch_size,
                           shuffle=shuffle))


def prefetch_threads():
  return [t for t in threading.enumerate()
          if t.name in ('prefetch', 'HostDataset.prefetch') and t.is_alive()]


def wait_until(condition, timeout=5.0):
  deadline = time.monotonic() + timeout
  while not condition() and time.monotonic() < deadline:
    time.sleep(0.01)
  return condition()


@pytest.mark.parametrize('shuffle', [True, False])
def test_plans_and_batches_equal_the_device_datasets(shuffle):
  images, labels = arrays()
  device, on_host = both(images, labels, shuffle)
  assert on_host.steps_per_epoch == device.steps_per_epoch == N // BATCH
  assert on_host.nbytes == images.nbytes
  plans = []
  for seed in (0, 1):
    key = jax.random.PRNGKey(seed)
    plan = on_host.epoch_plan(key)
    np.testing.assert_array_equal(plan, np.asarray(device.epoch_plan(key)))
    plans.append(plan)
    for step in range(device.steps_per_epoch):
      want = jax.device_get(device.batch(device.epoch_plan(key), step))
      got = jax.device_get(on_host.batch(plan, step))
      assert got['image'].dtype == want['image'].dtype == np.float32
      np.testing.assert_array_equal(got['image'], want['image'])
      np.testing.assert_array_equal(got['labels'], want['labels'])
      rows = plan[step * BATCH:(step + 1) * BATCH]
      raw = on_host.host_batch(plan, step)
      np.testing.assert_array_equal(raw['image'], images[rows])
      assert raw['image'].dtype == np.uint8
  assert np.array_equal(plans[0], plans[1]) == (not shuffle)
  if not shuffle:
    np.testing.assert_array_equal(plans[0], np.arange(N))


def record_rows(state, batch):
  """A step that trains nothing and reports which rows it saw."""
  pixels = jnp.round(to_float_image(batch['image']) * 255).astype(
      jnp.int32).sum()
  return state.replace(step=state.step + 1), {'rows': batch['labels'][:, 0],
                                              'pixels': pixels}


def bare_state(step, seed=3):
  return train.TrainState(
      step=jnp.asarray(step, jnp.int32), key=jax.random.PRNGKey(seed),
      encoder_params=None, heads_params=None, adversary_params=None,
      encoder_opt=None, heads_opt=None, adversary_opt=None,
      disentangle_weight=jnp.float32(1.0))


def test_host_epochs_see_the_scanned_epochs_batches():
  images, labels = arrays(row_ids=True)
  device, on_host = both(images, labels)
  scanned = jax.jit(functools.partial(epochs.scan_epoch, record_rows),
                    static_argnums=2)
  host_step = jax.jit(record_rows)
  seen = []
  # Two epochs (the plan follows the step) and a run past the epoch's end.
  for step, num_steps in ((0, None), (6, None), (6, 2 * 6 + 1)):
    want_state, want = scanned(bare_state(step), device, num_steps)
    got_state, got = epochs.host_epoch(host_step, bare_state(step), on_host,
                                     num_steps)
    assert isinstance(got['rows'], np.ndarray)
    np.testing.assert_array_equal(got['rows'], want['rows'])
    np.testing.assert_array_equal(got['pixels'], want['pixels'])
    assert int(got_state.step) == int(want_state.step)
    seen.append(got['rows'])
  assert seen[0].shape == (6, BATCH) and seen[2].shape == (13, BATCH)
  assert not np.array_equal(seen[0], seen[1])  # a new order every epoch
  np.testing.assert_array_equal(seen[2][6:12], seen[2][:6])  # wraps around
  assert len(np.unique(seen[0])) == 6 * BATCH  # no row twice in an epoch


def initial_state(objective):
  return tiny.host_state(objective, shape=(BATCH, 4, 4, 3))


def test_train_epoch_matches_the_device_epoch():
  trainer = tiny.trainer(OBJECTIVE)
  images, labels = arrays()
  device, on_host = both(images, labels)
  want_state, want = trainer.jit_train_epoch(
      jax.device_put(initial_state(OBJECTIVE)), device)
  got_state, got = epochs.train_epoch(trainer,
                                    jax.device_put(initial_state(OBJECTIVE)),
                                    on_host)
  again_state, again = epochs.train_epoch(
      trainer, jax.device_put(initial_state(OBJECTIVE)), on_host)
  assert sorted(got) == sorted(want)
  assert int(got_state.step) == int(want_state.step) == N // BATCH
  for name in want:
    assert got[name].shape == (N // BATCH,), name
    # A compiled step and a scan of steps may round differently.
    np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5,
                               err_msg=name)
    np.testing.assert_array_equal(again[name], got[name])  # deterministic
  tiny.assert_trees_close(got_state.encoder_params,
                          want_state.encoder_params, 1e-4, 1e-5)
  tiny.assert_trees_close(again_state, got_state)


def test_train_epoch_rejects_device_data():
  images, labels = arrays()
  device, _ = both(images, labels)
  with pytest.raises(ValueError,
                     match='takes a host-fed dataset.*jit_train_epoch'):
    epochs.train_epoch(tiny.trainer('base'), initial_state('base'), device)


def test_evaluate_host_data_equals_device_data():
  trainer = tiny.trainer('base')
  images, labels = arrays(seed=4)
  device, on_host = both(images, labels, shuffle=False)
  state = jax.device_put(initial_state('base'))
  want = evaluation.evaluate(trainer, state, device)
  got = evaluation.evaluate(trainer, state, on_host)
  assert sorted(got) == sorted(want)
  for name in ('correct', 'count', 'confusion', 'combo_correct',
               'combo_count', 'labels', 'preds', 'mask'):
    np.testing.assert_array_equal(got[name], want[name], err_msg=name)
  assert got['z'].shape == (6 * BATCH, 4)
  np.testing.assert_allclose(got['z'], want['z'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got['ce_sum'], want['ce_sum'], rtol=1e-5)


def fit(workdir, num_epochs, train_data, eval_data):
  config = run.FitConfig(num_epochs=num_epochs, progress=False,
                         tensorboard=False)
  return run.fit(tiny.trainer(OBJECTIVE),
                 jax.device_put(initial_state(OBJECTIVE)), train_data,
                 eval_data, str(workdir), config)


def test_fit_trains_host_data_and_resumes_bit_for_bit(tmp_path):
  images, labels = arrays(seed=1)
  val_images, val_labels = arrays(24, seed=2)
  train_data = host.HostDataset(images, labels, batch_size=BATCH)
  eval_data = {'val': host.HostDataset(val_images, val_labels,
                                       batch_size=BATCH, shuffle=False)}
  whole = fit(tmp_path / 'whole', 2, train_data, eval_data)
  fit(tmp_path / 'twice', 1, train_data, eval_data)
  twice = fit(tmp_path / 'twice', 2, train_data, eval_data)
  assert whole['step'] == twice['step'] == 2 * (N // BATCH)
  untimed = lambda r: {k: v for k, v in r.items() if k != 'seconds'}
  assert untimed(twice['final']) == untimed(whole['final'])
  assert whole['final']['eval']['val']['num_examples'] == 24
  tiny.assert_trees_close(twice['state'], whole['state'])

  # The device datasets of the same rows train on the same batches.
  device_train = ArrayDataset(jnp.asarray(images), jnp.asarray(labels),
                              batch_size=BATCH)
  device_eval = {'val': ArrayDataset(jnp.asarray(val_images),
                                     jnp.asarray(val_labels),
                                     batch_size=BATCH, shuffle=False)}
  on_device = fit(tmp_path / 'device', 2, device_train, device_eval)
  for name, value in on_device['final']['train'].items():
    np.testing.assert_allclose(whole['final']['train'][name], value,
                               rtol=1e-4, atol=1e-5, err_msg=name)
  assert prefetch_threads() == []


def test_a_stop_signal_inside_an_epoch_saves_that_step_and_resumes_exactly(
    tmp_path, monkeypatch):
  images, labels = arrays(seed=1)
  train_data = host.HostDataset(images, labels, batch_size=4)  # 13 steps
  eval_data = {'val': host.HostDataset(*arrays(24, seed=2), batch_size=4,
                                       shuffle=False)}
  whole = fit(tmp_path / 'whole', 3, train_data, eval_data)

  produced = []
  host_batch = host.HostDataset.host_batch

  def signalling_host_batch(self, plan, step):
    produced.extend([step] if self is train_data else [])
    if len(produced) == 13 + 5 and self is train_data:
      # Batch 4 of epoch 2 is prepared while an earlier step of it runs.
      os.kill(os.getpid(), signal.SIGTERM)
    return host_batch(self, plan, step)

  monkeypatch.setattr(host.HostDataset, 'host_batch', signalling_host_batch)
  with pytest.raises(preemption.Preempted) as stopped:
    fit(tmp_path / 'stopped', 3, train_data, eval_data)
  monkeypatch.undo()
  assert stopped.value.epoch == 1 and 13 < stopped.value.step < 2 * 13, (
      stopped.value.step)
  mid_epoch = tmp_path / 'stopped' / 'checkpoints' / ckpt.MID_EPOCH
  assert os.listdir(mid_epoch) == [str(stopped.value.step)]
  resumed = fit(tmp_path / 'stopped', 3, train_data, eval_data)
  assert os.listdir(mid_epoch) == []  # Superseded by the next latest.

  # As JSON: the untrained codes' correlations are NaN, and NaN != NaN.
  untimed = lambda r: json.dumps({k: v for k, v in r.items()
                                  if k != 'seconds'}, sort_keys=True)
  assert untimed(resumed['final']) == untimed(whole['final'])
  jax.tree.map(np.testing.assert_array_equal, resumed['state'], whole['state'])
  logged = [[json.loads(line) for line in open(tmp_path / name / 'log.jsonl')]
            for name in ('whole', 'stopped')]
  assert [r['epoch'] for r in logged[1]] == [1, 2, 3]
  assert list(map(untimed, logged[0])) == list(map(untimed, logged[1]))
  assert prefetch_threads() == []


def test_fit_checks_the_labels_of_host_data(tmp_path):
  images, labels = arrays()
  labels[:, 1] = 5  # outside [-1, 2)
  train_data = host.HostDataset(images, labels, batch_size=BATCH)
  with pytest.raises(ValueError, match=r'training data \(first batch\).*#1'):
    fit(tmp_path / 'bad', 1, train_data, {'val': train_data})


def test_prefetcher_yields_in_order_ahead_but_bounded():
  produced = []

  def produce(i):
    produced.append(i)
    return i * i

  with host.Prefetcher(produce, 20, depth=2) as items:
    assert next(items) == 0
    # One handed out, two queued and one waiting to be queued.
    assert wait_until(lambda: len(produced) == 4)
    time.sleep(0.2)
    assert len(produced) == 4, 'the prefetcher ran past its depth'
    assert list(items) == [i * i for i in range(1, 20)]
  assert produced == list(range(20))
  assert not items.alive


def test_prefetcher_stops_when_the_consumer_raises():
  with pytest.raises(KeyError, match='consumer'):
    with host.Prefetcher(lambda i: i, 1000, depth=2) as items:
      next(items)
      raise KeyError('consumer')
  assert not items.alive
  assert prefetch_threads() == []


def test_producer_error_reaches_the_consumer():
  def produce(i):
    if i == 3:
      raise OSError('disk gone at row 3')
    return i

  with host.Prefetcher(produce, 10, depth=2) as items:
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(OSError, match='disk gone at row 3'):
      next(items)
    assert wait_until(lambda: not items.alive)
    with pytest.raises(StopIteration):  # closed after the error
      next(items)


def test_failing_step_leaves_no_prefetch_thread():
  images, labels = arrays(row_ids=True)
  on_host = host.HostDataset(images, labels, batch_size=BATCH)

  def step(state, batch):
    if int(state.step) == 2:
      raise FloatingPointError('step 2 failed')
    return record_rows(state, batch)

  with pytest.raises(FloatingPointError, match='step 2 failed'):
    epochs.host_epoch(step, bare_state(0), on_host)
  assert prefetch_threads() == []


def test_abandoned_prefetcher_stops_when_collected():
  items = host.Prefetcher(lambda i: i, 1000, depth=2)
  next(items)
  thread = items._thread  # pylint: disable=protected-access
  del items
  gc.collect()
  assert wait_until(lambda: not thread.is_alive())


def test_bad_depth_is_named():
  with pytest.raises(ValueError, match='prefetch depth'):
    host.Prefetcher(lambda i: i, 3, depth=0)
  images, labels = arrays()
  with pytest.raises(ValueError, match='prefetch_depth'):
    host.HostDataset(images, labels, batch_size=BATCH, prefetch_depth=0)


def test_host_dataset_rejects_bad_arrays():
  images, labels = arrays()
  with pytest.raises(ValueError, match='NumPy arrays.*ArrayDataset'):
    host.HostDataset(jnp.asarray(images), labels, batch_size=BATCH)
  with pytest.raises(ValueError, match='same N'):
    host.HostDataset(images[:-1], labels, batch_size=BATCH)
  with pytest.raises(ValueError, match=r'batch_size must lie in \[1, 53\]'):
    host.HostDataset(images, labels, batch_size=54)
  on_host = host.HostDataset(images, labels, batch_size=BATCH)
  with pytest.raises(ValueError, match='past the end'):
    on_host.host_batch(np.arange(N), 6)


class FakeDevice:
  """Stands for an accelerator that reports its memory."""
  platform, id = 'gpu', 0

  def __init__(self, limit, in_use=0):
    self.stats = {'bytes_limit': limit, 'bytes_in_use': in_use}

  def memory_stats(self):
    return self.stats


def test_choose_placement():
  gib = 2**30
  # The CPU reports no separate memory: the data go to the device.
  where, reason = host.choose_placement(100 * gib, 'auto')
  assert where == 'device' and 'no separate memory limit' in reason
  assert host.choose_placement(gib, 'auto', FakeDevice(4 * gib))[0] == 'device'
  where, reason = host.choose_placement(3 * gib, 'auto', FakeDevice(4 * gib))
  assert where == 'host' and '3.00 GiB' in reason and '0.5 x 4.00' in reason
  # What the device already holds counts.
  assert host.choose_placement(gib, 'auto', FakeDevice(4 * gib, 1.5 * gib),
                               )[0] == 'host'
  assert host.choose_placement(3 * gib, 'auto', FakeDevice(4 * gib),
                               memory_fraction=0.9)[0] == 'device'
  assert host.choose_placement(3 * gib, 'device', FakeDevice(gib))[0] == (
      'device')
  assert host.choose_placement(1, 'host')[0] == 'host'


@pytest.mark.parametrize('placement', ['gpu', 'Host', None, 1])
def test_bad_placement_lists_the_valid_values(placement):
  with pytest.raises(ValueError, match=r"one of \('auto', 'device', 'host'\)"):
    host.choose_placement(1, placement)
  with pytest.raises(ValueError, match='memory_fraction'):
    host.choose_placement(1, 'auto', memory_fraction=0.0)
