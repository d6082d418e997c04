"""Group-robust training: groups of attribute values and their loss weights.

A *group* is one combination of the categorical attributes' values,
``g = ravel(s_1, ..., s_K)`` (row-major, ``G = prod_k C_k`` groups; continuous
attributes define no groups); a row with any of them missing (``-1``)
belongs to no group (``g = -1``). The heads' losses (cross-entropy, or the
squared error of a continuous attribute's head) are weighted by group, with
any disentanglement objective:

* ``none``: each head's mean loss over its labelled rows.
* ``reweight``: each head's loss is ``sum_i w_i CE_ik / sum_i w_i`` over its
  labelled rows, ``w`` from :func:`reweight_weights`.
* ``groupdro``: online GroupDRO (Sagawa et al., 2020, Algorithm 1): the loss
  is ``sum_g q_g L_g`` (:func:`group_losses`) with ``q`` first updated by
  :func:`dro_update`. ``q`` starts uniform and lives in the train state. The
  defaults ``eta = 0.01`` and ``C = 0`` are those of the authors' code.
* ``subsample``: the ``none`` loss on group-balanced epochs
  (:class:`cmi_jax.data.base.GroupBalancedDataset`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import attributes
from cmi_jax import losses
from cmi_jax import validate

METHODS = ('none', 'reweight', 'subsample', 'groupdro')


@dataclasses.dataclass(frozen=True)
class GroupWeighting:
  """How the heads' cross-entropy weighs the groups (module docstring).

  Attributes:
    method: one of :data:`METHODS`.
    group_freqs: ``G`` training group frequencies summing to 1 (``reweight``).
    group_counts: ``G`` training group counts (``groupdro`` with ``C > 0``).
    dro_step_size: GroupDRO's ``eta``.
    dro_size_adjustment: GroupDRO's ``C``.
  """
  method: str = 'none'
  group_freqs: Optional[tuple[float, ...]] = None
  group_counts: Optional[tuple[float, ...]] = None
  dro_step_size: float = 0.01
  dro_size_adjustment: float = 0.0

  def __post_init__(self):
    validate.choice(self.method, 'method', METHODS)
    if self.method == 'reweight' and (self.group_freqs is None or np.any(
        np.asarray(self.group_freqs, np.float64) <= 0)):
      raise ValueError('reweight needs group_freqs, every group\'s training '
                       f'frequency > 0; got {self.group_freqs}.')
    if self.method == 'groupdro':
      validate.number(self.dro_step_size, 'dro_step_size', 0, open_low=True)
      validate.number(self.dro_size_adjustment, 'dro_size_adjustment', 0)
      if self.dro_size_adjustment > 0 and self.group_counts is None:
        raise ValueError('a GroupDRO size adjustment needs the training group '
                         'counts (group_counts).')

  def loss(self, logits: Sequence[jax.Array], labels: jax.Array,
           num_classes: Sequence[int], q: Optional[jax.Array] = None
           ) -> tuple[jax.Array, jax.Array]:
    """``(loss, per-head loss [K])``: the heads' loss under this weighting.

    ``logits``: K heads' outputs ``[B, C_k]`` (``[B, 1]`` for a continuous
    attribute); ``q``: GroupDRO's weights for this step (:meth:`dro_weights`).
    """
    if self.method in ('none', 'subsample'):
      ce = head_losses(logits, labels, num_classes)
      return ce.mean(), ce
    return classification_loss(logits, labels, num_classes, self, q)

  def init_dro(self, num_classes: Sequence[int]
               ) -> Optional[dict[str, jax.Array]]:
    """GroupDRO's initial state (None for the other methods).

    ``{'q': [G] uniform weights, 'step_size': eta, 'size_adjustment': C}``,
    float32 leaves, so a vmapped sweep can vary eta and C.
    """
    if self.method != 'groupdro':
      return None
    count = num_groups(num_classes)
    return {'q': jnp.full(count, 1.0 / count, jnp.float32),
            'step_size': jnp.asarray(self.dro_step_size, jnp.float32),
            'size_adjustment': jnp.asarray(self.dro_size_adjustment,
                                           jnp.float32)}

  def dro_weights(self, dro: Optional[dict[str, jax.Array]],
                  logits: Callable[[], Sequence[jax.Array]],
                  labels: jax.Array, num_classes: Sequence[int]
                  ) -> Optional[jax.Array]:
    """GroupDRO's ``q`` after this step's update (None for other methods).

    ``dro``: the state of :meth:`init_dro`; ``logits()``: the heads' logits
    at the pre-update parameters on the global batch (called only for
    GroupDRO).
    """
    if self.method != 'groupdro':
      return None
    ce, present = attributes.row_losses(logits(), labels, num_classes)
    return dro_update(dro['q'], group_losses(ce, present, labels, num_classes),
                      dro['step_size'], dro['size_adjustment'],
                      self.group_counts)


def num_groups(num_classes: Sequence[int]) -> int:
  """``G = prod_k C_k`` over the categorical attributes (1 if none)."""
  return int(np.prod([num_classes[k]
                      for k in attributes.categorical(num_classes)]))


def group_index(labels: jax.Array, num_classes: Sequence[int]) -> jax.Array:
  """Row-major group of every row, int32 ``[B]``; -1 if a label is missing.

  Over the categorical attributes only (:func:`num_groups`).
  """
  columns = attributes.categorical(num_classes)
  labels = jnp.stack([attributes.class_column(labels, k) for k in columns],
                     -1) if attributes.any_continuous(num_classes) else labels
  index = jnp.zeros(labels.shape[0], jnp.int32)
  for k, classes in enumerate(num_classes[k] for k in columns):
    index = index * classes + jnp.maximum(labels[:, k], 0)
  return jnp.where(jnp.all(labels >= 0, -1), index, -1)


def head_losses(outputs: Sequence[jax.Array], labels: jax.Array,
                num_classes: Sequence[int]) -> jax.Array:
  """Each head's mean loss over its labelled rows, ``[K]``: cross-entropy,
  or squared error for a continuous attribute."""
  return jnp.stack([
      losses.masked_squared_error(out[:, 0], labels[:, k])
      if n == attributes.CONTINUOUS
      else losses.masked_cross_entropy(out, attributes.class_column(labels, k))
      for k, (out, n) in enumerate(zip(outputs, num_classes))])


def reweight_weights(labels: jax.Array, num_classes: Sequence[int],
                     group_freqs: Sequence[float]) -> jax.Array:
  """Importance weights ``w_i = 1 / (G p(g_i))`` to uniform groups, ``[B]``.

  float32, ``p = group_freqs``; rows in no group weigh 1.
  """
  freqs = jnp.asarray(group_freqs, jnp.float32)
  per_group = 1.0 / (freqs.shape[0] * freqs)
  index = group_index(labels, num_classes)
  return jnp.where(index >= 0, per_group[jnp.maximum(index, 0)], 1.0)


def group_losses(ce: jax.Array, present: jax.Array, labels: jax.Array,
                 num_classes: Sequence[int]) -> jax.Array:
  """``L_g`` ``[G]``: mean over group g's rows of the heads' mean CE, or 0."""
  del present  # rows in a group have every label
  # [B, G] one-hot; rows in no group (index -1) are zero.
  member = jax.nn.one_hot(group_index(labels, num_classes),
                          num_groups(num_classes))
  per_row = ce.mean(-1)
  return (member.T @ per_row) / jnp.maximum(member.sum(0), 1.0)


def dro_update(q: jax.Array, losses_g: jax.Array, step_size: jax.Array,
               size_adjustment: jax.Array = 0.0,
               group_counts: Optional[Sequence[float]] = None) -> jax.Array:
  """One exponentiated-gradient step of GroupDRO's group weights ``[G]``.

  ``q_g exp(eta (L_g + C / sqrt(n_g)))``, normalised, with ``n_g`` the
  ``group_counts`` (no ``C`` term without them); ``eta`` and ``C`` may be
  traced.
  """
  adjusted = jax.lax.stop_gradient(losses_g)
  if group_counts is not None:
    counts = jnp.asarray(group_counts, jnp.float32)
    adjusted = adjusted + size_adjustment / jnp.sqrt(jnp.maximum(counts, 1.0))
  q = q * jnp.exp(step_size * adjusted)
  return q / q.sum()


def classification_loss(logits: Sequence[jax.Array], labels: jax.Array,
                        num_classes: Sequence[int], weighting: GroupWeighting,
                        q: Optional[jax.Array] = None
                        ) -> tuple[jax.Array, jax.Array]:
  """``(loss, per-head unweighted CE [K])`` under ``weighting``.

  ``q``: GroupDRO's group weights to use (already updated for this step).
  """
  ce, present = attributes.row_losses(logits, labels, num_classes)
  counts = jnp.maximum(present.sum(0), 1)
  plain = ce.sum(0) / counts  # [K]
  if weighting.method in ('none', 'subsample'):
    return plain.mean(), plain
  if weighting.method == 'reweight':
    w = reweight_weights(labels, num_classes, weighting.group_freqs)
    weighted = (w[:, None] * ce).sum(0) / jnp.maximum(
        (w[:, None] * present).sum(0), 1e-12)
    return weighted.mean(), plain
  return q @ group_losses(ce, present, labels, num_classes), plain
