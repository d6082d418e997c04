"""The training engine: one step that updates encoder, heads and adversaries at once.

Every player's gradient comes from the same batch and the same pre-update
parameters (simultaneous updates, as in the paper):

* encoder (Adam, ``lr``): mean head cross-entropy + ``disentangle_weight`` *
  the disentanglement term (flipped adversarial loss, or MMD);
* heads (Adam, ``cls_lr``): ``num_cls_steps`` steps on ``stop_gradient(z)``;
* adversaries (Adam, ``d_lr``, ``d_betas``): their BCE on ``stop_gradient(z)``.

The per-device step is written once. Given a named axis it all-gathers the
codes and labels, computes every loss on the *global* batch (so the shuffles,
and therefore the result, do not depend on the number of devices), pulls the
encoder's gradient back through its local slice only, and sums it over
devices. The same function runs under ``jax.shard_map`` and ``jax.pmap``
(:mod:`cmi_jax.distributed`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from cmi_jax import attributes
from cmi_jax import epochs
from cmi_jax import groups
from cmi_jax import models
from cmi_jax import objectives
from cmi_jax import programs
from cmi_jax import validate
from cmi_jax.data.base import Batch, DeviceDataset, to_float_image

Metrics = dict[str, jax.Array]

# Salt of the loss's random stream (cmi_jax.epochs salts the data's).
_LOSS_STREAM = 0


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """Optimiser settings of the three players (the paper's names in brackets).

  Attributes:
    lr: encoder learning rate (``lr``).
    cls_lr: attribute-head learning rate (``cls_lr``).
    d_lr: adversary learning rate (``D_lr``).
    betas: Adam (b1, b2) of the encoder and the heads.
    d_betas: Adam (b1, b2) of the adversaries.
    num_cls_steps: head updates per training step, on the same batch.
    decay_step: with ``lr_decay``, every learning rate is multiplied by
      ``lr_decay`` from this training step on (an optax piecewise-constant
      schedule); None keeps the rates constant.
    lr_decay: the factor of that step decay.
  """
  lr: float = 1e-4
  cls_lr: float = 1e-3
  d_lr: float = 1e-4
  betas: tuple[float, float] = (0.9, 0.999)
  d_betas: tuple[float, float] = (0.9, 0.999)
  num_cls_steps: int = 1
  decay_step: Optional[int] = None
  lr_decay: float = 1.0

  def __post_init__(self):
    validate.integer(self.num_cls_steps, 'num_cls_steps', 1)

  def tx(self, player: str) -> optax.GradientTransformation:
    """The Adam of ``'encoder'``, ``'heads'`` or ``'adversary'``.

    The decay step counts each optimiser's own updates (``num_cls_steps``
    per training step for the heads).
    """
    rate, betas, updates = {
        'encoder': (self.lr, self.betas, 1),
        'heads': (self.cls_lr, self.betas, self.num_cls_steps),
        'adversary': (self.d_lr, self.d_betas, 1)}[player]
    return adam(rate, betas, None if self.decay_step is None
                else self.decay_step * updates, self.lr_decay)


def adam(learning_rate: float, betas: Sequence[float],
         decay_step: Optional[int] = None, lr_decay: float = 1.0
         ) -> optax.GradientTransformation:
  """Adam whose learning rate lives in its state (so sweeps can vmap it).

  With ``decay_step`` (counted in this optimiser's updates) the rate follows
  ``optax.piecewise_constant_schedule``: ``learning_rate`` before it,
  ``learning_rate * lr_decay`` from it on.
  """
  if decay_step is not None:
    learning_rate = optax.piecewise_constant_schedule(
        learning_rate, {int(decay_step): float(lr_decay)})
  return optax.inject_hyperparams(optax.adam)(
      learning_rate=learning_rate, b1=betas[0], b2=betas[1])


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree, so it jits and vmaps.

  Attributes:
    step: int32 scalar, number of steps taken.
    key: uint32 ``[2]`` raw PRNG key; step ``t`` draws from ``fold_in(key, t)``.
    encoder_params, heads_params, adversary_params: Flax parameters
      (``adversary_params``: the objective's state, trained only when it has
      an adversary; None for most objectives without one).
    encoder_opt, heads_opt, adversary_opt: optax states (learning rates inside;
      ``adversary_opt`` None without an adversary).
    disentangle_weight: float32 scalar ``lambda`` (a leaf, so it can be swept).
    group_dro: GroupDRO's state (:mod:`cmi_jax.groups`): ``{'q': [G] group
      weights, 'step_size': eta, 'size_adjustment': C}`` (float32 leaves, so
      sweeps can vary eta and C); None for the other group weightings.
  """
  step: jax.Array
  key: jax.Array
  encoder_params: Any
  heads_params: Any
  adversary_params: Any
  encoder_opt: Any
  heads_opt: Any
  adversary_opt: Any
  disentangle_weight: jax.Array
  group_dro: Any = None


@dataclasses.dataclass(frozen=True)
class Trainer:
  """The static half of training (build one with :func:`make_trainer`).

  Attributes:
    encoder: module ``x [B, ...] -> z [B, D]``.
    heads: module ``z -> tuple of K logits [B, num_classes[k]]``.
    objective: the :class:`cmi_jax.objectives.Objective` (term, adversary).
    optim: :class:`OptimConfig`, the players' optimisers.
    group_weighting: the heads' loss (:class:`cmi_jax.groups.GroupWeighting`).
  """
  encoder: nn.Module
  heads: nn.Module
  objective: objectives.Objective
  optim: OptimConfig = OptimConfig()
  group_weighting: groups.GroupWeighting = groups.GroupWeighting()

  def init(self, key: chex.PRNGKey, example_input: jax.Array,
           disentangle_weight: float = 1.0) -> TrainState:
    """A fresh state; ``example_input`` is one batch of inputs ``[B, ...]``.

    ``key`` is a raw uint32 key (``jax.random.PRNGKey(seed)``); it seeds the
    parameters and, folded with the step, every later random draw.
    """
    key = jnp.asarray(key)
    validate.arrays('', {'key': (key, 'uint32 [n]')},
                    'Pass jax.random.PRNGKey(seed), not a typed key.')
    k_enc, k_heads, k_adv, k_run = jax.random.split(key, 4)
    encoder_params = self.encoder.init(k_enc, example_input)
    z = jax.eval_shape(self.encoder.apply, encoder_params, example_input)
    z = jnp.zeros(z.shape, z.dtype)
    heads_params = self.heads.init(k_heads, z)
    adversary_params = self.objective.init_adversary(k_adv, z)
    return TrainState(
        step=jnp.zeros((), jnp.int32), key=k_run,
        encoder_params=encoder_params, heads_params=heads_params,
        adversary_params=adversary_params,
        encoder_opt=self.optim.tx('encoder').init(encoder_params),
        heads_opt=self.optim.tx('heads').init(heads_params),
        adversary_opt=None if self.objective.adversary is None
        else self.optim.tx('adversary').init(adversary_params),
        disentangle_weight=jnp.asarray(disentangle_weight, jnp.float32),
        group_dro=self.group_weighting.init_dro(self.objective.num_classes))

  def step(self, state: TrainState, batch: Batch,
           axis_name: Optional[str] = None) -> tuple[TrainState, Metrics]:
    """One simultaneous update of all players (module docstring).

    Args:
      state: the current state (replicated across devices when sharded).
      batch: ``{'image': [B, ...], 'labels': int [B, K]}``, images float or
        uint8 (scaled to [0, 1] here); with ``axis_name``, this device's
        slice of the global batch.
      axis_name: the named device axis, or None on one device.

    Returns:
      ``(new_state, metrics)``, metrics scalars of the global batch.
    """
    loss_key = jax.random.fold_in(
        jax.random.fold_in(state.key, _LOSS_STREAM), state.step)
    z, labels, pullback = _global_codes(
        self.encoder, state.encoder_params, to_float_image(batch['image']),
        attributes.as_labels(batch['labels'], self.objective.num_classes),
        axis_name)
    objective, frozen = self.objective, jax.lax.stop_gradient(z)
    perms = objective.fake_permutations(loss_key, labels)
    q = self.group_weighting.dro_weights(
        state.group_dro, lambda: self.heads.apply(state.heads_params, frozen),
        labels, self.objective.num_classes)

    def classification_loss(heads_params, z):
      return self.group_weighting.loss(self.heads.apply(heads_params, z),
                                       labels, self.objective.num_classes, q)

    def encoder_objective(z):
      classification, ce = classification_loss(state.heads_params, z)
      term, _ = objective.losses(state.adversary_params, loss_key, z, labels,
                                 perms)
      return classification + state.disentangle_weight * term, (ce, term)

    (encoder_loss, (ce, term)), grad_z = jax.value_and_grad(
        encoder_objective, has_aux=True)(z)
    encoder_params, encoder_opt = _apply(
        self.optim.tx('encoder'), pullback(grad_z), state.encoder_params,
        state.encoder_opt)

    def heads_step(carry, _):
      grads = jax.grad(lambda p: classification_loss(p, frozen)[0])(carry[0])
      return _apply(self.optim.tx('heads'), grads, *carry), None
    (heads_params, heads_opt), _ = jax.lax.scan(
        heads_step, (state.heads_params, state.heads_opt),
        length=self.optim.num_cls_steps)

    adversary_params, adversary_opt = (state.adversary_params,
                                       state.adversary_opt)
    adversary_loss = jnp.zeros((), z.dtype)
    if self.objective.adversary is not None:
      adversary_loss, grads = jax.value_and_grad(
          lambda p: objective.losses(p, loss_key, frozen, labels, perms)[1])(
              state.adversary_params)
      adversary_params, adversary_opt = _apply(
          self.optim.tx('adversary'), grads, adversary_params, adversary_opt)

    metrics = {'loss/encoder': encoder_loss, 'loss/ce': ce.mean(),
               'loss/disentangle': term, 'loss/adversary': adversary_loss}
    if q is not None:
      metrics['group_dro/max_weight'] = q.max()
    metrics.update(objective.diagnostics(state.adversary_params, loss_key,
                                         frozen, labels, perms))
    num_classes = self.objective.num_classes
    present = attributes.labelled(labels, num_classes)
    correct = (self.predict_from_codes(state.heads_params, frozen) == labels)
    accuracy = jnp.sum(correct & present, 0) / jnp.maximum(present.sum(0), 1)
    for k, n in enumerate(num_classes):
      if n == attributes.CONTINUOUS:  # The head's loss is its squared error.
        metrics[f'loss/mse_{k}'] = ce[k]
      else:
        metrics[f'loss/ce_{k}'] = ce[k]
        metrics[f'accuracy/attr_{k}'] = accuracy[k]
    return state.replace(
        step=state.step + 1,
        encoder_params=encoder_params, encoder_opt=encoder_opt,
        heads_params=heads_params, heads_opt=heads_opt,
        adversary_params=adversary_params, adversary_opt=adversary_opt,
        group_dro=(state.group_dro if q is None
                   else {**state.group_dro, 'q': q})), metrics

  def predict_from_codes(self, heads_params: Any, z: jax.Array) -> jax.Array:
    """Predicted class (or value) of every attribute, ``[B, K]`` in
    :func:`cmi_jax.attributes.label_dtype`."""
    return attributes.predictions(self.heads.apply(heads_params, z),
                                  self.objective.num_classes)

  def train_epoch(self, state: TrainState, data: DeviceDataset,
                  num_steps: Optional[int] = None
                  ) -> tuple[TrainState, Metrics]:
    """:func:`cmi_jax.epochs.scan_epoch` of :meth:`step`; metrics ``[steps]``."""
    return epochs.scan_epoch(self.step, state, data, num_steps)

  @property
  def jit_train_step(self) -> Callable[[TrainState, Batch],
                                       tuple[TrainState, Metrics]]:
    """``jax.jit(step)`` with the state's buffers donated."""
    return programs.compiled(Trainer.step, self, donate_argnums=(0,))

  @property
  def jit_train_epoch(self) -> Callable[..., tuple[TrainState, Metrics]]:
    """``jax.jit(train_epoch)``; ``num_steps`` static, the state donated."""
    return programs.compiled(Trainer.train_epoch, self, static_argnums=(2,),
                             donate_argnums=(0,))


def _global_codes(encoder: nn.Module, params: Any, x: jax.Array,
                  labels: jax.Array, axis_name: Optional[str]
                  ) -> tuple[jax.Array, jax.Array, Callable[[jax.Array], Any]]:
  """``(z, labels, pullback)`` of the global batch.

  On one device (``axis_name`` None) ``pullback`` is the encoder's VJP. On a
  named axis the codes and labels are all-gathered; ``pullback(dL/dz)``
  sends only this device's rows back through its encoder pass and sums the
  gradients over the devices.
  """
  z_local, vjp = jax.vjp(lambda p: encoder.apply(p, x), params)
  if axis_name is None:
    return z_local, labels, lambda grad_z: vjp(grad_z)[0]
  z, labels = jax.lax.all_gather((z_local, labels), axis_name, tiled=True)
  rows = z_local.shape[0]

  def pullback(grad_z):
    start = jax.lax.axis_index(axis_name) * rows
    (grads,) = vjp(jax.lax.dynamic_slice_in_dim(grad_z, start, rows))
    return jax.lax.psum(grads, axis_name)
  return z, labels, pullback


def _apply(tx: optax.GradientTransformation, grads: Any, params: Any,
           opt_state: Any) -> tuple[Any, Any]:
  """One optimiser update: ``(new params, new optimiser state)``."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make_trainer(encoder: nn.Module, objective: str | objectives.Objective,
                 subspaces: Sequence[int], num_classes: Sequence[int],
                 optim: OptimConfig = OptimConfig(),
                 heads: Optional[nn.Module] = None,
                 group_weighting: Optional[groups.GroupWeighting] = None,
                 **objective_options: Any) -> Trainer:
  """A :class:`Trainer` with the paper's heads and adversaries by default.

  Args:
    encoder: module ``x -> z [B, sum(subspaces)]``.
    objective: a registered name (:func:`cmi_jax.objectives.names`) or an
      :class:`~cmi_jax.objectives.Objective` built for these subspaces.
    subspaces: K sizes of the latent subspaces.
    num_classes: K class counts.
    optim: optimiser settings.
    heads: the heads module (default :class:`cmi_jax.models.AttributeHeads`).
    group_weighting: the heads' group weighting (default: none).
    **objective_options: passed to the objective's ``create``:
      ``adversary`` (a custom module with the contract of
      :class:`cmi_jax.models.Adversary` / ``UnconditionalAdversary``),
      ``adversary_hidden`` (default adversary widths, ``(50, 50)``),
      ``mmd_bandwidths`` (RBF bandwidths, ``(1.0,)``).
  """
  subspaces, num_classes = tuple(subspaces), tuple(num_classes)
  if isinstance(objective, str):
    objective = objectives.make_objective(objective, subspaces, num_classes,
                                          **objective_options)
  elif (objective.subspaces, objective.num_classes) != (subspaces,
                                                         num_classes):
    raise ValueError(f'build the objective for subspaces {subspaces} and '
                     f'num_classes {num_classes}, not {objective.subspaces} '
                     f'and {objective.num_classes}.')
  if heads is None:
    heads = models.AttributeHeads(subspaces, num_classes)
  return Trainer(encoder, heads, objective, optim,
                 group_weighting or groups.GroupWeighting())
