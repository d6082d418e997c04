"""Attributes of two kinds: categorical and continuous, in one label array.

Attribute k has ``num_classes[k]`` classes, or is real-valued when that
count is :data:`CONTINUOUS` (0). The K labels of a batch are one array
``[B, K]``: int (``-1`` missing) when every attribute is categorical, float
when one is continuous; then the categorical columns hold whole numbers
(``-1`` missing) and the continuous ones their value (``NaN`` missing, so a
negative value is a label, not a missing one).

The heads read ``z``: a categorical head gives ``C_k`` logits and is trained
with cross-entropy, a continuous head one output, the predicted value,
trained with squared error (:func:`row_losses`).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

# The class count that declares an attribute continuous.
CONTINUOUS = 0


def any_continuous(num_classes: Sequence[int]) -> bool:
  """Whether an attribute of ``num_classes`` is continuous."""
  return CONTINUOUS in tuple(num_classes)


def categorical(num_classes: Sequence[int]) -> tuple[int, ...]:
  """The indices of the categorical attributes."""
  return tuple(k for k, n in enumerate(num_classes) if n != CONTINUOUS)


def label_dtype(num_classes: Sequence[int]) -> np.dtype:
  """int32, or float32 when an attribute is continuous."""
  return np.dtype(np.float32 if any_continuous(num_classes) else np.int32)


def as_labels(labels: jax.Array, num_classes: Sequence[int]) -> jax.Array:
  """``labels`` ``[B, K]`` in :func:`label_dtype`."""
  return labels.astype(label_dtype(num_classes))


def labelled(labels: jax.Array, num_classes: Sequence[int]) -> jax.Array:
  """bool ``[B, K]``: whether each row has attribute k (not -1, not NaN)."""
  if not any_continuous(num_classes):
    return labels >= 0
  return jnp.stack([~jnp.isnan(labels[:, k]) if n == CONTINUOUS
                    else labels[:, k] >= 0
                    for k, n in enumerate(num_classes)], 1)


def class_column(labels: jax.Array, k: int) -> jax.Array:
  """int32 ``[B]``: the classes of categorical attribute k, -1 missing."""
  return labels[:, k].astype(jnp.int32)


def head_width(classes: int) -> int:
  """The outputs of a head: the logits of its classes, or one value."""
  return max(int(classes), 1)


def row_losses(outputs: Sequence[jax.Array], labels: jax.Array,
               num_classes: Sequence[int]) -> tuple[jax.Array, jax.Array]:
  """``(loss [B, K], present [B, K])``: each head's loss on each row.

  Cross-entropy of a categorical head's logits ``[B, C_k]``, squared error
  ``(y - y_hat)^2`` of a continuous head's ``[B, 1]``; 0 where the label is
  missing.
  """
  present = labelled(labels, num_classes)
  losses = []
  for k, (out, n) in enumerate(zip(outputs, num_classes)):
    if n == CONTINUOUS:
      losses.append(jnp.square(out[:, 0] - jnp.where(present[:, k],
                                                     labels[:, k], 0.0)))
    else:
      losses.append(optax.softmax_cross_entropy_with_integer_labels(
          out, jnp.where(present[:, k], class_column(labels, k), 0)))
  return jnp.where(present, jnp.stack(losses, -1), 0.0), present


def predictions(outputs: Sequence[jax.Array], num_classes: Sequence[int]
                ) -> jax.Array:
  """``[B, K]`` in :func:`label_dtype`: each head's class, or its value."""
  dtype = label_dtype(num_classes)
  return jnp.stack([out[:, 0] if n == CONTINUOUS
                    else jnp.argmax(out, -1).astype(dtype)
                    for out, n in zip(outputs, num_classes)], -1).astype(dtype)
