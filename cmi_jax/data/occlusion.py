"""Random blob occlusion, the paper's image noise (multi-digit and CelebA).

A ``P x P`` field of ``U[0, 1)`` values per image is enlarged bilinearly to
the image size; a pixel is occluded where the field is below the threshold
``noise``. ``noise = 0`` occludes nothing, 1 everything, and a larger noise
occludes a superset of the pixels of the same field. Larger ``P`` gives
smaller blobs (the paper: 4).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def occluded(fields: jax.Array, height: int, width: int,
             noise: jax.Array | float) -> jax.Array:
  """Which pixels the fields ``[..., P, P]`` occlude, at ``noise``.

  ``noise`` may be traced, so sweeps can vmap it.

  Returns:
    bool ``[..., height, width]``, True where occluded.
  """
  shape = fields.shape[:-2] + (height, width)
  field = jax.image.resize(fields.astype(jnp.float32), shape, 'bilinear')
  return field < noise
