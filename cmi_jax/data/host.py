"""Datasets held in host memory, fed to the device by a background prefetcher.

The default path keeps a dataset on the device (:class:`~cmi_jax.data.base.
ArrayDataset`): batches are gathered by index inside the compiled epoch and
the host is out of the loop. When the images do not fit in device memory
(up to CelebA's 2 GB of uint8 64x64 faces on a small accelerator, say),
they stay in host memory in a :class:`HostDataset` and a thread feeds the
device:

* :meth:`HostDataset.prefetch` gathers batch ``i + 1 ... i + depth`` on the
  host (``np.take``) and starts their ``jax.device_put`` while the device
  runs step ``i``. Images travel as uint8 (a quarter of the float32 bytes)
  and are scaled to [0, 1] inside the compiled step.
* :mod:`cmi_jax.host_loop` (the engine's side) runs :meth:`Trainer.step`
  batch by batch; at most ``depth + 1`` steps are in flight, so device memory
  holds a bounded number of batches however far the host gets ahead.

Same epochs as the device path: the plan of an epoch is the permutation that
:meth:`ArrayDataset.epoch_plan` draws from the same key (computed by JAX,
then copied to the host; ``N`` ints), the key is drawn from the state's key
and step exactly as :func:`cmi_jax.train.epoch_data_key` draws it, and the last
``N % batch_size`` rows of the order are dropped. The batches of a host
epoch are therefore *equal* to the device epoch's, a run is reproduced on
resume, and a run may switch placement between restarts. (The float results
of a host epoch match the scanned epoch's to rounding, not bit for bit: XLA
compiles one step and a scan of steps differently.)

A thread and not ``grain``: docs/design.md gives the reasons.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from typing import Any, Callable, ClassVar, Iterator, Optional

import jax
import numpy as np

from cmi_jax import validate
from cmi_jax.data.base import Batch, to_float_image

PLACEMENTS = ('auto', 'device', 'host')
# Share of the device memory that 'auto' lets the images take; the rest is
# left for parameters, optimiser states, activations and XLA's workspace.
DEFAULT_DEVICE_MEMORY_FRACTION = 0.5
DEFAULT_PREFETCH = 2

# How often a blocked producer or consumer looks at the stop flag, seconds.
_POLL_S = 0.05


# ---------------------------------------------------------------------------
# Placement.


def check_placement(placement: Any) -> str:
  """Returns ``placement`` if it is one of :data:`PLACEMENTS`.

  Raises:
    ValueError: listing the valid values.
  """
  return validate.choice(placement, 'data placement', PLACEMENTS)


def _default_device() -> jax.Device:
  """The device that data placed "on the device" goes to."""
  return jax.devices()[0]


def choose_placement(nbytes: int, placement: str = 'auto',
                     device: Optional[jax.Device] = None,
                     memory_fraction: float = DEFAULT_DEVICE_MEMORY_FRACTION
                     ) -> tuple[str, str]:
  """Where ``nbytes`` of data should live: ``'device'`` or ``'host'``.

  ``'device'`` and ``'host'`` are returned as asked. ``'auto'`` picks the
  device when the data, plus what the device already holds, stay within
  ``memory_fraction`` of its memory (``memory_stats()['bytes_limit']``). A
  backend that reports no memory limit (the CPU, where "device" memory is
  host memory) gets the device: there is nothing to save by keeping the
  data apart.

  Args:
    nbytes: bytes the data take on the device.
    placement: one of :data:`PLACEMENTS`.
    device: the device that would hold the data (default: the first).
    memory_fraction: in (0, 1].

  Returns:
    ``(placement, reason)``: ``'device'`` or ``'host'`` and why, for a log
    line.

  Raises:
    ValueError: for an unknown placement or a fraction outside (0, 1].
  """
  check_placement(placement)
  validate.number(memory_fraction, 'memory_fraction', 0, 1, open_low=True)
  size = f'{_size(nbytes)} of images'
  if placement != 'auto':
    return placement, f'requested; {size}'
  device = _default_device() if device is None else device
  try:
    stats = device.memory_stats()
  except (NotImplementedError, RuntimeError):  # some backends do not report
    stats = None
  limit = (stats or {}).get('bytes_limit')
  if not limit:
    return 'device', (f'auto: {device.platform} device {device.id} reports '
                      f'no separate memory limit; {size}')
  in_use = int((stats or {}).get('bytes_in_use', 0))
  budget = memory_fraction * limit
  where = 'device' if nbytes + in_use <= budget else 'host'
  relation = '<=' if where == 'device' else '>'
  return where, (
      f'auto: {size} + {_size(in_use)} in use {relation} '
      f'{memory_fraction:g} x {_size(limit)} of {device.platform} device '
      f'{device.id}')


def _size(nbytes: float) -> str:
  """Bytes for a person: ``'1.50 GiB'``, ``'12.0 MiB'``."""
  if nbytes >= 2**30:
    return f'{nbytes / 2**30:.2f} GiB'
  return f'{nbytes / 2**20:.1f} MiB'


# ---------------------------------------------------------------------------
# The prefetcher.


class Prefetcher:
  """Iterates ``produce(0) ... produce(count - 1)``, computed ahead by a thread.

  The thread keeps up to ``depth`` finished items in a bounded queue (plus
  the one it is computing), so it runs ahead of the consumer by at most
  ``depth + 1`` items. An exception in ``produce`` is raised by the
  consumer's next ``next()``, and the thread ends.

  Use it as a context manager (or call :meth:`close`): leaving the block,
  normally or by an exception, stops and joins the thread. An abandoned,
  unclosed prefetcher also stops once it is garbage collected: the thread
  holds no reference to it.
  """

  def __init__(self, produce: Callable[[int], Any], count: int,
               depth: int = DEFAULT_PREFETCH, name: str = 'prefetch'):
    """Starts the thread.

    Args:
      produce: ``index -> item``, run on the thread in index order.
      count: number of items.
      depth: finished items kept ahead, >= 1.
      name: the thread's name (shows in debuggers and thread dumps).
    """
    validate.integer(depth, 'prefetch depth', 1)
    self._queue: queue.Queue = queue.Queue(maxsize=int(depth))
    self._stop = threading.Event()
    self._count = int(count)
    self._next = 0
    self._thread = threading.Thread(
        target=_produce_all, args=(produce, self._count, self._queue,
                                   self._stop),
        name=name, daemon=True)  # daemon: never blocks interpreter exit
    self._thread.start()

  def __iter__(self) -> Iterator[Any]:
    return self

  def __next__(self) -> Any:
    if self._next >= self._count or self._stop.is_set():
      raise StopIteration
    while True:
      try:
        ok, item = self._queue.get(timeout=_POLL_S)
        break
      except queue.Empty:
        if not self._thread.is_alive() and self._queue.empty():
          # Only if the thread died without reporting (it always reports).
          self.close()
          raise RuntimeError('the prefetch thread ended without a result.')
    if not ok:
      self.close()
      raise item
    self._next += 1
    return item

  def close(self) -> None:
    """Stops the thread and waits for it; idempotent."""
    self._stop.set()
    # Frees a producer blocked on a full queue, and the queued device buffers.
    while self._thread.is_alive():
      try:
        while True:
          self._queue.get_nowait()
      except queue.Empty:
        pass
      self._thread.join(timeout=_POLL_S)

  @property
  def alive(self) -> bool:
    """Whether the thread is still running."""
    return self._thread.is_alive()

  def __enter__(self) -> Prefetcher:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def __del__(self):
    # Only set the flag: joining here could block the garbage collector.
    stop = getattr(self, '_stop', None)
    if stop is not None:
      stop.set()


def _produce_all(produce: Callable[[int], Any], count: int,
                 out: queue.Queue, stop: threading.Event) -> None:
  """The thread: puts ``(True, item)`` per index; ``(False, error)`` ends."""

  def put(entry) -> bool:
    while not stop.is_set():
      try:
        out.put(entry, timeout=_POLL_S)
        return True
      except queue.Full:
        continue
    return False

  for index in range(count):
    if stop.is_set():
      return
    try:
      item = produce(index)
    except BaseException as e:  # pylint: disable=broad-except
      # Handed to the consumer, which raises it where it iterates.
      put((False, e))
      return
    if not put((True, item)):
      return


# ---------------------------------------------------------------------------
# The dataset.


@dataclasses.dataclass(frozen=True, eq=False)
class HostDataset:
  """A labelled image array in host memory, batched like an ``ArrayDataset``.

  Not a pytree (its arrays must not be traced into a compiled function):
  ``host_fed`` tells the engine to train and evaluate it batch by batch
  (:mod:`cmi_jax.host_loop`), which :func:`cmi_jax.run.fit` and
  :func:`cmi_jax.evaluation.evaluate` do.

  Attributes:
    images: uint8 ``[N, H, W, C]`` (or float ``[N, ...]``) NumPy array or
      ``np.memmap``; batches are scaled to [0, 1] on the device if uint8.
    labels: int ``[N, K]``, -1 for missing.
    batch_size: examples per batch, ``1 <= batch_size <= N``.
    shuffle: a fresh permutation every epoch (else sequential order).
    prefetch_depth: batches the background thread keeps ready, >= 1.
  The epoch has ``N // batch_size`` steps; the remainder is dropped.
  """
  images: np.ndarray
  labels: np.ndarray
  batch_size: int
  shuffle: bool = True
  prefetch_depth: int = DEFAULT_PREFETCH

  host_fed: ClassVar[bool] = True

  def __post_init__(self):
    images, labels = self.images, self.labels
    if not isinstance(images, np.ndarray) or not isinstance(labels,
                                                            np.ndarray):
      raise ValueError(
          'HostDataset holds NumPy arrays (or np.memmap) in host memory; got '
          f'{type(images).__name__} images and {type(labels).__name__} '
          'labels. Pass np.asarray(...) of them, or use ArrayDataset for '
          'arrays already on the device.')
    if images.ndim < 2 or labels.ndim != 2 or len(images) != len(labels):
      raise ValueError(
          f'HostDataset needs images [N, ...] and labels [N, K] with the same '
          f'N; got {images.shape} and {labels.shape}.')
    validate.integer(self.batch_size, 'batch_size', 1, len(labels),
                     hint=f'N = {len(labels)} rows.')
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
    """The epoch's order of the N rows, int ``[N]`` on the host.

    The same permutation as ``ArrayDataset.epoch_plan(key)``: drawn by JAX
    from ``key``, then copied to the host.
    """
    n = len(self.labels)
    if self.shuffle:
      return np.asarray(jax.device_get(jax.random.permutation(key, n)))
    return np.arange(n)

  def host_batch(self, plan: np.ndarray, step: int) -> dict[str, np.ndarray]:
    """Rows ``plan[step * B : (step + 1) * B]`` as stored (uint8 images).

    Returns:
      ``{'image': [B, ...] as stored, 'labels': int32 [B, K]}`` (NumPy).
    """
    index = np.asarray(plan[step * self.batch_size:
                            (step + 1) * self.batch_size])
    if len(index) != self.batch_size:
      raise ValueError(f'step {step} is past the end of the epoch '
                       f'({self.steps_per_epoch} steps).')
    return {'image': np.take(self.images, index, axis=0),
            'labels': np.take(self.labels, index, axis=0).astype(np.int32)}

  def batch(self, plan: np.ndarray, step: int) -> Batch:
    """Batch ``step`` on the device, images scaled to [0, 1] (for inspection).

    Equal to ``ArrayDataset.batch`` of the same rows and plan. Training and
    evaluation go through :meth:`prefetch` instead.
    """
    raw = jax.device_put(self.host_batch(plan, step))
    return {'image': to_float_image(raw['image']), 'labels': raw['labels']}

  def prefetch(self, plan: np.ndarray, num_steps: Optional[int] = None,
               device: Any = None,
               depth: Optional[int] = None) -> Prefetcher:
    """The epoch's batches on the device, gathered and copied ahead.

    Args:
      plan: from :meth:`epoch_plan`.
      num_steps: batches to yield (default: one epoch); step ``i`` is batch
        ``i % steps_per_epoch`` of the plan, as in the scanned epoch.
      device: a ``jax.Device`` or ``jax.sharding.Sharding`` for the batches
        (default: JAX's default device).
      depth: batches kept ready (default: ``prefetch_depth``).

    Returns:
      A :class:`Prefetcher` (use it in a ``with`` block) yielding
      ``{'image': [B, ...] as stored (uint8), 'labels': int32 [B, K]}`` as
      device arrays; scale the images with :func:`to_float_image` on the
      device.
    """
    num_steps = self.steps_per_epoch if num_steps is None else int(num_steps)
    plan = np.asarray(plan)
    steps = self.steps_per_epoch

    def produce(i: int) -> Batch:
      return jax.device_put(self.host_batch(plan, i % steps), device)

    return Prefetcher(produce, num_steps,
                      self.prefetch_depth if depth is None else depth,
                      name='HostDataset.prefetch')
