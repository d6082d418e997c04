"""One writer per directory, checked with real processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from cmi_jax import locks

# A holder that takes the lock, says so, and sleeps until killed. It loads
# locks.py alone: the module needs nothing of the package (and no jax).
_HOLD = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location('locks', sys.argv[2])
locks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(locks)
lock = locks.DirectoryLock(sys.argv[1]).acquire()
print('held', flush=True)
time.sleep(600)
"""


def _start_holder(directory):
  proc = subprocess.Popen([sys.executable, '-c', _HOLD, str(directory),
                           locks.__file__],
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_second_process_is_refused_with_the_holder_named(tmp_path):
  holder = _start_holder(tmp_path)
  try:
    with pytest.raises(locks.DirectoryBusyError,
                       match=rf'in use by another process \(host '
                       rf'{socket.gethostname()}, pid {holder.pid}, since '):
      locks.DirectoryLock(tmp_path).acquire()
  finally:
    holder.kill()
    holder.wait()


def test_lock_of_a_killed_holder_is_taken_over(tmp_path, caplog):
  holder = _start_holder(tmp_path)
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  with locks.DirectoryLock(tmp_path):
    assert locks.read_holder(str(tmp_path))['pid'] == os.getpid()
  assert 'took over the lock' in caplog.text
  assert locks.read_holder(str(tmp_path)) is None


def test_reused_pid_does_not_keep_a_dead_holders_lock(tmp_path):
  # This very process, but recorded with another start time: a pid reused.
  (tmp_path / locks.LOCK_NAME).write_text(json.dumps(
      {'host': socket.gethostname(), 'pid': os.getpid(), 'start_time': '1',
       'since': 0}))
  with locks.DirectoryLock(tmp_path):
    assert locks.read_holder(str(tmp_path))['start_time'] != '1'


def test_remote_holder_is_stale_only_after_it_stops_refreshing(tmp_path):
  path = tmp_path / locks.LOCK_NAME
  path.write_text(json.dumps({'host': 'elsewhere', 'pid': 1, 'since': 0}))
  with pytest.raises(locks.DirectoryBusyError, match='host elsewhere'):
    locks.DirectoryLock(tmp_path, stale_after=60).acquire()
  old = time.time() - 61
  os.utime(path, (old, old))
  with locks.DirectoryLock(tmp_path, stale_after=60):
    assert locks.read_holder(str(tmp_path))['host'] == socket.gethostname()


def test_release_leaves_a_lock_taken_over_by_another(tmp_path):
  lock = locks.DirectoryLock(tmp_path).acquire()
  (tmp_path / locks.LOCK_NAME).write_text(json.dumps(
      {'host': 'elsewhere', 'pid': 1, 'since': 0, 'token': 'theirs'}))
  lock.release()
  assert locks.read_holder(str(tmp_path))['token'] == 'theirs'


def test_the_holder_may_take_its_own_lock_again(tmp_path):
  with locks.DirectoryLock(tmp_path) as outer:
    with locks.DirectoryLock(tmp_path):
      pass
    assert locks.read_holder(str(tmp_path))['token'] == outer._token
  assert locks.read_holder(str(tmp_path)) is None


def test_directories_made_for_the_lock_alone_go_with_it(tmp_path):
  with locks.DirectoryLock(tmp_path / 'a' / 'b'):
    pass
  assert not os.listdir(tmp_path)
  with locks.DirectoryLock(tmp_path / 'a' / 'b'):
    (tmp_path / 'a' / 'b' / 'x').write_text('written')
  assert os.listdir(tmp_path / 'a' / 'b') == ['x']
