"""Flax (Linen) modules of the three players: encoder, attribute heads, adversaries."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

Activation = Callable[[jax.Array], jax.Array]


def _check_identical_channels_input(x: jax.Array, who: str) -> None:
  if x.ndim < 3:
    raise ValueError(
        f'{who}: identical_channels needs images [B, ..., C] with a channel '
        f'axis last; got shape {x.shape}. Set identical_channels=False for '
        'flat inputs.')


def _sum_channel_slices(kernel: jax.Array, num_channels: int, axis: int
                        ) -> jax.Array:
  """Sums the ``num_channels`` interleaved slices of ``kernel`` along ``axis``.

  A kernel axis that runs over (pixel, channel) pairs, channel fastest (the
  order of a flattened ``[..., C]`` image), shrinks to the pixel axis.
  """
  shape = kernel.shape
  split = shape[:axis] + (shape[axis] // num_channels, num_channels) + shape[
      axis + 1:]
  return kernel.reshape(split).sum(axis + 1)


class IdenticalChannelsDense(nn.Module):
  """``nn.Dense`` on flattened images whose channels are copies of one another.

  ``[B, ..., C] -> [B, features]``. The parameters are exactly those of
  ``nn.Dense(features)`` on the flattened input (``kernel [prod(...) * C,
  features]``, ``bias [features]``, same initialisers, hence the same values
  from the same key), and so is the function on inputs whose ``C`` channels
  are equal: ``sum_c x W_c = x_0 (sum_c W_c)``. Only channel 0 is read, so
  the matmul costs ``1 / C`` of the FLOPs, and autodiff gives every channel
  slice of the kernel the same gradient, as the full matmul does. On inputs
  whose channels differ the result is wrong: use it only where the channels
  are equal by construction (gray images made 3-channel).
  """
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_identical_channels_input(x, 'IdenticalChannelsDense')
    channels = x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (math.prod(x.shape[1:]), self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    folded = _sum_channel_slices(kernel, channels, axis=0)
    return x[..., 0].reshape(x.shape[0], -1) @ folded + bias


class MLP(nn.Module):
  """Dense layers with an activation between them: ``[B, ...] -> [B, features[-1]]``.

  Inputs with more than two axes are flattened per example first.

  Attributes:
    features: widths of the dense layers, the last one the output.
    activation: between the layers.
    identical_channels: the input's last axis holds identical channels (a
      gray image made ``C``-channel); the first layer is then an
      :class:`IdenticalChannelsDense`, the same parameters and function at
      ``1 / C`` of its FLOPs.
  """
  features: Sequence[int]
  activation: Activation = nn.relu
  identical_channels: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, width in enumerate(self.features):
      if i == 0 and self.identical_channels:
        x = IdenticalChannelsDense(width, name='dense_0')(x)
      else:
        x = nn.Dense(width, name=f'dense_{i}')(x.reshape(x.shape[0], -1))
      if i < len(self.features) - 1:
        x = self.activation(x)
    return x


class MLPEncoder(nn.Module):
  """The paper's encoder: flatten, ``hidden`` ReLU layers, linear to ``latent_dim``.

  ``[B, ...] -> z [B, latent_dim]``; the paper uses ``hidden=(50, 50)`` and
  ``latent_dim=10``. ``identical_channels``: see :class:`MLP` (the
  multi-digit images are gray in 3 channels; folding them cuts the first
  layer, most of a step's FLOPs, to a third).
  """
  latent_dim: int = 10
  hidden: Sequence[int] = (50, 50)
  identical_channels: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return MLP(tuple(self.hidden) + (self.latent_dim,),
               identical_channels=self.identical_channels)(x)


class IdenticalChannelsConv(nn.Module):
  """A strided 3x3 ``nn.Conv`` (padding SAME) on images with identical channels.

  ``[B, H, W, C] -> [B, H', W', features]``, with exactly the parameters of
  ``nn.Conv(features, (3, 3), strides)`` (``kernel [3, 3, C, features]``,
  ``bias``); reads channel 0 against the kernel summed over its input
  channels. See :class:`IdenticalChannelsDense` for why and when.
  """
  features: int
  strides: tuple[int, int] = (2, 2)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_identical_channels_input(x, 'IdenticalChannelsConv')
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    y = jax.lax.conv_general_dilated(
        x[..., :1], kernel.sum(2, keepdims=True), self.strides, 'SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + bias


class ConvEncoder(nn.Module):
  """A small convolutional encoder for images ``[B, H, W, C] -> z [B, latent_dim]``.

  Strided 3x3 convolutions (``channels``, each halving the resolution) with
  ReLU, then the MLP head of :class:`MLPEncoder`. No normalisation layers, so
  the encoder is a pure function of its parameters and a batch (no running
  statistics to synchronise across devices). ``identical_channels``: the
  first convolution is an :class:`IdenticalChannelsConv` (gray images made
  ``C``-channel; same parameters and function).
  """
  latent_dim: int = 10
  channels: Sequence[int] = (32, 64, 64)
  hidden: Sequence[int] = (50,)
  identical_channels: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f'ConvEncoder expects images [B, H, W, C]; got shape '
                       f'{x.shape}. Use MLPEncoder for flat inputs.')
    for i, width in enumerate(self.channels):
      if i == 0 and self.identical_channels:
        conv = IdenticalChannelsConv(width, name='conv_0')
      else:
        conv = nn.Conv(width, (3, 3), strides=(2, 2), name=f'conv_{i}')
      x = nn.relu(conv(x))
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
