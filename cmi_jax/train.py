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
devices. The same function runs under ``jax.shard_map`` (:func:`shard_map_train_step`)
and ``jax.pmap`` (:func:`pmap_train_step`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Optional, Sequence

import chex
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from cmi_jax import groups
from cmi_jax import losses
from cmi_jax import models
from cmi_jax import objectives
from cmi_jax.data.base import Batch, DeviceDataset, to_float_image

Metrics = dict[str, jax.Array]

# Salts that separate the random streams drawn from the state's key.
_LOSS_STREAM = 0
_DATA_STREAM = 1


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
      (``adversary_params`` is ``None`` for objectives without an adversary).
    encoder_opt, heads_opt, adversary_opt: optax states (learning rates inside).
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
  """The static half of training: modules, objective, optimisers.

  Build one with :func:`make_trainer`; its methods are pure functions of a
  :class:`TrainState` and a batch, and its ``jit_*`` properties hold the
  compiled versions (compiled once per trainer and input shape).

  Attributes:
    encoder: module ``x [B, ...] -> z [B, D]``.
    heads: module ``z -> tuple of K logits [B, num_classes[k]]``.
    objective: the :class:`cmi_jax.objectives.Objective` (its term, its
      adversary, the subspaces and class counts).
    optim: :class:`OptimConfig`.
    group_weighting: how the heads' cross-entropy weighs the groups of
      attribute values (:class:`cmi_jax.groups.GroupWeighting`).
  """
  encoder: nn.Module
  heads: nn.Module
  objective: objectives.Objective
  optim: OptimConfig = OptimConfig()
  group_weighting: groups.GroupWeighting = groups.GroupWeighting()

  def __post_init__(self):
    if len(self.subspaces) != len(self.num_classes):
      raise ValueError(
          f'{len(self.subspaces)} subspaces but {len(self.num_classes)} '
          'num_classes; give one of each per attribute.')
    if self.optim.num_cls_steps < 1:
      raise ValueError('num_cls_steps must be >= 1; got '
                       f'{self.optim.num_cls_steps}.')

  @property
  def subspaces(self) -> tuple[int, ...]:
    """K latent subspace sizes, summing to ``D``."""
    return self.objective.subspaces

  @property
  def num_classes(self) -> tuple[int, ...]:
    """K class counts."""
    return self.objective.num_classes

  @property
  def adversary(self) -> Optional[nn.Module]:
    """The objective's adversary module, or None."""
    return self.objective.adversary

  @property
  def uses_adversary(self) -> bool:
    """Whether the objective trains an adversary."""
    return self.adversary is not None

  def _decay(self, updates_per_step: int = 1) -> dict[str, Any]:
    step = self.optim.decay_step
    return {'decay_step': None if step is None else step * updates_per_step,
            'lr_decay': self.optim.lr_decay}

  @property
  def encoder_tx(self) -> optax.GradientTransformation:
    """The encoder's Adam (``lr``, ``betas``)."""
    return adam(self.optim.lr, self.optim.betas, **self._decay())

  @property
  def heads_tx(self) -> optax.GradientTransformation:
    """The heads' Adam (``cls_lr``, ``betas``; ``num_cls_steps`` per step)."""
    return adam(self.optim.cls_lr, self.optim.betas,
                **self._decay(self.optim.num_cls_steps))

  @property
  def adversary_tx(self) -> optax.GradientTransformation:
    """The adversaries' Adam (``d_lr``, ``d_betas``)."""
    return adam(self.optim.d_lr, self.optim.d_betas, **self._decay())

  # --------------------------------------------------------------- init

  def init(self, key: chex.PRNGKey, example_input: jax.Array,
           disentangle_weight: float = 1.0) -> TrainState:
    """A fresh state; ``example_input`` is one batch of inputs ``[B, ...]``.

    ``key`` is a raw uint32 key (``jax.random.PRNGKey(seed)``); it seeds the
    parameters and, folded with the step, every later random draw.
    """
    key = jnp.asarray(key)
    if key.dtype != jnp.uint32:
      raise ValueError('Trainer.init takes a raw uint32 key '
                       '(jax.random.PRNGKey(seed)), not a typed key.')
    k_enc, k_heads, k_adv, k_run = jax.random.split(key, 4)
    encoder_params = self.encoder.init(k_enc, example_input)
    z = jax.eval_shape(self.encoder.apply, encoder_params, example_input)
    if z.ndim != 2 or z.shape[1] != sum(self.subspaces):
      raise ValueError(
          f'the encoder outputs shape {z.shape} but subspaces '
          f'{self.subspaces} need [B, {sum(self.subspaces)}]; set the '
          'encoder latent_dim to the sum of the subspaces.')
    z = jnp.zeros(z.shape, z.dtype)
    heads_params = self.heads.init(k_heads, z)
    adversary_params = self.objective.init_adversary(k_adv, z)
    adversary_opt = None
    if adversary_params is not None:
      adversary_opt = self.adversary_tx.init(adversary_params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        key=k_run,
        encoder_params=encoder_params,
        heads_params=heads_params,
        adversary_params=adversary_params,
        encoder_opt=self.encoder_tx.init(encoder_params),
        heads_opt=self.heads_tx.init(heads_params),
        adversary_opt=adversary_opt,
        disentangle_weight=jnp.asarray(disentangle_weight, jnp.float32),
        group_dro=self._initial_group_dro())

  def _initial_group_dro(self) -> Optional[dict[str, jax.Array]]:
    if self.group_weighting.method != 'groupdro':
      return None
    count = groups.num_groups(self.num_classes)
    return {'q': jnp.full(count, 1.0 / count, jnp.float32),
            'step_size': jnp.asarray(self.group_weighting.dro_step_size,
                                     jnp.float32),
            'size_adjustment': jnp.asarray(
                self.group_weighting.dro_size_adjustment, jnp.float32)}

  # --------------------------------------------------------------- losses

  def head_losses(self, heads_params: Any, z: jax.Array,
                  labels: jax.Array) -> jax.Array:
    """Masked cross-entropy of every head, ``[K]``."""
    logits = self.heads.apply(heads_params, z)
    return jnp.stack([losses.masked_cross_entropy(l, labels[:, k])
                      for k, l in enumerate(logits)])

  def classification_loss(self, heads_params: Any, z: jax.Array,
                          labels: jax.Array, q: Optional[jax.Array] = None
                          ) -> tuple[jax.Array, jax.Array]:
    """``(loss, per-head CE [K])``: the heads' loss under the group weighting.

    ``q``: GroupDRO's weights for this step (:meth:`dro_weights`).
    """
    if self.group_weighting.method in ('none', 'subsample'):
      ce = self.head_losses(heads_params, z, labels)
      return ce.mean(), ce
    return groups.classification_loss(self.heads.apply(heads_params, z),
                                      labels, self.num_classes,
                                      self.group_weighting, q)

  def dro_weights(self, state: TrainState, z: jax.Array,
                  labels: jax.Array) -> Optional[jax.Array]:
    """GroupDRO's ``q`` after this step's update (None for other methods).

    Computed from the group losses at the pre-update parameters (``z`` and
    the current heads) on the global batch.
    """
    if self.group_weighting.method != 'groupdro':
      return None
    ce, present = groups.row_ce(self.heads.apply(state.heads_params, z),
                                labels)
    dro = state.group_dro
    return groups.dro_update(
        dro['q'], groups.group_losses(ce, present, labels, self.num_classes),
        dro['step_size'], dro['size_adjustment'],
        self.group_weighting.group_counts)

  # --------------------------------------------------------------- step

  def step(self, state: TrainState, batch: Batch,
           axis_name: Optional[str] = None) -> tuple[TrainState, Metrics]:
    """One simultaneous update of all players.

    Args:
      state: the current state (replicated across devices when sharded).
      batch: ``{'image': [B, ...], 'labels': int [B, K]}``, images float or
        uint8 (scaled to [0, 1] here, so host-fed batches need no
        conversion); with ``axis_name`` this is the device's slice of the
        global batch.
      axis_name: the named device axis, or None on one device.

    Returns:
      ``(new_state, metrics)``; metrics are scalars of the global batch.
    """
    x, labels = to_float_image(batch['image']), batch['labels']
    chex.assert_rank(labels, 2)
    if labels.shape[1] != len(self.subspaces):
      raise ValueError(f'batch labels have {labels.shape[1]} attributes but '
                       f'the trainer has {len(self.subspaces)} subspaces.')
    loss_key = jax.random.fold_in(
        jax.random.fold_in(state.key, _LOSS_STREAM), state.step)

    z_local, encoder_vjp = jax.vjp(
        lambda p: self.encoder.apply(p, x), state.encoder_params)
    z, labels = z_local, labels.astype(jnp.int32)
    if axis_name is not None:
      z, labels = jax.lax.all_gather((z, labels), axis_name, tiled=True)

    objective = self.objective
    perms = objective.fake_permutations(loss_key, labels)
    q = self.dro_weights(state, jax.lax.stop_gradient(z), labels)

    def encoder_objective(z):
      classification, ce = self.classification_loss(state.heads_params, z,
                                                     labels, q)
      term, _ = objective.losses(state.adversary_params, loss_key, z, labels,
                                 perms)
      return classification + state.disentangle_weight * term, (ce, term)

    (encoder_loss, (ce, term)), grad_z = jax.value_and_grad(
        encoder_objective, has_aux=True)(z)
    if axis_name is not None:
      # Only this device's rows of dL/dz flow back into its encoder pass.
      start = jax.lax.axis_index(axis_name) * z_local.shape[0]
      grad_z = jax.lax.dynamic_slice_in_dim(grad_z, start, z_local.shape[0])
    (encoder_grads,) = encoder_vjp(grad_z)
    if axis_name is not None:
      encoder_grads = jax.lax.psum(encoder_grads, axis_name)
    updates, encoder_opt = self.encoder_tx.update(
        encoder_grads, state.encoder_opt, state.encoder_params)
    encoder_params = optax.apply_updates(state.encoder_params, updates)

    frozen = jax.lax.stop_gradient(z)
    heads_params, heads_opt = self._update_heads(state, frozen, labels, q)

    adversary_params, adversary_opt = (state.adversary_params,
                                       state.adversary_opt)
    adversary_loss = jnp.zeros((), z.dtype)
    if self.uses_adversary:
      def adversary_objective(params):
        return objective.losses(params, loss_key, frozen, labels, perms)[1]
      adversary_loss, grads = jax.value_and_grad(adversary_objective)(
          state.adversary_params)
      updates, adversary_opt = self.adversary_tx.update(
          grads, state.adversary_opt, state.adversary_params)
      adversary_params = optax.apply_updates(state.adversary_params, updates)

    metrics = {
        'loss/encoder': encoder_loss,
        'loss/ce': ce.mean(),
        'loss/disentangle': term,
        'loss/adversary': adversary_loss,
    }
    if q is not None:
      metrics['group_dro/max_weight'] = q.max()
    metrics.update(objective.diagnostics(state.adversary_params, loss_key,
                                         frozen, labels, perms))
    accuracy = self._accuracy(state.heads_params, frozen, labels)
    for k in range(len(self.subspaces)):
      metrics[f'loss/ce_{k}'] = ce[k]
      metrics[f'accuracy/attr_{k}'] = accuracy[k]
    new_state = state.replace(
        step=state.step + 1,
        encoder_params=encoder_params, encoder_opt=encoder_opt,
        heads_params=heads_params, heads_opt=heads_opt,
        adversary_params=adversary_params, adversary_opt=adversary_opt,
        group_dro=(state.group_dro if q is None
                   else {**state.group_dro, 'q': q}))
    return new_state, metrics

  def _update_heads(self, state: TrainState, z: jax.Array,
                    labels: jax.Array, q: Optional[jax.Array] = None
                    ) -> tuple[Any, Any]:
    def one_step(carry, _):
      params, opt = carry
      grads = jax.grad(
          lambda p: self.classification_loss(p, z, labels, q)[0])(params)
      updates, opt = self.heads_tx.update(grads, opt, params)
      return (optax.apply_updates(params, updates), opt), None
    (params, opt), _ = jax.lax.scan(one_step,
                                    (state.heads_params, state.heads_opt),
                                    length=self.optim.num_cls_steps)
    return params, opt

  def _accuracy(self, heads_params: Any, z: jax.Array,
                labels: jax.Array) -> jax.Array:
    """Per-attribute accuracy over rows with a label, ``[K]``."""
    preds = self.predict_from_codes(heads_params, z)
    present = labels >= 0
    return jnp.sum((preds == labels) & present, 0) / jnp.maximum(
        present.sum(0), 1)

  def predict_from_codes(self, heads_params: Any, z: jax.Array) -> jax.Array:
    """Predicted class of every attribute, int32 ``[B, K]``."""
    logits = self.heads.apply(heads_params, z)
    return jnp.stack([jnp.argmax(l, -1) for l in logits], -1).astype(jnp.int32)

  # --------------------------------------------------------------- eval

  def eval_step(self, state: TrainState, batch: Batch) -> Metrics:
    """Sufficient statistics of one evaluation batch (sum them over batches).

    ``batch`` may hold a float ``'mask'`` ``[B]`` (1 = real row, 0 = padding).

    Returns:
      dict of
        ``z``: ``[B, D]`` codes; ``labels``/``preds``: int ``[B, K]``;
        ``mask``: ``[B]``;
        ``ce_sum``: ``[K]`` summed cross-entropy over labelled rows;
        ``correct``: ``[K]`` correct predictions; ``count``: ``[K]`` labelled rows;
        ``confusion``: ``[C, C]`` joint confusion over the ``C = prod(num_classes)``
          label combinations (rows true, columns predicted), fully labelled rows;
        ``combo_correct``: ``[C, K]`` correct predictions of every attribute
          inside each true combination; ``combo_count``: ``[C]``.
    """
    x = to_float_image(batch['image'])
    labels = batch['labels'].astype(jnp.int32)
    mask = batch.get('mask', jnp.ones(labels.shape[0], jnp.float32))
    z = self.encoder.apply(state.encoder_params, x)
    logits = self.heads.apply(state.heads_params, z)
    preds = jnp.stack([jnp.argmax(l, -1) for l in logits], -1).astype(
        jnp.int32)
    present = (labels >= 0) & (mask[:, None] > 0)
    ce_rows = jnp.stack([
        optax.softmax_cross_entropy_with_integer_labels(
            l, jnp.maximum(labels[:, k], 0)) for k, l in enumerate(logits)], -1)
    full = jnp.all(present, -1)
    true_combo = _combination_index(jnp.maximum(labels, 0), self.num_classes)
    pred_combo = _combination_index(preds, self.num_classes)
    num_combos = int(np.prod(self.num_classes))
    true_onehot = jax.nn.one_hot(true_combo, num_combos) * full[:, None]
    pred_onehot = jax.nn.one_hot(pred_combo, num_combos)
    correct = (preds == labels) & present
    return {
        'z': z,
        'labels': labels,
        'preds': preds,
        'mask': mask,
        'ce_sum': jnp.sum(jnp.where(present, ce_rows, 0.0), 0),
        'correct': correct.sum(0),
        'count': present.sum(0),
        'confusion': true_onehot.T @ pred_onehot,
        'combo_correct': true_onehot.T @ correct.astype(jnp.float32),
        'combo_count': true_onehot.sum(0),
    }

  # --------------------------------------------------------------- epochs

  def train_epoch(self, state: TrainState, data: DeviceDataset,
                  num_steps: Optional[int] = None
                  ) -> tuple[TrainState, Metrics]:
    """``num_steps`` steps (default: one epoch) on batches made on the device.

    The batches come from ``data.batch(plan, i)`` with an epoch plan drawn from
    the state's key and step, so the whole epoch is one ``lax.scan`` with no
    host round trip.

    Returns:
      ``(state, metrics)``; each metric is stacked over steps, ``[num_steps]``.
    """
    return scan_epoch(self.step, state, data, num_steps)

  @property
  def jit_train_step(self) -> Callable[[TrainState, Batch],
                                       tuple[TrainState, Metrics]]:
    """``jax.jit(step)`` with the state's buffers donated."""
    return compiled(self, 'step')

  @property
  def jit_train_epoch(self) -> Callable[..., tuple[TrainState, Metrics]]:
    """``jax.jit(train_epoch)``; ``num_steps`` is static, the state donated."""
    return compiled(self, 'epoch')

  @property
  def jit_eval_step(self) -> Callable[[TrainState, Batch], Metrics]:
    """``jax.jit(eval_step)`` (the state is not donated)."""
    return compiled(self, 'eval')


@functools.lru_cache(maxsize=32)
def compiled(trainer: Trainer, kind: str, mesh: Optional[Mesh] = None
             ) -> Callable[..., Any]:
  """The one place the engine is compiled: ``kind`` of ``trainer`` on ``mesh``.

  Args:
    trainer: compared by value, so equal trainers share one executable.
    kind: ``'step'`` (``(state, batch)``, state donated), ``'epoch'``
      (``(state, data, num_steps)``, ``num_steps`` static, state donated) or
      ``'eval'`` (``(state, batch)``; one device only).
    mesh: a 1-D data mesh: the per-device step runs under ``jax.shard_map``
      with a replicated state and the global batch split over the mesh
      (generated batches are placed so too); None: one device.

  The cache is bounded so that a process building many trainers does not
  keep all their executables.
  """
  step = trainer.step if mesh is None else _shard_mapped_step(trainer, mesh)
  if kind == 'step':
    return jax.jit(step, donate_argnums=0)
  if kind == 'epoch':
    sharding = None if mesh is None else NamedSharding(mesh,
                                                       P(*mesh.axis_names))
    return jax.jit(functools.partial(_scanned, step, sharding),
                   static_argnums=2, donate_argnums=0)
  if kind == 'eval' and mesh is None:
    return jax.jit(trainer.eval_step)
  raise ValueError(f"no compiled {kind!r} with mesh={mesh}; kinds: 'step', "
                   "'epoch' and, on one device, 'eval'.")


def _scanned(step, sharding, state, data, num_steps=None):
  # scan_epoch is looked up when traced, not when compiled() runs.
  return scan_epoch(step, state, data, num_steps, sharding)


def epoch_data_key(state: TrainState) -> jax.Array:
  """The key of the epoch plan starting at ``state``.

  ``fold_in(fold_in(state.key, data stream), state.step)``: a different plan
  every epoch, reproduced exactly on resume; every epoch loop (the scanned
  one here, the host one of :mod:`cmi_jax.data.host`) draws it from here.
  """
  return jax.random.fold_in(
      jax.random.fold_in(state.key, _DATA_STREAM), state.step)


def scan_epoch(step_fn: Callable[[TrainState, Batch],
                                  tuple[TrainState, Metrics]],
               state: TrainState, data: DeviceDataset,
               num_steps: Optional[int] = None,
               batch_sharding: Optional[NamedSharding] = None
               ) -> tuple[TrainState, Metrics]:
  """Scans ``step_fn`` over ``num_steps`` batches of a device dataset.

  The epoch plan is drawn from :func:`epoch_data_key`.
  ``batch_sharding`` places every generated batch (used by the sharded epoch).
  """
  num_steps = data.steps_per_epoch if num_steps is None else num_steps
  plan = data.epoch_plan(epoch_data_key(state))

  def body(state, i):
    batch = data.batch(plan, i % data.steps_per_epoch)
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    return step_fn(state, batch)

  return jax.lax.scan(body, state, jnp.arange(num_steps))


def _combination_index(labels: jax.Array, num_classes: Sequence[int]
                       ) -> jax.Array:
  """Row-major index of every label combination, ``[B, K] -> [B]``."""
  strides = np.cumprod((1,) + tuple(num_classes[::-1]))[:-1][::-1]
  return labels @ jnp.asarray(strides, labels.dtype)


def make_trainer(encoder: nn.Module,
                 objective: str | objectives.Objective,
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
    heads: a custom heads module (default :class:`cmi_jax.models.AttributeHeads`).
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
    raise ValueError(
        f'the objective was built for subspaces {objective.subspaces} and '
        f'classes {objective.num_classes}, not {subspaces} and '
        f'{num_classes}; build it with the same ones.')
  if heads is None:
    heads = models.AttributeHeads(subspaces, num_classes)
  return Trainer(encoder=encoder, heads=heads, objective=objective,
                 optim=optim,
                 group_weighting=group_weighting or groups.GroupWeighting())


# ------------------------------------------------------------------ devices

def _check_divisible(batch: Batch, num_devices: int) -> None:
  size = batch['labels'].shape[0]
  if size % num_devices:
    raise ValueError(
        f'the global batch of {size} examples does not divide over '
        f'{num_devices} devices; use a batch size that is a multiple of '
        f'{num_devices}.')


def data_mesh(devices: Optional[Sequence[jax.Device]] = None,
              axis_name: str = 'data') -> Mesh:
  """A 1-D mesh over ``devices`` (default: all) with one named data axis."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (axis_name,))


def _shard_mapped_step(trainer: Trainer, mesh: Mesh):
  """``trainer.step`` under ``jax.shard_map``: replicated state, split batch."""
  (axis_name,) = mesh.axis_names
  return jax.shard_map(
      functools.partial(trainer.step, axis_name=axis_name), mesh=mesh,
      in_specs=(P(), P(axis_name)), out_specs=(P(), P()),
      # Outputs are replicated by construction (every device computes them
      # from the all-gathered batch), which the type system of varying axes
      # cannot see through all_gather.
      check_vma=False)


def shard_map_train_step(trainer: Trainer, mesh: Mesh
                         ) -> Callable[[TrainState, Batch],
                                       tuple[TrainState, Metrics]]:
  """The step over a 1-D data mesh with ``jax.shard_map``.

  The returned function takes the replicated state and the *global* batch
  (split along its first axis over the mesh) and returns the replicated new
  state and metrics. The result equals the one-device step on the same batch.
  """
  sharded = compiled(trainer, 'step', mesh)

  def step(state: TrainState, batch: Batch):
    _check_divisible(batch, mesh.size)
    return sharded(state, batch)
  return step


def shard_map_train_epoch(trainer: Trainer, mesh: Mesh
                          ) -> Callable[..., tuple[TrainState, Metrics]]:
  """A compiled epoch over a data mesh: ``(state, data, num_steps=None)``.

  Each global batch is generated on the device and split over the mesh; the
  step is :func:`shard_map_train_step`'s, so the result equals the one-device
  epoch. ``data.batch_size`` must divide by the number of devices.
  """
  sharded = compiled(trainer, 'epoch', mesh)

  def epoch(state: TrainState, data: DeviceDataset,
            num_steps: Optional[int] = None):
    if data.batch_size % mesh.size:
      raise ValueError(
          f'the batch size {data.batch_size} does not divide over '
          f'{mesh.size} devices; use a multiple of {mesh.size}.')
    return sharded(state, data, num_steps)
  return epoch


def pmap_train_step(trainer: Trainer, axis_name: str = 'data'
                    ) -> Callable[[TrainState, Batch],
                                  tuple[TrainState, Metrics]]:
  """The same step through ``jax.pmap``, for codebases built on it.

  ``jax.pmap`` is in maintenance mode upstream (JAX recommends ``jit`` with
  shardings or ``shard_map`` for new code): prefer
  :func:`shard_map_train_step` / :func:`shard_map_train_epoch`, which run the
  same per-device step over a mesh. This entry point stays for codebases
  built on pmap and gives the same state.

  Takes a state replicated along a leading device axis
  (:func:`replicate_for_pmap`) and a batch shaped ``[num_devices, B/n, ...]``
  (see :func:`split_for_pmap`); returns the replicated new state and metrics.
  """
  return jax.pmap(functools.partial(trainer.step, axis_name=axis_name),
                  axis_name=axis_name, donate_argnums=0)


def replicate_for_pmap(state: TrainState, num_devices: int) -> TrainState:
  """Stacks ``num_devices`` copies of the state along a new leading axis."""
  return jax.tree.map(
      lambda a: jnp.broadcast_to(a, (num_devices,) + jnp.shape(a)), state)


def split_for_pmap(batch: Batch, num_devices: int) -> Batch:
  """Reshapes a global batch ``[B, ...]`` to ``[num_devices, B/n, ...]``."""
  _check_divisible(batch, num_devices)
  return jax.tree.map(
      lambda a: a.reshape((num_devices, a.shape[0] // num_devices)
                          + a.shape[1:]), batch)


def replicate_state(state: TrainState, mesh: Mesh) -> TrainState:
  """Places a state on every device of ``mesh`` (fully replicated)."""
  return jax.device_put(state, NamedSharding(mesh, P()))


def shard_batch(batch: Batch, mesh: Mesh) -> Batch:
  """Splits a global batch along its first axis over the mesh."""
  _check_divisible(batch, mesh.size)
  (axis_name,) = mesh.axis_names
  return jax.device_put(batch, NamedSharding(mesh, P(axis_name)))
