r"""Learned linear classification under correlation shift (2nd theory toy).

Data (``K`` binary attributes, one fixed full batch of ``N`` samples):
attributes ``a in {-1, +1}^K`` from :func:`cmi_jax.data.correlation.
joint_table` ``(c, K)`` (label 0 <-> ``-1``; every pair correlated by ``c``,
``c < 0`` only for ``K = 2``), noise ``eps ~ N(0, sigma^2 I_K)`` (the *noise
level* is the variance ``sigma^2``) and inputs ``x = A [a; eps] = a + eps``.

Model: ``z = W x`` (:class:`LinearEncoder`), ``logit_k = r_k z_k``
(:class:`ScalarReadoutHeads`), latent subspaces ``(1,) * K``. Objectives:
``base`` (classification only); ``mi``: + ``lambda`` x the unconditional
adversarial MI loss (fakes: every dimension of ``z`` permuted); ``cmi``:
+ ``lambda`` x ``sum_k I(z_k; z_-k | a_k)`` (one discriminator per
attribute, fakes permuted within the rows of equal ``a_k``).

PacGAN, as in the paper (:class:`cmi_jax.models.PacAdversary`): a
discriminator (softplus MLP ``128 -> 128 -> 1``) judges *packs* of ``P = 50``
concatenated samples, since one pair ``(z_1, z_2)`` says almost nothing
about dependence at high noise; every row gets its pack's logit. Rows are
grouped by class before packing, so a pack samples ``p(z | a_k = c)``, and
re-indexed every step, else the discriminator could memorise the fixed
packs. Unlike the reference code, one
discriminator per attribute (not per attribute and class) sees the codes
and the one-hot class, and every objective trains as long, from ``W = I``.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from cmi_jax import models
from cmi_jax import objectives as objectives_lib
from cmi_jax import programs
from cmi_jax import train
from cmi_jax import validate
from cmi_jax import vmapped
from cmi_jax.data import correlation
from cmi_jax.toy import linear_regression

# The registered objectives the toy trains: base, and MI / CMI with PacGAN
# discriminators (the MMD ones have no tuned weight here).
OBJECTIVES = tuple(name for name in objectives_lib.names()
                   if name in ('base', 'mi', 'cmi'))

# Salts that separate the per-cell random streams drawn from one seed.
_DATA_STREAM = 0
_INIT_STREAM = 1


def _check_num_attributes(num_attributes) -> int:
  return validate.integer(num_attributes, 'num_attributes', 2,
                          hint='One latent dimension per attribute.')


mixing_matrix = linear_regression.default_mixing


def attribute_combinations(num_attributes: int) -> np.ndarray:
  """All ``a in {-1, +1}^K``, int ``[2^K, K]``, in ``joint_table`` order.

  Row ``i`` is ``joint_table(c, K).ravel()[i]``: attribute 0 most significant.
  """
  k = _check_num_attributes(num_attributes)
  return np.array(list(itertools.product((-1, 1), repeat=k)), dtype=np.int64)


def sample_data(key: jax.Array, table: jax.Array, noise_var: jax.Array,
                num_samples: int) -> tuple[jax.Array, jax.Array]:
  """One training set ``(x [N, K] float32, labels [N, K] int32 in {0, 1})``.

  jit- and vmap-safe in ``table`` (the ``(2,) * K`` joint table) and in the
  scalar ``noise_var``; ``num_samples`` is static.
  """
  num_attributes = table.ndim
  k_labels, k_noise = jax.random.split(key)
  labels = correlation.sample_combinations_jax(k_labels, table, num_samples)
  attributes = 2.0 * labels.astype(jnp.float32) - 1.0
  noise = jnp.sqrt(noise_var) * jax.random.normal(
      k_noise, (num_samples, num_attributes), jnp.float32)
  mixing = jnp.asarray(mixing_matrix(num_attributes), jnp.float32)
  x = jnp.concatenate([attributes, noise], axis=1) @ mixing.T
  return x, labels


# Largest N whose affine re-indexing ``m * j`` (both < N) fits in uint32.
MAX_SAMPLES = 2**16 - 1


@flax.struct.dataclass
class FullBatchDataset:
  """A fixed full batch, re-indexed at every step so the PacGAN packs change.

  A :class:`cmi_jax.data.base.DeviceDataset` (``x`` float32 ``[N, K]``,
  ``labels`` int32 ``[N, K]``) whose epoch is ``num_steps`` full-batch steps.
  Step ``i`` sees row ``(m_i j + b_i) mod N`` in position ``j`` (``b_i``
  uniform, ``m_i`` a uniform unit mod ``N``, from ``fold_in(plan, i)``): as
  the rows are i.i.d., only the *sets* packed together need to change.
  """
  x: jax.Array
  labels: jax.Array
  num_steps: int = flax.struct.field(pytree_node=False)

  @property
  def steps_per_epoch(self) -> int:
    """Full-batch steps per 'epoch' (static)."""
    return self.num_steps

  @property
  def batch_size(self) -> int:
    """N: every step sees the whole data set."""
    return self.x.shape[0]

  def epoch_plan(self, key: jax.Array) -> jax.Array:
    """The epoch's key (row orders are drawn from it per step)."""
    return key

  def batch(self, plan: jax.Array, step: jax.Array) -> dict[str, jax.Array]:
    """The full batch ``{'image': [N, D], 'labels': [N, K]}`` in step order."""
    order = self.order(plan, step)
    return {'image': self.x[order], 'labels': self.labels[order]}

  def order(self, plan: jax.Array, step: jax.Array) -> jax.Array:
    """Row index of every position at ``step``, a permutation, int32 ``[N]``."""
    size = self.x.shape[0]
    if size > MAX_SAMPLES:
      raise ValueError(f'FullBatchDataset holds {size} rows; at most '
                       f'{MAX_SAMPLES} are supported (uint32 re-indexing).')
    units = np.flatnonzero(np.gcd(np.arange(size), size) == 1)  # N = 1: [0]
    units = jnp.asarray(units if units.size else [0], jnp.uint32)
    k_mult, k_shift = jax.random.split(jax.random.fold_in(plan, step))
    mult = units[jax.random.randint(k_mult, (), 0, units.shape[0])]
    shift = jax.random.randint(k_shift, (), 0, size).astype(jnp.uint32)
    index = jnp.arange(size, dtype=jnp.uint32)
    return ((mult * index + shift) % jnp.uint32(size)).astype(jnp.int32)


