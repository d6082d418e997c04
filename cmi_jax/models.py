"""Flax (Linen) modules: encoders, attribute heads, adversaries."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import attributes
from cmi_jax import shuffle

Activation = Callable[[jax.Array], jax.Array]


def _check_identical_channels_input(x: jax.Array, who: str) -> None:
  if x.ndim < 3:
    raise ValueError(f'{who}: identical_channels needs images with a channel '
                     f'axis last, not {x.shape}; set it False for flat inputs.')


class IdenticalChannelsDense(nn.Module):
  """``nn.Dense`` on flattened images whose channels are copies of one another.

  ``[B, ..., C] -> [B, features]``, with the parameters (and initial values)
  of ``nn.Dense(features)`` on the flattened input, and its function where
  the ``C`` channels are equal: ``sum_c x W_c = x_0 (sum_c W_c)``, at ``1 / C``
  of the FLOPs. Wrong on inputs whose channels differ.
  """
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_identical_channels_input(x, 'IdenticalChannelsDense')
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (math.prod(x.shape[1:]), self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    # Kernel rows run over (pixel, channel), channel fastest.
    folded = kernel.reshape(-1, x.shape[-1], self.features).sum(1)
    return x[..., 0].reshape(x.shape[0], -1) @ folded + bias


class MLP(nn.Module):
  """Dense layers, ``activation`` between: ``[B, ...] -> [B, features[-1]]``.

  Inputs are flattened per example. With ``identical_channels`` (the last
  input axis holds copies of one channel) the first layer is an
  :class:`IdenticalChannelsDense`.
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
  """The paper's encoder: flatten, ReLU ``hidden`` layers, a linear output.

  ``[B, ...] -> z [B, latent_dim]``; ``identical_channels``: see :class:`MLP`.
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

  ``[B, H, W, C] -> [B, H', W', features]`` with the parameters of
  ``nn.Conv(features, (3, 3), strides)``; as :class:`IdenticalChannelsDense`.
  """
  features: int
  strides: tuple[int, int] = (2, 2)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_identical_channels_input(x, 'IdenticalChannelsConv')
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return jax.lax.conv_general_dilated(
        x[..., :1], kernel.sum(2, keepdims=True), self.strides, 'SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + bias


class ConvEncoder(nn.Module):
  """A small conv encoder: images ``[B, H, W, C] -> z [B, latent_dim]``.

  ReLU 3x3 convolutions of stride 2 (widths ``channels``), then an MLP head.
  No normalisation layers, hence no running statistics to synchronise.
  ``identical_channels``: the first is an :class:`IdenticalChannelsConv`.
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
    return MLP(tuple(self.hidden) + (self.latent_dim,), name='head')(x)


class AttributeHeads(nn.Module):
  """One linear head per attribute, head ``k`` reading subspace ``k``.

  ``z [B, D] -> tuple of K outputs``: logits ``[B, num_classes[k]]``, or
  ``[B, 1]``, the predicted value, for a continuous attribute (count 0).
  """
  subspaces: Sequence[int]
  num_classes: Sequence[int]

  @nn.compact
  def __call__(self, z: jax.Array) -> tuple[jax.Array, ...]:
    if (len(self.subspaces) != len(self.num_classes)
        or z.shape[-1] != sum(self.subspaces)):
      raise ValueError(f'AttributeHeads needs z [B, {sum(self.subspaces)}] '
                       f'(latent_dim = sum of subspaces) and one num_classes '
                       f'per subspace; got z {z.shape}, subspaces '
                       f'{tuple(self.subspaces)}, num_classes '
                       f'{tuple(self.num_classes)}.')
    bounds = np.cumsum((0,) + tuple(self.subspaces))
    return tuple(
        nn.Dense(attributes.head_width(classes), name=f'head_{k}')(
            z[..., bounds[k]:bounds[k + 1]])
        for k, classes in enumerate(self.num_classes))


class _PerAttributeNets(nn.Module):
  """The per-attribute MLPs ``hidden -> 1`` of the conditional adversaries.

  Subclasses declare ``num_attributes``, ``hidden`` and ``activation``.
  """

  def setup(self):
    """One MLP per attribute."""
    self.nets = [MLP(tuple(self.hidden) + (1,), self.activation)
                 for _ in range(self.num_attributes)]

  def init_all(self, inputs: Sequence[jax.Array]) -> tuple[jax.Array, ...]:
    """Runs discriminator ``k`` on ``inputs[k]``, every ``k`` (for ``init``)."""
    return tuple(self(k, x) for k, x in enumerate(inputs))


class Adversary(_PerAttributeNets):
  """CMI discriminators: ``(k, [B, D + num_classes[k]]) -> logits [B]``.

  One MLP ``hidden -> 1`` per attribute; ``k`` must be a Python int.
  """
  num_attributes: int
  hidden: Sequence[int] = (50, 50)
  activation: Activation = nn.relu

  def __call__(self, k: int, inputs: jax.Array) -> jax.Array:
    return self.nets[k](inputs)[:, 0]


class UnconditionalAdversary(nn.Module):
  """The unconditional MI discriminator: ``z [B, D] -> logits [B]``."""
  hidden: Sequence[int] = (50, 50)
  activation: Activation = nn.relu

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    return MLP(tuple(self.hidden) + (1,), self.activation)(inputs)[:, 0]


def stable_class_order(classes: jax.Array, num_buckets: int
                       ) -> tuple[jax.Array, jax.Array]:
  """A stable counting sort of int ``classes`` ``[B]`` in ``[0, num_buckets)``.

  Returns ``(order, position)``, int32 ``[B]``: ``classes[order]`` is sorted
  (ties in row order) and ``position[order[j]] = j``.
  """
  position = shuffle.group_positions(classes, num_buckets)
  size = classes.shape[0]
  order = jnp.zeros(size, jnp.int32).at[position].set(
      jnp.arange(size, dtype=jnp.int32))
  return order, position


def _pack_logits(who: str, net: nn.Module, inputs: jax.Array,
                 pack_size: int) -> jax.Array:
  """Per-row logits ``[B]``, consecutive rows scored in packs of ``pack_size``.

  Every row gets the logit of its pack.
  """
  batch, width = inputs.shape
  if batch % pack_size:
    raise ValueError(f'{who}: the batch of {batch} rows does not split into '
                     f'packs of {pack_size}; use a multiple of {pack_size}.')
  packs = inputs.reshape(batch // pack_size, pack_size * width)
  return jnp.repeat(net(packs)[:, 0], pack_size)


class PacAdversary(_PerAttributeNets):
  """Conditional PacGAN discriminators: ``(k, [B, D + C_k]) -> logits [B]``.

  Drop-in for :class:`Adversary`. One pair of codes says little about their
  dependence, so discriminator ``k`` judges *packs* of ``pack_size`` rows
  (which must divide ``B``) concatenated, and every row gets its pack's
  logit. Rows are stably grouped first by the class in their one-hot columns
  after the first ``latent_dim`` (an all-zero one-hot, a missing label, goes
  last), so a pack samples ``p(z | a_k = c)``.
  """
  num_attributes: int
  latent_dim: int
  pack_size: int = 50
  hidden: Sequence[int] = (128, 128)
  activation: Activation = nn.softplus

  def __call__(self, k: int, inputs: jax.Array) -> jax.Array:
    onehot = inputs[:, self.latent_dim:]
    num_classes = onehot.shape[1]
    present = onehot.sum(-1) > 0.5
    classes = jnp.where(present, jnp.argmax(onehot, -1), num_classes)
    order, position = stable_class_order(jax.lax.stop_gradient(classes),
                                         num_classes + 1)
    return _pack_logits('PacAdversary', self.nets[k], inputs[order],
                        self.pack_size)[position]


class PacUnconditionalAdversary(nn.Module):
  """Unconditional PacGAN discriminator: ``z [B, D] -> logits [B]``.

  Drop-in for :class:`UnconditionalAdversary`: consecutive rows form packs
  of ``pack_size`` (see :class:`PacAdversary`).
  """
  pack_size: int = 50
  hidden: Sequence[int] = (128, 128)
  activation: Activation = nn.softplus

  @nn.compact
  def __call__(self, inputs: jax.Array) -> jax.Array:
    net = MLP(tuple(self.hidden) + (1,), self.activation)
    return _pack_logits('PacUnconditionalAdversary', net, inputs,
                        self.pack_size)
