"""Datasets held in host memory, fed to the device by a background prefetcher.

Images that do not fit in device memory stay in a :class:`HostDataset`; a
thread gathers batches ``i + 1 ... i + depth`` and starts their
``jax.device_put`` (as uint8) while the device runs step ``i``
(:mod:`cmi_jax.epochs`). A host epoch has the batches of the device epoch
of an :class:`~cmi_jax.data.base.ArrayDataset` with the same key, so a run
may switch placement between restarts; float results match the scanned
epoch's to rounding only. Why a thread and not ``grain``: docs/design.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from collections.abc import Iterator
from typing import Any, Callable, ClassVar, Optional

import jax
import numpy as np

from cmi_jax import validate
from cmi_jax.data.base import Batch, to_float_image

PLACEMENTS = ('auto', 'device', 'host')
# The rest is left for parameters, optimiser states and activations.
DEFAULT_DEVICE_MEMORY_FRACTION = 0.5
DEFAULT_PREFETCH = 2

# How often a blocked producer or consumer looks at the stop flag, seconds.
_POLL_S = 0.05


def _default_device() -> jax.Device:
  """The device that data placed "on the device" goes to."""
  return jax.devices()[0]


def choose_placement(nbytes: int, placement: str = 'auto',
                     device: Optional[jax.Device] = None,
                     memory_fraction: float = DEFAULT_DEVICE_MEMORY_FRACTION
                     ) -> tuple[str, str]:
  """``(where, why)``: whether ``nbytes`` of data should live on the device.

  ``where`` is ``'device'`` or ``'host'``: as asked, or for ``'auto'`` the
  device (default: the first) when the data, plus what it already holds,
  stay within ``memory_fraction`` (in (0, 1]) of its
  ``memory_stats()['bytes_limit']``, or when it reports no limit (the CPU).
  ``why`` is for a log line.
  """
  validate.choice(placement, 'data placement', PLACEMENTS)
  validate.number(memory_fraction, 'memory_fraction', 0, 1, open_low=True)
  size = f'{_size(nbytes)} of images'
  if placement != 'auto':
    return placement, f'requested; {size}'
  device = _default_device() if device is None else device
  stats = {}
  with contextlib.suppress(NotImplementedError, RuntimeError):  # not reported
    stats = device.memory_stats() or {}
  limit = stats.get('bytes_limit')
  if not limit:
    return 'device', (f'auto: {device.platform} device {device.id} reports '
                      f'no separate memory limit; {size}')
  in_use = int(stats.get('bytes_in_use', 0))
  fits = nbytes + in_use <= memory_fraction * limit
  return 'device' if fits else 'host', (
      f'auto: {size} + {_size(in_use)} in use {"<=" if fits else ">"} '
      f'{memory_fraction:g} x {_size(limit)} of {device.platform} device '
      f'{device.id}')


def _size(nbytes: float) -> str:
  """Bytes for a person: ``'1.50 GiB'``, ``'12.0 MiB'``."""
  return (f'{nbytes / 2**30:.2f} GiB' if nbytes >= 2**30
          else f'{nbytes / 2**20:.1f} MiB')


class Prefetcher(contextlib.AbstractContextManager, Iterator):
  """Iterates ``produce(0) ... produce(count - 1)``, computed ahead by a thread.

  The thread runs at most ``depth + 1`` items ahead; an exception in
  ``produce`` ends it and is raised by the consumer's next ``next()``. Use it
  as a context manager (or call :meth:`close`); an unclosed prefetcher stops
  once garbage collected.
  """

  def __init__(self, produce: Callable[[int], Any], count: int,
               depth: int = DEFAULT_PREFETCH, name: str = 'prefetch'):
    """Starts the thread, which runs ``produce(index) -> item`` in order."""
    self._stop = threading.Event()  # first: __del__ reads it if we raise
    depth = validate.integer(depth, 'prefetch depth', 1)
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._count = int(count)
    self._next = 0
    self._thread = threading.Thread(
        target=_produce_all, name=name, daemon=True,  # never blocks exit
        args=(produce, self._count, self._queue, self._stop))
    self._thread.start()

  def __next__(self) -> Any:
    if self._next >= self._count or self._stop.is_set():
      raise StopIteration
    while True:
      with contextlib.suppress(queue.Empty):
        ok, item = self._queue.get(timeout=_POLL_S)
        break
      if not self._thread.is_alive() and self._queue.empty():
        self.close()  # the thread died without reporting
        raise RuntimeError('the prefetch thread ended without a result.')
    if not ok:
      self.close()
      raise item
    self._next += 1
    return item

  def close(self) -> None:
    """Stops the thread and waits for it; idempotent."""
    self._stop.set()
    # Draining frees a producer blocked on a full queue, and device buffers.
    while self._thread.is_alive():
      with contextlib.suppress(queue.Empty):
        while True:
          self._queue.get_nowait()
      self._thread.join(timeout=_POLL_S)

  @property
  def alive(self) -> bool:
    """Whether the thread is still running."""
    return self._thread.is_alive()

  def __exit__(self, *exc_info) -> None:
    self.close()

  def __del__(self):
    # Only set the flag: joining here could block the garbage collector.
    self._stop.set()


def _produce_all(produce: Callable[[int], Any], count: int,
                 out: queue.Queue, stop: threading.Event) -> None:
  """The thread: puts ``(True, item)`` per index; ``(False, error)`` ends."""
  for index in range(count):
    if stop.is_set():
      return
    try:
      entry = (True, produce(index))
    except BaseException as e:  # pylint: disable=broad-except
      entry = (False, e)  # the consumer raises it where it iterates
    while not stop.is_set():
      with contextlib.suppress(queue.Full):
        out.put(entry, timeout=_POLL_S)
        break
    if not entry[0]:
      return


@dataclasses.dataclass(frozen=True, eq=False)
class HostDataset:
  """A labelled image array in host memory, batched like an ``ArrayDataset``.

  Not a pytree: ``host_fed`` makes the engine run it batch by batch
  (:mod:`cmi_jax.epochs`).

  Attributes:
    images: uint8 ``[N, H, W, C]`` (or float ``[N, ...]``) NumPy array or
      ``np.memmap``; batches are scaled to [0, 1] on the device if uint8.
    labels: int ``[N, K]``, -1 for missing.
    batch_size: ``1 <= batch_size <= N``.
    shuffle: a fresh permutation every epoch (else sequential order).
    prefetch_depth: batches the background thread keeps ready, >= 1.
  """
  images: np.ndarray
  labels: np.ndarray
  batch_size: int
  shuffle: bool = True
  prefetch_depth: int = DEFAULT_PREFETCH

  host_fed: ClassVar[bool] = True

  def __post_init__(self):
    validate.arrays('HostDataset', {'images': (self.images, '[N, ...]'),
                                    'labels': (self.labels, '[N, K]')},
                    'It holds NumPy arrays (or np.memmap) in host memory, with '
                    'the same N; use ArrayDataset for arrays already on the '
                    'device.', numpy_only=True)
    validate.integer(self.batch_size, 'batch_size', 1, len(self.labels),
                     hint=f'N = {len(self.labels)} rows.')
    validate.integer(self.prefetch_depth, 'prefetch_depth', 1)

  @property
  def steps_per_epoch(self) -> int:
    """``N // batch_size``: the remainder is dropped."""
    return len(self.labels) // self.batch_size

  @property
  def nbytes(self) -> int:
    """Bytes of the images (what device placement would take)."""
    return int(self.images.nbytes)

  def epoch_plan(self, key: jax.Array) -> np.ndarray:
    """The N rows in the order of ``ArrayDataset.epoch_plan(key)``, on host."""
    n = len(self.labels)
    return (np.asarray(jax.device_get(jax.random.permutation(key, n)))
            if self.shuffle else np.arange(n))

  def host_batch(self, plan: np.ndarray, step: int) -> dict[str, np.ndarray]:
    """NumPy rows ``plan[step * B : (step + 1) * B]``, images as stored.

    Returns ``{'image': [B, ...], 'labels': int32 [B, K]}``.
    """
    index = np.asarray(plan[step * self.batch_size:
                            (step + 1) * self.batch_size])
    if len(index) != self.batch_size:
      raise ValueError(f'step {step} is past the end of the epoch '
                       f'({self.steps_per_epoch} steps).')
    return {'image': np.take(self.images, index, axis=0),
            'labels': np.take(self.labels, index, axis=0).astype(np.int32)}

  def batch(self, plan: np.ndarray, step: int) -> Batch:
    """``ArrayDataset.batch`` of the same rows and plan (for inspection)."""
    raw = jax.device_put(self.host_batch(plan, step))
    return {'image': to_float_image(raw['image']), 'labels': raw['labels']}

  def prefetch(self, plan: np.ndarray, num_steps: Optional[int] = None,
               device: Any = None, depth: Optional[int] = None,
               first: int = 0) -> Prefetcher:
    """A :class:`Prefetcher` of :meth:`host_batch` put on the device.

    Args:
      plan: from :meth:`epoch_plan`.
      num_steps: batches to yield (default: one epoch); step ``i`` is batch
        ``(first + i) % steps_per_epoch`` of the plan, as in the scanned
        epoch.
      device: a ``jax.Device`` or ``jax.sharding.Sharding`` (default: JAX's
        default device).
      depth: batches kept ready (default: ``prefetch_depth``).
      first: the batch of the plan to start from (an epoch resumed between
        two of its steps).
    """
    steps = self.steps_per_epoch
    num_steps = steps if num_steps is None else int(num_steps)
    plan = np.asarray(plan)

    def produce(i: int) -> Batch:
      return jax.device_put(self.host_batch(plan, (first + i) % steps), device)

    return Prefetcher(produce, num_steps,
                      self.prefetch_depth if depth is None else depth,
                      name='HostDataset.prefetch')