def _identity_init(key, shape, dtype=jnp.float32):
  del key
  return jnp.eye(*shape, dtype=dtype)


class LinearEncoder(nn.Module):
  """``z = W x``, ``[B, K] -> [B, latent_dim]``, no bias, ``W = I`` at init."""
  latent_dim: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.Dense(self.latent_dim, use_bias=False,
                    kernel_init=_identity_init, name='linear')(x)


def encoder_matrix(encoder_params: Any) -> jax.Array:
  """``W`` ``[latent_dim, K]`` of :class:`LinearEncoder` (Flax's ``W^T``)."""
  return encoder_params['params']['linear']['kernel'].T


class ScalarReadoutHeads(nn.Module):
  """One scalar readout per latent dimension: ``logit_k = r_k z_k``.

  ``z [B, K] -> K logits [B, 2]`` equal to ``[0, r_k z_k]``: the softmax CE
  is the BCE of ``sigmoid(r_k z_k)`` against ``a_k = +1``. No bias: the
  joint tables are symmetric under ``a -> -a``.
  """
  num_attributes: int
  init_value: float = 0.5

  @nn.compact
  def __call__(self, z: jax.Array) -> tuple[jax.Array, ...]:
    if z.shape[-1] != self.num_attributes:
      raise ValueError(
          f'ScalarReadoutHeads: z has {z.shape[-1]} columns but there are '
          f'{self.num_attributes} attributes; use one latent per attribute.')
    readout = self.param('readout', nn.initializers.constant(self.init_value),
                         (self.num_attributes,))
    scores = z * readout
    return tuple(jnp.stack([jnp.zeros_like(scores[:, k]), scores[:, k]], -1)
                 for k in range(self.num_attributes))


