"""Stopping cleanly on a scheduler's signal.

SLURM and cloud schedulers stop a job with SIGTERM, often after SIGUSR1 as a
warning; a user stops one with SIGINT. :func:`stop_signals` turns the first of
these into a request that the loop reads between steps (host-fed data) or
epochs (a compiled epoch): it finishes the step or epoch in flight, saves a
checkpoint there, flushes its logs and raises :class:`Preempted`. The first
signal also restores the system's default action, so a second one ends the
process at once (status ``128 + signum`` in a shell), even inside a compiled
call; a checkpoint being written then is left as an orbax temporary, and
the previous one stays the newest readable.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator, Optional

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

# The exit status of a preempted command: BSD's EX_TEMPFAIL ("try again").
EXIT_STATUS = 75


class Preempted(Exception):
  """A stop signal ended training after a saved step; the same call resumes.

  Attributes:
    signal_name: e.g. ``'SIGTERM'``.
    epoch: the epochs completed.
    step: the step saved, when it lies inside the next epoch (else None).
  """

  def __init__(self, signum: int, epoch: int, step: Optional[int] = None):
    self.signal_name = signal.Signals(signum).name
    self.epoch = epoch
    self.step = step
    where = (f'after epoch {epoch}' if step is None else
             f'at step {step}, inside epoch {epoch + 1}')
    super().__init__(f'stopped by {self.signal_name} {where}, with its '
                     'checkpoint saved; the same command resumes')


class StopRequest:
  """The first stop signal received, if any (``signum``)."""

  def __init__(self):
    self.signum: Optional[int] = None

  def __bool__(self) -> bool:
    return self.signum is not None

  def _handle(self, signum: int, frame) -> None:
    del frame
    self.signum = signum
    for s in SIGNALS:
      signal.signal(s, signal.SIG_DFL)


@contextlib.contextmanager
def stop_signals() -> Iterator[StopRequest]:
  """Catches :data:`SIGNALS` while the block runs; restores the handlers.

  Off the main thread (where Python cannot install handlers) the request
  simply never fires.
  """
  request = StopRequest()
  if threading.current_thread() is not threading.main_thread():
    yield request
    return
  previous = {s: signal.signal(s, request._handle) for s in SIGNALS}
  try:
    yield request
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
