"""Run logs: JSON lines, TensorBoard event files, a progress bar.

Only process 0 writes, so multi-host runs log once.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
from typing import Any, Callable, Iterable, Optional

import jax
import numpy as np


def to_jsonable(value: Any) -> Any:
  """NumPy/JAX scalars and arrays -> Python floats/lists (NaN -> None)."""
  if isinstance(value, dict):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if isinstance(value, (np.ndarray, jax.Array)):
    return to_jsonable(np.asarray(value).tolist())
  if isinstance(value, (np.floating, float)):
    return float(value) if math.isfinite(value) else None
  if isinstance(value, np.integer):
    return int(value)
  return value


def write_atomically(path: str, write: Callable[[str], None]) -> str:
  """Calls ``write(tmp)`` on a temporary file next to ``path``, then renames it.

  Readers never see a half-written file and a failing ``write`` leaves
  nothing behind; the parent directory is created. Returns ``path``.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=directory, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
  os.close(fd)
  try:
    write(tmp)
    # mkstemp creates the file private (0600); outputs are meant to be shared.
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def remove_stale_temporaries(directory: str) -> list[str]:
  """Deletes the temporary files killed writers left; returns their paths.

  Those of :func:`write_atomically` and ``log.jsonl.tmp``, in ``directory``
  and ``directory/figures``.
  """
  removed = []
  for folder in (directory, os.path.join(directory, 'figures')):
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
      path = os.path.join(folder, name)
      if (name.startswith('.') and name.endswith('.tmp')
          or name == 'log.jsonl.tmp') and os.path.isfile(path):
        os.remove(path)
        removed.append(path)
  return removed


def write_text_atomic(path: str, text: str) -> str:
  """Writes UTF-8 ``text`` to ``path`` atomically; returns ``path``."""
  def write(tmp):
    with open(tmp, 'w', encoding='utf-8') as f:
      f.write(text)
  return write_atomically(path, write)


def write_json_atomic(path: str, data: Any) -> None:
  """Writes ``to_jsonable(data)`` to ``path`` as JSON, atomically."""
  write_text_atomic(
      path, json.dumps(to_jsonable(data), indent=1, allow_nan=False) + '\n')


def read_jsonl(path: str) -> list[dict[str, Any]]:
  """All records of a JSON-lines file (an incomplete last line is dropped)."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return records


def flat_scalars(record: dict[str, Any], prefix: str = ''
                 ) -> Iterable[tuple[str, float]]:
  """``(name, value)`` for every finite scalar of a nested record."""
  for key, value in record.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      yield from flat_scalars(value, name + '/')
    elif isinstance(value, (int, float, np.floating, np.integer)) and (
        not isinstance(value, bool)) and math.isfinite(float(value)):
      yield name, float(value)


def tensorboard_tag(name: str) -> str:
  """``name`` with characters illegal in TensorBoard tags made ``_``."""
  # Else tensorboardX would warn at every step for each tag it renames.
  return re.sub(r'[^A-Za-z0-9_./\-]', '_', name)


class RunLogger:
  """Appends records to ``workdir/log.jsonl`` and TensorBoard ``workdir/tb``.

  On resume, records past ``keep_until_step`` are dropped (they will be
  logged again); without it the log starts afresh.
  """

  def __init__(self, workdir: str, keep_until_step: Optional[int] = None,
               tensorboard: bool = True):
    self.active = jax.process_index() == 0
    self.path = os.path.join(workdir, 'log.jsonl')
    self._writer = None
    if not self.active:
      return
    records = [] if keep_until_step is None else [
        r for r in read_jsonl(self.path) if r.get('step', 0) <= keep_until_step]
    write_text_atomic(self.path, ''.join(json.dumps(r) + '\n' for r in records))
    if tensorboard:
      from tensorboardX import SummaryWriter  # Heavy; only when asked for.
      # TensorBoard hides events at steps >= purge_step; the record at
      # keep_until_step is kept, as in log.jsonl.
      purge_step = 0 if keep_until_step is None else keep_until_step + 1
      # Event files are named by the second and opened with 'wb': a unique,
      # sortable suffix keeps a resume within that second from erasing one.
      self._writer = SummaryWriter(
          os.path.join(workdir, 'tb'), purge_step=purge_step,
          filename_suffix=f'.{time.time_ns():020d}')

  def write(self, record: dict[str, Any]) -> None:
    """Appends one record (it must hold ``step``) to every sink."""
    if not self.active:
      return
    record = to_jsonable(record)
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    if self._writer is not None:
      for name, value in flat_scalars(record):
        if name not in ('step', 'epoch'):
          self._writer.add_scalar(tensorboard_tag(name), value,
                                  record['step'])
      self._writer.flush()

  def close(self) -> None:
    """Flushes and closes the TensorBoard writer."""
    if self._writer is not None:
      self._writer.close()


def progress_bar(total: int, initial: int, enabled: Optional[bool]):
  """A tqdm bar over epochs; ``enabled=None`` shows it only on a terminal."""
  from tqdm import auto as tqdm
  disable = (not sys.stderr.isatty()) if enabled is None else not enabled
  return tqdm.tqdm(total=total, initial=initial, unit='epoch',
                   disable=disable or jax.process_index() != 0,
                   dynamic_ncols=True)