def readout_vector(heads_params: Any) -> jax.Array:
  """``r`` ``[K]`` of :class:`ScalarReadoutHeads` parameters."""
  return heads_params['params']['readout']


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation of one cell (same for every objective except ``lambda``).

  Adam learning rates: ``base_lr`` of ``W`` for ``base`` (nearly convex, it
  tolerates large steps), ``lr`` for ``mi`` and ``cmi`` (the minimax game is
  stable only with the encoder slower than the discriminators), ``cls_lr``
  of ``r``, ``d_lr`` of the discriminators; all drop by ``lr_decay`` after
  :func:`decay_step`. ``mi_weight`` is half the reference toy's 10, as the
  engine adds the real and fake BCE of every class where it averages them;
  ``cmi_weight`` (for K = 2, scaled by ``2 / K``) also divides by the ``2K``
  class terms the toy averages. ``num_steps`` is a multiple of
  ``num_snapshots``; the final losses are means over the last ``tail``.
  """
  num_steps: int = 1000
  base_lr: float = 1e-2
  lr: float = 1e-3
  cls_lr: float = 3e-2
  d_lr: float = 5e-3
  num_cls_steps: int = 1
  lr_decay: float = 0.1
  mi_weight: float = 5.0
  cmi_weight: float = 1.25
  pack_size: int = 50
  hidden: tuple[int, ...] = (128, 128)
  tail: int = 100
  num_snapshots: int = 10

  def __post_init__(self):
    for name in ('base_lr', 'lr', 'cls_lr', 'd_lr', 'lr_decay'):
      validate.number(getattr(self, name), name, 0, open_low=True)
    for name in ('mi_weight', 'cmi_weight'):
      validate.number(getattr(self, name), name, 0)
    for name in ('pack_size', 'num_cls_steps', 'tail'):
      validate.integer(getattr(self, name), name, 1)
    if (validate.integer(self.num_steps, 'num_steps', 2) % validate.integer(
        self.num_snapshots, 'num_snapshots', 2)):
      raise ValueError(
          f'num_steps ({self.num_steps}) must be a multiple of num_snapshots '
          f'({self.num_snapshots}): a snapshot follows each equal chunk.')

  def disentangle_weight(self, objective: str, num_attributes: int) -> float:
    """The engine's ``lambda`` for ``objective`` (0 for ``base``)."""
    if objective == 'mi':
      return float(self.mi_weight)
    if objective == 'cmi':
      return float(self.cmi_weight) * 2.0 / num_attributes
    return 0.0


def _check_objective(objective: str) -> None:
  if objective not in OBJECTIVES:
    raise ValueError(f'objective {objective!r} is not trained by this toy; '
                     f'choose one of {OBJECTIVES}.')


def make_classification_trainer(objective: str, num_attributes: int,
                                config: TrainConfig = TrainConfig()
                                ) -> train.Trainer:
  """:class:`~cmi_jax.train.Trainer` for this toy and ``objective``."""
  _check_objective(objective)
  k = _check_num_attributes(num_attributes)
  adversary = None
  if objective == 'cmi':
    adversary = models.PacAdversary(k, k, config.pack_size,
                                    tuple(config.hidden))
  elif objective == 'mi':
    adversary = models.PacUnconditionalAdversary(config.pack_size,
                                                  tuple(config.hidden))
  optim = train.OptimConfig(
      lr=float(config.base_lr if objective == 'base' else config.lr),
      cls_lr=config.cls_lr, d_lr=config.d_lr,
      num_cls_steps=config.num_cls_steps, decay_step=decay_step(config),
      lr_decay=config.lr_decay)
  return train.make_trainer(
      LinearEncoder(k), objective, subspaces=(1,) * k, num_classes=(2,) * k,
      optim=optim, adversary=adversary, heads=ScalarReadoutHeads(k))


def snapshot_steps(config: TrainConfig) -> np.ndarray:
  """The steps at which :func:`train_cells` records ``W`` and ``r``, ``[S]``."""
  chunk = config.num_steps // config.num_snapshots
  return chunk * np.arange(1, config.num_snapshots + 1)


