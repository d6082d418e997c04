"""One writer per directory: a lock file naming its holder.

A run (or a sweep cell) holds ``DIR/.lock`` while it writes ``DIR``. The file
is created atomically (``O_CREAT | O_EXCL``) and holds JSON: the holder's
host, pid, the start time of that process and when it took the lock. A lock
is *stale* when its holder is gone: on the same host, no live process has
that pid and start time (a killed run, a reused pid); on another host, the
holder stopped refreshing the file's modification time for ``stale_after``
seconds (a lost node). A stale lock is taken over with a warning; a live one
raises :class:`DirectoryBusyError` naming its holder.

The holder refreshes the file every ``stale_after / 4`` seconds from a daemon
thread, so that another host can tell it is alive. A process that already
holds a directory's lock may take it again (a sweep holds its cell while the
cell's run takes the run's lock); only the outer holder releases it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Optional

_log = logging.getLogger(__name__)

LOCK_NAME = '.lock'
STALE_AFTER_S = 120.0


class DirectoryBusyError(RuntimeError):
  """Another live process holds the directory's lock."""


def _start_time(pid: int) -> Optional[str]:
  """The kernel's start time of ``pid`` (Linux), or None if unknown or gone."""
  try:
    with open(f'/proc/{pid}/stat') as f:
      stat = f.read()
  except OSError:
    return None
  fields = stat[stat.rindex(')') + 2:].split()
  if fields[0] in ('Z', 'X'):  # exited, not yet reaped: gone all the same
    return None
  return fields[19]


def _alive(holder: dict[str, Any], stale_after: float, mtime: float) -> bool:
  """Whether the process described by ``holder`` still holds its lock."""
  if holder.get('host') != socket.gethostname():
    return time.time() - mtime < stale_after
  pid = holder.get('pid')
  if not isinstance(pid, int):
    return False
  started = _start_time(pid)
  if started is None and os.path.exists('/proc'):
    return False
  if started is None:  # no /proc: a signal 0 says whether the pid exists
    try:
      os.kill(pid, 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      pass
    return True
  return started == holder.get('start_time')


def describe(holder: dict[str, Any]) -> str:
  """``host HOST, pid PID, since ISO-TIME`` of a lock's holder."""
  since = time.strftime('%Y-%m-%d %H:%M:%S UTC',
                        time.gmtime(holder.get('since', 0)))
  return f"host {holder.get('host')}, pid {holder.get('pid')}, since {since}"


def read_holder(directory: str) -> Optional[dict[str, Any]]:
  """The holder recorded in ``directory``'s lock, or None if unlocked."""
  try:
    with open(os.path.join(directory, LOCK_NAME)) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (OSError, ValueError):  # half-written by a holder killed at once
    return {}


class DirectoryLock:
  """The lock on ``directory``; use as a context manager or acquire/release.

  Args:
    directory: the directory to hold (created if missing).
    stale_after: seconds without a refresh after which a holder on another
      host counts as gone.
  """

  def __init__(self, directory: str, stale_after: float = STALE_AFTER_S):
    self.directory = os.path.abspath(directory)
    self.path = os.path.join(self.directory, LOCK_NAME)
    self.stale_after = stale_after
    self._token = uuid.uuid4().hex
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self._nested = False
    self._created: Optional[str] = None  # The topmost directory it made.

  def acquire(self) -> 'DirectoryLock':
    """Takes the lock, or raises :class:`DirectoryBusyError`."""
    missing = self.directory
    while not os.path.exists(missing):
      self._created, missing = missing, os.path.dirname(missing)
    os.makedirs(self.directory, exist_ok=True)
    me = {'host': socket.gethostname(), 'pid': os.getpid(),
          'start_time': _start_time(os.getpid())}
    for _ in range(100):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = read_holder(self.directory) or {}
        if all(holder.get(k) == v for k, v in me.items()):
          self._nested = True
          return self
        self._take_over_if_stale()
        continue
      me.update(since=time.time(), token=self._token)
      with os.fdopen(fd, 'w') as f:
        json.dump(me, f)
      self._thread = threading.Thread(target=self._refresh, daemon=True)
      self._thread.start()
      return self
    raise DirectoryBusyError(f'could not take the lock {self.path}')

  def _take_over_if_stale(self) -> None:
    try:
      mtime = os.stat(self.path).st_mtime
    except FileNotFoundError:
      return
    holder = read_holder(self.directory)
    if holder is None:
      return
    if holder == {}:  # unreadable: its writer died between create and write
      if time.time() - mtime < 5:
        time.sleep(0.05)
        return
    elif _alive(holder, self.stale_after, mtime):
      raise DirectoryBusyError(
          f'{self.directory} is in use by another process ({describe(holder)})'
          f'; wait for it to finish, or use another directory')
    # Rename first: of two processes taking over, only one moves the file.
    moved = f'{self.path}.stale.{self._token}'
    try:
      os.rename(self.path, moved)
    except FileNotFoundError:
      return
    os.remove(moved)
    _log.warning('took over the lock of %s from a holder that is gone (%s)',
                 self.directory, describe(holder) if holder else 'unreadable')

  def _refresh(self) -> None:
    while not self._stop.wait(self.stale_after / 4):
      try:
        os.utime(self.path)
      except OSError:
        return

  def release(self) -> None:
    """Drops the lock (only if this object took it and still holds it)."""
    if self._nested:
      return
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    holder = read_holder(self.directory)
    if holder and holder.get('token') == self._token:
      os.remove(self.path)
    # Directories made only to hold the lock go if nothing was written.
    directory = self.directory
    while self._created is not None:
      try:
        os.rmdir(directory)
      except OSError:  # not empty, or gone
        break
      if directory == self._created:
        break
      directory = os.path.dirname(directory)

  def __enter__(self) -> 'DirectoryLock':
    return self.acquire()

  def __exit__(self, *exc_info) -> None:
    self.release()
