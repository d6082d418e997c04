"""Flax (Linen) modules of the three players: encoder, attribute heads, adversaries."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Activation = Callable[[jax.Array], jax.Array]


class MLP(nn.Module):
  """Dense layers with an activation between them: ``[B, ...] -> [B, features[-1]]``.

  Inputs with more than two axes are flattened per example first.
  """
  features: Sequence[int]
  activation: Activation = nn.relu

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.features):
      x = nn.Dense(width, name=f'dense_{i}')(x)
      if i < len(self.features) - 1:
        x = self.activation(x)
    return x


class MLPEncoder(nn.Module):
  """The paper's encoder: flatten, ``hidden`` ReLU layers, linear to ``latent_dim``.

  ``[B, ...] -> z [B, latent_dim]``; the paper uses ``hidden=(50, 50)`` and
  ``latent_dim=10``.
  """
  latent_dim: int = 10
  hidden: Sequence[int] = (50, 50)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return MLP(tuple(self.hidden) + (self.latent_dim,))(x)


class ConvEncoder(nn.Module):
  """A small convolutional encoder for images ``[B, H, W, C] -> z [B, latent_dim]``.

  Strided 3x3 convolutions (``channels``, each halving the resolution) with
  ReLU, then the MLP head of :class:`MLPEncoder`. No normalisation layers, so
  the encoder is a pure function of its parameters and a batch (no running
  statistics to synchronise across devices).
  """
  latent_dim: int = 10
  channels: Sequence[int] = (32, 64, 64)
  hidden: Sequence[int] = (50,)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f'ConvEncoder expects images [B, H, W, C]; got shape '
                       f'{x.shape}. Use MLPEncoder for flat inputs.')
    for i, width in enumerate(self.channels):
      x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2), name=f'conv_{i}')(x))
    return MLP(tuple(self.hidden) + (self.latent_dim,), name='head')(
        x.reshape(x.shape[0], -1))


class AttributeHeads(nn.Module):
  """One linear classifier per attribute, head ``k`` reading only subspace ``k``.

  ``z [B, D] -> tuple of K logits [B, num_classes[k]]``.
  """
  subspaces: Sequence[int]
  num_classes: Sequence[int]

  @nn.compact
  def __call__(self, z: jax.Array) -> tuple[jax.Array, ...]:
    if len(self.subspaces) != len(self.num_classes):
      raise ValueError(
          f'AttributeHeads: {len(self.subspaces)} subspaces but '
          f'{len(self.num_classes)} num_classes; give one of each per '
          'attribute.')
    if z.shape[-1] != sum(self.subspaces):
      raise ValueError(f'AttributeHeads: z has {z.shape[-1]} columns but '
                       f'subspaces {tuple(self.subspaces)} sum to '
                       f'{sum(self.subspaces)}.')
    bounds = np.cumsum((0,) + tuple(self.subspaces))
    return tuple(
        nn.Dense(classes, name=f'head_{k}')(z[..., bounds[k]:bounds[k + 1]])
        for k, classes in enumerate(self.num_classes))


class Adversary(nn.Module):
  """One discriminator per attribute: ``(k, [B, D + num_classes[k]]) -> logits [B]``.

  The conditional discriminators of the CMI loss; ``k`` must be a Python int.
  Each is an MLP ``hidden -> 1`` (the paper: ``(50, 50)``, ReLU).
  """
  num_attributes: int
  hidden: Sequence[int] = (50, 50)
  activation: Activation = nn.relu

  def setup(self):
    """One MLP per attribute."""
    self.nets = [MLP(tuple(self.hidden) + (1,), self.activation)
                 for _ in range(self.num_attributes)]

  def __call__(self, k: int, inputs: jax.Array) -> jax.Array:
    return self.nets[k](inputs)[:, 0]

  def init_all(self, inputs: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
    """Runs every discriminator once (``inputs[k]`` for ``k``); used by ``init``."""
    return tuple(self(k, x) for k, x in enumerate(inputs))


class UnconditionalAdversary(nn.Module):
  """The discriminator of the unconditional MI loss: ``z [B, D] -> logits [B]``."""
  hidden: Sequence[int] = (50, 50)
  activation: Activation = nn.relu

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    return MLP(tuple(self.hidden) + (1,), self.activation)(inputs)[:, 0]