def decay_step(config: TrainConfig) -> int:
  """The step (half time) after which learning rates drop by ``lr_decay``."""
  chunk = config.num_steps // config.num_snapshots
  return chunk * (config.num_snapshots // 2)


def train_cells(objective: str, num_attributes: int, keys: jax.Array,
                train_corrs: Sequence[float], noise_vars: Sequence[float],
                config: TrainConfig = TrainConfig(),
                num_samples: int = 10_000) -> dict[str, np.ndarray]:
  """Trains ``C`` independent cells of one objective as one vmapped sweep.

  Cell ``i`` samples ``num_samples`` rows (:func:`sample_data`) at
  ``train_corrs[i]`` and ``noise_vars[i]`` and trains one model on them
  with the engine's vmapped epoch (:func:`cmi_jax.vmapped.
  sweep_train_epoch`), ``num_snapshots`` chunks of steps with a snapshot of
  ``W`` and ``r`` after each. ``keys``: uint32 ``[C, 2]`` raw keys; data
  from ``fold_in(key, 0)``, parameters and training randomness from
  ``fold_in(key, 1)``, so objectives given the same key train on the same
  sample.

  Returns float32 arrays with a leading ``[C]`` axis: ``W`` ``[K, K]``,
  ``readout`` ``[K]``, their ``[S, ...]`` ``*_history`` at
  :func:`snapshot_steps`, and the means over the last ``config.tail`` steps
  of ``fit_accuracy`` (mean over attributes), ``ce_loss``,
  ``adversary_loss`` and ``adversary_acc`` (0 for ``base``).
  """
  k, noise_vars, train_corrs, _ = check_sweep(
      num_attributes, noise_vars, train_corrs, (objective,), num_seeds=1,
      num_samples=num_samples, config=config, num_test_corrs=2)
  keys = jnp.asarray(keys)
  if (keys.shape != (len(train_corrs), 2) or keys.dtype != jnp.uint32
      or len(noise_vars) != len(train_corrs)):
    raise ValueError(
        f'need one raw uint32 key [2] (cell_keys), correlation and noise level '
        f'per cell; got keys {keys.shape} {keys.dtype}, {len(train_corrs)} '
        f'correlations and {len(noise_vars)} noise levels.')
  tables = np.stack([correlation.joint_table(float(c), k)
                     for c in train_corrs])
  x, labels = programs.compiled(_sample_cells, int(num_samples))(
      _fold_in(keys, _DATA_STREAM), jnp.asarray(tables, jnp.float32),
      jnp.asarray(noise_vars, jnp.float32))
  trainer = make_classification_trainer(objective, k, config)
  weight = config.disentangle_weight(objective, k)
  # x[0] only gives init_sweep the input shape; parameters ignore its values.
  states = vmapped.init_sweep(trainer, _fold_in(keys, _INIT_STREAM), x[0],
                              {'disentangle_weight': weight})
  chunk = config.num_steps // config.num_snapshots
  data = FullBatchDataset(x, labels, chunk)
  epoch = vmapped.sweep_train_epoch(trainer)
  metrics, snapshots = [], []
  for _ in range(config.num_snapshots):
    states, chunk_metrics = epoch(states, data, chunk)
    metrics.append(chunk_metrics)
    # Host copies: the next chunk donates (overwrites) the state's buffers.
    snapshots.append((np.array(jax.vmap(encoder_matrix)(states.encoder_params)),
                      np.array(readout_vector(states.heads_params))))
  metrics = jax.tree.map(lambda *m: jnp.concatenate(m, 1), *metrics)

  def tail_mean(name):
    return metrics[name][:, -config.tail:].mean(1)

  out = {
      'W': snapshots[-1][0], 'readout': snapshots[-1][1],
      'W_history': np.stack([s[0] for s in snapshots], 1),
      'readout_history': np.stack([s[1] for s in snapshots], 1),
      'fit_accuracy': sum(tail_mean(f'accuracy/attr_{a}')
                          for a in range(k)) / k,
      'ce_loss': tail_mean('loss/ce'),
      'adversary_loss': tail_mean('loss/adversary'),
      'adversary_acc': (0.5 * (tail_mean('adversary/acc_real')
                               + tail_mean('adversary/acc_fake'))
                        if trainer.objective.adversary is not None
                        else jnp.zeros(len(keys), jnp.float32)),
  }
  return jax.tree.map(np.asarray, out)


def _sample_cells(num_samples: int, keys: jax.Array, tables: jax.Array,
                  noise_vars: jax.Array) -> tuple[jax.Array, jax.Array]:
  """:func:`sample_data` of every cell: ``x [C, N, K]``, ``labels [C, N, K]``."""
  return jax.vmap(sample_data, in_axes=(0, 0, 0, None))(
      keys, tables, noise_vars, num_samples)


def _fold_in(keys: jax.Array, stream: int) -> jax.Array:
  """``fold_in(key, stream)`` of every raw key, uint32 ``[C, 2]``."""
  return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, stream)


