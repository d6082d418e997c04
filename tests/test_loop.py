"""The one epoch loop's rules, on a stand-in engine (no model, no compile)."""

import flax.struct
import jax.numpy as jnp
import numpy as np
import pytest

from cmi_jax import loop

pytestmark = pytest.mark.usefixtures('fast_compiles')


@flax.struct.dataclass
class Counter:
  """A state of S members: a step count and a value per member."""
  step: jnp.ndarray
  key: jnp.ndarray
  value: jnp.ndarray


STEPS = 3


def members(size, bad=None, calls=None):
  """``size`` stacked members; ``bad(epoch)`` -> members whose loss is NaN."""
  def train_epoch(state, data):
    epoch = int(state.step[0]) // STEPS + 1
    if calls is not None:
      calls.append(epoch)
    loss = np.ones((size, STEPS), np.float32) * epoch
    for i in (bad(epoch) if bad else ()):
      loss[i, -1] = np.nan
    return state.replace(step=state.step + STEPS,
                         value=state.value + data), {'loss/ce': loss}
  return loop.Members(size, train_epoch, lambda state, splits: {},
                      stacked=True)


def start(size):
  return Counter(step=jnp.zeros(size, jnp.int32),
                 key=jnp.zeros((size, 2), jnp.uint32),
                 value=jnp.zeros(size))


def hooks(size, seen):
  def hook(i):
    def record(epoch, state, stats):
      seen.append((i, epoch))
      return {'value': float(state.value)}
    return record
  return [hook(i) for i in range(size)]


@pytest.mark.parametrize('eval_every, evaluated', [
    (2, [2, 4, 5]), (0, [5]), (1, [1, 2, 3, 4, 5])])
def test_evaluation_every_eval_every_epochs_and_after_the_last(
    eval_every, evaluated):
  seen = []
  state, results = loop.fit(
      members(2), start(2), 1.0, {}, loop.FitConfig(
          5, eval_every=eval_every, progress=False), hooks=hooks(2, seen))
  assert seen == [(i, e) for e in evaluated for i in range(2)]
  assert [r['final']['epoch'] for r in results] == [5, 5]
  assert [r['final']['extra'] for r in results] == [{'value': 5.0}] * 2
  assert results[0]['best_val_loss'] is None  # no split, no best epoch
  np.testing.assert_array_equal(state.step, [5 * STEPS] * 2)


def test_a_non_finite_member_stops_and_the_others_train_on():
  seen = []
  _, results = loop.fit(
      members(3, bad=lambda epoch: [1] if epoch == 2 else []), start(3), 1.0,
      {}, loop.FitConfig(4, progress=False), hooks=hooks(3, seen))
  assert set(results[1]) == {'epoch', 'non_finite'}
  assert results[1]['non_finite'].startswith(
      'non-finite loss/ce at step 6 (epoch 2); last good checkpoint: none')
  assert [e for i, e in seen if i == 1] == [1]
  for i in (0, 2):
    assert results[i]['final']['epoch'] == 4
    assert [e for j, e in seen if j == i] == [1, 2, 3, 4]


def test_the_loop_ends_when_every_member_has_stopped(tmp_path):
  calls = []
  _, results = loop.fit(
      members(2, bad=lambda epoch: [0, 1] if epoch == 2 else [], calls=calls),
      start(2), 1.0, {}, loop.FitConfig(5, progress=False),
      checkpoint_dir=str(tmp_path))
  assert calls == [1, 2]
  assert all('epoch 2' in r['non_finite'] for r in results)
  assert all(str(tmp_path / 'checkpoints' / 'latest' / '1') in r['non_finite']
             for r in results)
  assert sorted(p.name for p in (tmp_path / 'checkpoints' / 'latest').iterdir()
                if p.name.isdigit()) == ['1']  # nothing after the bad step


def test_a_resumed_loop_continues_after_its_checkpoint(tmp_path):
  first_calls, calls = [], []
  config = loop.FitConfig(4, checkpoint_every=2, progress=False)
  whole, _ = loop.fit(members(2), start(2), 1.0, {}, config)

  class Stop(Exception):
    pass

  def stop_in_epoch_3(epoch, state, stats):
    if epoch == 3:
      raise Stop()
    return {}

  with pytest.raises(Stop):
    loop.fit(members(2, calls=first_calls), start(2), 1.0, {}, config,
             checkpoint_dir=str(tmp_path), hooks=[stop_in_epoch_3, None])
  resumed, results = loop.fit(members(2, calls=calls), start(2), 1.0, {},
                              config, checkpoint_dir=str(tmp_path))
  assert first_calls == [1, 2, 3] and calls == [3, 4]
  np.testing.assert_array_equal(resumed.value, whole.value)
  assert [r['final']['epoch'] for r in results] == [4, 4]


def test_bad_loop_arguments_raise_one_clear_error():
  with pytest.raises(ValueError, match='3 hooks for 2 members'):
    loop.fit(members(2), start(2), 1.0, {}, loop.FitConfig(1),
             hooks=[None] * 3)
  with pytest.raises(ValueError, match='best_checkpoints is for a single'):
    loop.fit(members(2), start(2), 1.0, {}, loop.FitConfig(1),
             best_checkpoints=True)
  with pytest.raises(ValueError, match="select_split 'val' is not an "):
    loop.fit(members(2), start(2), 1.0, {'test': None}, loop.FitConfig(1))
