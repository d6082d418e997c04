"""Stop signals: the loop saves the compiled epoch in flight and resumes from it.

A stop between two steps of a host-fed epoch: ``tests/test_host_data.py``.

A stand-in engine (no model, no compile) sends the signal to this very
process from inside an epoch, as a scheduler would while a step runs.
"""

import json
import os
import signal

import numpy as np
import pytest
from test_cli import without_seconds
from test_loop import STEPS, start

from cmi_jax import loop
from cmi_jax import preemption


def members(size, signal_at=None, signum=signal.SIGTERM, times=1):
  """``size`` stacked members; sends ``signum`` ``times`` in epoch
  ``signal_at``."""
  def train_epoch(state, data):
    epoch = int(state.step[0]) // STEPS + 1
    if epoch == signal_at:
      for _ in range(times):
        os.kill(os.getpid(), signum)
    loss = np.ones((size, STEPS), np.float32) * epoch
    return state.replace(step=state.step + STEPS,
                         value=state.value * 0.5 + data), {'loss/ce': loss}
  return loop.Members(size, train_epoch, lambda state, splits: {},
                      stacked=True)


def config():
  return loop.FitConfig(6, checkpoint_every=4, progress=False,
                        tensorboard=False)


def fit(tmp_path, name, size, **signal):
  logs = [str(tmp_path / name / f'member{i}') for i in range(size)]
  state, results = loop.fit(members(size, **signal), start(size), 1.0,
                            {}, config(),
                            checkpoint_dir=str(tmp_path / name),
                            log_dirs=logs)
  lines = [[json.loads(line) for line in open(os.path.join(d, 'log.jsonl'))]
           for d in logs]
  return state, without_seconds(results), without_seconds(lines)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT,
                                    signal.SIGUSR1])
def test_a_signal_saves_the_epoch_in_flight_and_the_rerun_ends_equal(
    tmp_path, signum):
  clean = fit(tmp_path, 'clean', 2)
  # Whatever the process had (an xdist worker ignores SIGINT) comes back.
  before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
  with pytest.raises(preemption.Preempted) as stopped:
    fit(tmp_path, 'stopped', 2, signal_at=3, signum=signum)
  assert stopped.value.epoch == 3
  assert stopped.value.signal_name == signal.Signals(signum).name
  assert 'the same command resumes' in str(stopped.value)
  # Saved at epoch 3 although checkpoint_every is 4: nothing is trained twice.
  assert sorted(os.listdir(tmp_path / 'stopped' / 'checkpoints' / 'latest')
                ) == ['3']
  resumed = fit(tmp_path, 'stopped', 2)
  np.testing.assert_array_equal(resumed[0].value, clean[0].value)
  assert resumed[1:] == clean[1:]
  assert [r['epoch'] for r in resumed[2][0]] == [1, 2, 3, 4, 5, 6]
  # The handlers are back.
  assert {s: signal.getsignal(s) for s in preemption.SIGNALS} == before


def test_a_signal_in_the_last_epoch_just_finishes(tmp_path):
  clean = fit(tmp_path, 'clean', 1)
  done = fit(tmp_path, 'last', 1, signal_at=6)
  assert done[1:] == clean[1:]


def test_stop_signals_restore_the_default_action_for_a_second_signal():
  before = {s: signal.getsignal(s) for s in preemption.SIGNALS}
  with preemption.stop_signals() as stop:
    assert not stop
    os.kill(os.getpid(), signal.SIGUSR1)
    assert stop.signum == signal.SIGUSR1
    for s in preemption.SIGNALS:
      assert signal.getsignal(s) is signal.SIG_DFL
  assert {s: signal.getsignal(s) for s in preemption.SIGNALS} == before