def _noise_levels(noise_vars) -> np.ndarray:
  noise_vars = np.asarray(noise_vars, np.float64).reshape(-1)
  if noise_vars.size == 0 or not np.all(np.isfinite(noise_vars)) or np.any(
      noise_vars <= 0):
    raise ValueError(
        f'noise levels (variances sigma^2) must be finite and > 0; got '
        f'{noise_vars.tolist()}.')
  return noise_vars


def evaluation_correlations(num_attributes: int, num: int = 21) -> np.ndarray:
  """Test correlations ``linspace(-1 (K = 2) or 0 (K > 2), 1, num)``."""
  k = _check_num_attributes(num_attributes)
  if int(num) < 2:
    raise ValueError(f'need at least 2 test correlations; got {num}.')
  return np.linspace(-1.0 if k == 2 else 0.0, 1.0, int(num))


def accuracy(encoder: np.ndarray, readout: np.ndarray, noise_var: float,
             corrs: Sequence[float] | float, per_attribute: bool = False
             ) -> np.ndarray:
  r"""Exact population accuracy of ``sign(r_k (W x)_k)`` at test correlations.

  Given ``a``, ``(W eps)_k ~ N(0, sigma^2 ||W_k||^2)``, so ``a_k`` is
  predicted right with probability ``Phi(sign(r_k) a_k (W a)_k / (sigma
  ||W_k||))``, averaged over ``a ~ joint_table(c, K)``; a score identically
  0 predicts class 0 (``-1``), as the engine's argmax does. ``W`` ``[K, K]``,
  ``r`` ``[K]``, ``sigma^2 > 0``; float64 ``[T]`` or, ``per_attribute``,
  ``[T, K]`` (no ``T`` axis for a scalar ``corrs``).
  """
  encoder, readout = (np.asarray(a, np.float64) for a in (encoder, readout))
  k = encoder.shape[0] if encoder.ndim else 0
  if k < 2 or encoder.shape != (k, k) or readout.shape != (k,):
    raise ValueError(f'need W [K, K] and r [K] with K >= 2; got shapes '
                     f'{encoder.shape} and {readout.shape}.')
  _noise_levels(noise_var)
  scalar = np.ndim(corrs) == 0
  corrs = np.atleast_1d(np.asarray(corrs, np.float64))
  combos = attribute_combinations(k).astype(np.float64)  # [M, K]
  probs = np.stack([correlation.joint_table(float(c), k).ravel()
                    for c in corrs])  # [T, M]
  row_norm = np.linalg.norm(encoder, axis=1)  # [K]
  sign = np.sign(readout)
  degenerate = (sign == 0) | (row_norm == 0)
  safe_norm = np.where(row_norm > 0, row_norm, 1.0)
  margin = sign * combos * (combos @ encoder.T) / (
      np.sqrt(noise_var) * safe_norm)  # [M, K]
  correct = scipy.special.ndtr(margin)
  correct = np.where(degenerate, (combos < 0).astype(np.float64), correct)
  result = probs @ correct  # [T, K]
  if not per_attribute:
    result = result.mean(-1)
  return result[0] if scalar else result


def evaluate(encoder: np.ndarray, readout: np.ndarray, noise_var: float,
             train_corr: float, test_corrs: np.ndarray) -> dict[str, float]:
  """The reported accuracies of one model (:func:`accuracy`, attribute mean).

  ``train_accuracy`` (at ``train_corr``), ``uncorrelated_accuracy`` (at 0),
  ``min_accuracy`` / ``max_accuracy`` over ``test_corrs`` and ``worst_corr``.
  """
  grid = accuracy(encoder, readout, noise_var, test_corrs)
  train_acc, zero_acc = accuracy(encoder, readout, noise_var,
                                 [train_corr, 0.0])
  return {'train_accuracy': float(train_acc),
          'uncorrelated_accuracy': float(zero_acc),
          'min_accuracy': float(grid.min()), 'max_accuracy': float(grid.max()),
          'worst_corr': float(test_corrs[int(np.argmin(grid))])}


def cell_keys(seed: int, num_cells: int) -> jax.Array:
  """Raw keys ``[num_cells, 2]``, cell ``i``'s ``fold_in(PRNGKey(seed), i)``."""
  base = jax.random.PRNGKey(int(seed))
  return jax.vmap(lambda i: jax.random.fold_in(base, i))(
      jnp.arange(num_cells, dtype=jnp.uint32))


def check_sweep(num_attributes: int, noise_vars: Sequence[float],
                train_corrs: Sequence[float], objectives: Sequence[str],
                num_seeds: int, num_samples: int, config: TrainConfig,
                num_test_corrs: int
                ) -> tuple[int, np.ndarray, np.ndarray, tuple[str, ...]]:
  """Validates :func:`sweep`'s arguments and returns them normalised."""
  k = _check_num_attributes(num_attributes)
  objectives = tuple(objectives)
  if not objectives:
    raise ValueError(f'give at least one objective of {OBJECTIVES}.')
  for objective in objectives:
    _check_objective(objective)
  noise_vars = _noise_levels(noise_vars)
  train_corrs = np.asarray(train_corrs, np.float64).reshape(-1)
  if train_corrs.size == 0:
    raise ValueError('give at least one training correlation.')
  for c in train_corrs:
    correlation.joint_table(float(c), k)  # Raises on an impossible c.
  validate.integer(num_seeds, 'num_seeds', 1)
  pack = config.pack_size
  num_samples = validate.integer(num_samples, 'num_samples')
  if num_samples < pack or num_samples % pack or num_samples > MAX_SAMPLES:
    raise ValueError(
        f'num_samples must be a positive multiple of the pack size {pack} '
        f'(the discriminators see packs of {pack} samples) and at most '
        f'{MAX_SAMPLES}; got {num_samples!r}.')
  evaluation_correlations(k, num_test_corrs)
  return k, noise_vars, train_corrs, objectives


def sweep(num_attributes: int, noise_vars: Sequence[float],
          train_corrs: Sequence[float], objectives: Sequence[str] = OBJECTIVES,
          seed: int = 0, num_seeds: int = 1,
          config: TrainConfig = TrainConfig(), num_samples: int = 10_000,
          num_test_corrs: int = 21) -> list[dict[str, Any]]:
  """Trains and evaluates every (objective, train corr, noise, seed) cell.

  Cell ``i`` (row-major in correlation, noise, seed) has the key
  ``fold_in(PRNGKey(seed), i)`` for every objective, so the objectives see
  identical training sets. Returns JSON-ready cells, objective-major, of
  the settings, the :func:`evaluate` accuracies, ``fit_accuracy``,
  ``final_ce_loss``, ``final_adversary_loss`` and ``final_adversary_acc``
  (``None`` for ``base``), and ``W``, ``readout``, ``W_history`` as lists.
  """
  k, noise_vars, train_corrs, objectives = check_sweep(
      num_attributes, noise_vars, train_corrs, objectives, num_seeds,
      num_samples, config, num_test_corrs)
  grid = list(itertools.product(range(len(train_corrs)),
                                range(len(noise_vars)), range(int(num_seeds))))
  corr_of_cell = train_corrs[[g[0] for g in grid]]
  noise_of_cell = noise_vars[[g[1] for g in grid]]
  keys = cell_keys(seed, len(grid))
  test_corrs = evaluation_correlations(k, num_test_corrs)
  cells = []
  for objective in objectives:
    out = train_cells(objective, k, keys, corr_of_cell, noise_of_cell, config,
                      num_samples)
    adversarial = objective != 'base'
    for i, (_, _, seed_index) in enumerate(grid):
      noise, corr = noise_of_cell[i], corr_of_cell[i]
      cells.append({
          'objective': objective, 'num_attributes': k,
          'noise_var': float(noise), 'train_corr': float(corr),
          'seed_index': seed_index,
          **evaluate(out['W'][i], out['readout'][i], noise, corr, test_corrs),
          'fit_accuracy': float(out['fit_accuracy'][i]),
          'final_ce_loss': float(out['ce_loss'][i]),
          'final_adversary_loss': (float(out['adversary_loss'][i])
                                   if adversarial else None),
          'final_adversary_acc': (float(out['adversary_acc'][i])
                                  if adversarial else None),
          **{name: np.asarray(out[name][i], np.float64).tolist()
             for name in ('W', 'readout', 'W_history')}})
  return cells
