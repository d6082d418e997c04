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

# Largest N whose affine re-indexing ``m * j`` (both < N) fits in uint32.
MAX_SAMPLES = 2**16 - 1


def attribute_combinations(num_attributes: int) -> np.ndarray:
  """All ``a in {-1, +1}^K``, int ``[2^K, K]``, in ``joint_table`` order.

  Row ``i`` is ``joint_table(c, K).ravel()[i]``: attribute 0 most significant.
  """
  k = validate.integer(num_attributes, 'num_attributes', 2)
  return 2 * correlation.combination_to_labels(np.arange(2**k), k) - 1


def sample_data(key: jax.Array, table: jax.Array, noise_var: jax.Array,
                num_samples: int) -> tuple[jax.Array, jax.Array]:
  """One training set ``(x [N, K] float32, labels [N, K] int32 in {0, 1})``.

  ``x = A [a; eps]`` with the mixing ``A = [I_K I_K]`` of
  :func:`cmi_jax.toy.linear_regression.default_mixing`. jit- and vmap-safe
  in ``table`` (the ``(2,) * K`` joint table) and in the scalar
  ``noise_var``; ``num_samples`` is static.
  """
  k_labels, k_noise = jax.random.split(key)
  labels = correlation.sample_combinations_jax(k_labels, table, num_samples)
  attributes = 2.0 * labels.astype(jnp.float32) - 1.0
  noise = jnp.sqrt(noise_var) * jax.random.normal(
      k_noise, (num_samples, table.ndim), jnp.float32)
  mixing = linear_regression.default_mixing(table.ndim).astype(np.float32)
  return jnp.concatenate([attributes, noise], axis=1) @ mixing.T, labels


def _sample_cells(num_samples: int, keys: jax.Array, tables: jax.Array,
                  noise_vars: jax.Array) -> tuple[jax.Array, jax.Array]:
  """:func:`sample_data` of every cell (keys ``[C, 2]``, noise ``[C]``)."""
  return jax.vmap(sample_data, in_axes=(0, 0, 0, None))(
      keys, tables, noise_vars, num_samples)


@flax.struct.dataclass
class FullBatchDataset:
  """A fixed full batch, re-indexed at every step so the PacGAN packs change.

  A :class:`cmi_jax.data.base.DeviceDataset` (``x`` float32 ``[N, K]``,
  ``labels`` int32 ``[N, K]``, ``N <= MAX_SAMPLES``) whose epoch is
  ``steps_per_epoch`` full-batch steps. Step ``i`` sees row
  ``(m_i j + b_i) mod N`` in position ``j`` (``b_i`` uniform, ``m_i`` a
  uniform unit mod ``N``, from ``fold_in(plan, i)``): as the rows are
  i.i.d., only the *sets* packed together need to change.
  """
  x: jax.Array
  labels: jax.Array
  steps_per_epoch: int = flax.struct.field(pytree_node=False)

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
    size = self.x.shape[0]  # <= MAX_SAMPLES (check_sweep)
    units = np.flatnonzero(np.gcd(np.arange(size), size) == 1)  # N = 1: [0]
    k_mult, k_shift = jax.random.split(jax.random.fold_in(plan, step))
    mult = jnp.uint32(units)[jax.random.randint(k_mult, (), 0, len(units))]
    shift = jax.random.randint(k_shift, (), 0, size).astype(jnp.uint32)
    index = jnp.arange(size, dtype=jnp.uint32)
    return ((mult * index + shift) % jnp.uint32(size)).astype(jnp.int32)


class LinearEncoder(nn.Module):
  """``z = W x``, ``[B, K] -> [B, latent_dim]``, no bias, ``W = I`` at init."""
  latent_dim: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    identity = lambda key, shape, dtype: jnp.eye(*shape, dtype=dtype)
    return nn.Dense(self.latent_dim, use_bias=False, kernel_init=identity,
                    name='linear')(x)


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
    scores = z * self.param('readout', nn.initializers.constant(
        self.init_value), (self.num_attributes,))
    return tuple(jnp.stack([jnp.zeros_like(s), s], -1) for s in scores.T)


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
    # Rates > 0, weights >= 0.
    for name in 'base_lr lr cls_lr d_lr lr_decay mi_weight cmi_weight'.split():
      validate.number(getattr(self, name), name, 0,
                      open_low=not name.endswith('weight'))
    for name, low in (('pack_size', 1), ('num_cls_steps', 1), ('tail', 1),
                      ('num_steps', 2), ('num_snapshots', 2)):
      validate.integer(getattr(self, name), name, low)
    if self.num_steps % self.num_snapshots:
      raise ValueError(f'num_steps ({self.num_steps}) must be a multiple of '
                       f'num_snapshots ({self.num_snapshots}), the chunks.')

  def disentangle_weight(self, objective: str, num_attributes: int) -> float:
    """The engine's ``lambda`` for ``objective`` (0 for ``base``)."""
    return {'mi': float(self.mi_weight),
            'cmi': float(self.cmi_weight) * 2.0 / num_attributes
            }.get(objective, 0.0)


def _check_objective(objective: str) -> None:
  if objective not in OBJECTIVES:
    raise ValueError(f'objective {objective!r} is not trained by this toy; '
                     f'choose one of {OBJECTIVES}.')


def make_classification_trainer(objective: str, num_attributes: int,
                                config: TrainConfig = TrainConfig()
                                ) -> train.Trainer:
  """:class:`~cmi_jax.train.Trainer` for this toy and ``objective``."""
  _check_objective(objective)
  k = validate.integer(num_attributes, 'num_attributes', 2)
  pack, hidden = config.pack_size, tuple(config.hidden)
  adversary = {'base': None,
               'mi': models.PacUnconditionalAdversary(pack, hidden),
               'cmi': models.PacAdversary(k, k, pack, hidden)}[objective]
  optim = train.OptimConfig(
      lr=float(config.base_lr if objective == 'base' else config.lr),
      cls_lr=config.cls_lr, d_lr=config.d_lr, lr_decay=config.lr_decay,
      num_cls_steps=config.num_cls_steps, decay_step=decay_step(config))
  return train.make_trainer(
      LinearEncoder(k), objective, subspaces=(1,) * k, num_classes=(2,) * k,
      optim=optim, adversary=adversary, heads=ScalarReadoutHeads(k))


def snapshot_steps(config: TrainConfig) -> np.ndarray:
  """The steps at which :func:`train_cells` records ``W`` and ``r``, ``[S]``."""
  chunk = config.num_steps // config.num_snapshots
  return chunk * np.arange(1, config.num_snapshots + 1)


def decay_step(config: TrainConfig) -> int:
  """The step (half time) after which learning rates drop by ``lr_decay``."""
  return config.num_steps // config.num_snapshots * (config.num_snapshots // 2)


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
      num_attributes, noise_vars, train_corrs, (objective,), 1, num_samples,
      config, 2)
  keys = jnp.asarray(keys)
  validate.arrays('train_cells', {'keys': (keys, 'uint32 [C, 2]'),
                                  'train_corrs': (train_corrs, '[C]'),
                                  'noise_vars': (noise_vars, '[C]')},
                  'Give a key (cell_keys), correlation and noise per cell.')
  return _train_cells(objective, k, keys, train_corrs, noise_vars, config,
                      num_samples)


def _train_cells(objective: str, k: int, keys: jax.Array, corrs: np.ndarray,
                 noises: np.ndarray, config: TrainConfig, num_samples: int
                 ) -> dict[str, np.ndarray]:
  """:func:`train_cells` on arguments :func:`check_sweep` has passed."""
  fold_in = jax.vmap(jax.random.fold_in, in_axes=(0, None))
  tables = np.stack([correlation.joint_table(c, k) for c in corrs])
  x, labels = programs.compiled(_sample_cells, num_samples)(
      fold_in(keys, 0), jnp.asarray(tables, jnp.float32),
      jnp.asarray(noises, jnp.float32))
  trainer = make_classification_trainer(objective, k, config)
  # x[0] only gives init_sweep the input shape; parameters ignore its values.
  states = vmapped.init_sweep(trainer, fold_in(keys, 1), x[0], {
      'disentangle_weight': config.disentangle_weight(objective, k)})
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
  w_history, readout_history = (np.stack(s, 1) for s in zip(*snapshots))
  tail = jax.tree.map(
      lambda *m: jnp.concatenate(m, 1)[:, -config.tail:].mean(1), *metrics)
  return jax.tree.map(np.asarray, {
      'W': w_history[:, -1], 'readout': readout_history[:, -1],
      'W_history': w_history, 'readout_history': readout_history,
      'fit_accuracy': sum(tail[f'accuracy/attr_{a}'] for a in range(k)) / k,
      'ce_loss': tail['loss/ce'], 'adversary_loss': tail['loss/adversary'],
      'adversary_acc': (0.5 * (tail['adversary/acc_real']
                               + tail['adversary/acc_fake'])
                        if objective != 'base'
                        else jnp.zeros(len(keys), jnp.float32))})


def evaluation_correlations(num_attributes: int, num: int = 21) -> np.ndarray:
  """Test correlations ``linspace(-1 (K = 2) or 0 (K > 2), 1, num)``."""
  k = validate.integer(num_attributes, 'num_attributes', 2)
  num = validate.integer(num, 'num_test_corrs', 2)
  return np.linspace(-1.0 if k == 2 else 0.0, 1.0, num)


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
  k = readout.size
  if k < 2 or encoder.shape != (k, k) or readout.shape != (k,):
    raise ValueError(f'need W [K, K] and r [K] with K >= 2; got shapes '
                     f'{encoder.shape} and {readout.shape}.')
  validate.number(noise_var, 'noise_var', 0, open_low=True,
                  hint='It is the variance sigma^2.')
  combos = attribute_combinations(k).astype(np.float64)  # [M, K]
  probs = np.stack([correlation.joint_table(float(c), k).ravel()
                    for c in np.atleast_1d(corrs)])  # [T, M]
  row_norm = np.linalg.norm(encoder, axis=1)  # [K]
  margin = np.sign(readout) * combos * (combos @ encoder.T) / (
      np.sqrt(noise_var) * np.where(row_norm > 0, row_norm, 1.0))  # [M, K]
  degenerate = (np.sign(readout) == 0) | (row_norm == 0)
  correct = np.where(degenerate, combos < 0, scipy.special.ndtr(margin))
  result = probs @ correct  # [T, K]
  result = result if per_attribute else result.mean(-1)
  return result[0] if np.ndim(corrs) == 0 else result


def evaluate(encoder: np.ndarray, readout: np.ndarray, noise_var: float,
             train_corr: float, test_corrs: np.ndarray) -> dict[str, float]:
  """The reported accuracies of one model (:func:`accuracy`, attribute mean).

  ``train_accuracy`` (at ``train_corr``), ``uncorrelated_accuracy`` (at 0),
  ``min_accuracy`` / ``max_accuracy`` over ``test_corrs`` and ``worst_corr``.
  """
  grid = accuracy(encoder, readout, noise_var, test_corrs)
  train_acc, zero_acc = accuracy(encoder, readout, noise_var, [train_corr, 0])
  return {'train_accuracy': float(train_acc),
          'uncorrelated_accuracy': float(zero_acc),
          'min_accuracy': float(grid.min()), 'max_accuracy': float(grid.max()),
          'worst_corr': float(test_corrs[int(np.argmin(grid))])}


def cell_keys(seed: int, num_cells: int) -> jax.Array:
  """Raw keys ``[num_cells, 2]``, cell ``i``'s ``fold_in(PRNGKey(seed), i)``."""
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(
      jax.random.PRNGKey(int(seed)), jnp.arange(num_cells, dtype=jnp.uint32))


def check_sweep(num_attributes: int, noise_vars: Sequence[float],
                train_corrs: Sequence[float], objectives: Sequence[str],
                num_seeds: int, num_samples: int, config: TrainConfig,
                num_test_corrs: int
                ) -> tuple[int, np.ndarray, np.ndarray, tuple[str, ...]]:
  """Validates :func:`sweep`'s arguments and returns them normalised."""
  k = validate.integer(num_attributes, 'num_attributes', 2)
  objectives = tuple(objectives)
  for objective in objectives:
    _check_objective(objective)
  noise_vars = np.array([validate.number(v, 'noise levels', 0, open_low=True)
                         for v in np.ravel(noise_vars).tolist()])  # sigma^2
  train_corrs = np.asarray(train_corrs, np.float64).reshape(-1)
  if not (objectives and noise_vars.size and train_corrs.size):
    raise ValueError(f'give at least one objective of {OBJECTIVES}, noise '
                     'level and training correlation.')
  for c in train_corrs:
    correlation.joint_table(float(c), k)  # Raises on an impossible c.
  validate.integer(num_seeds, 'num_seeds', 1)
  pack = config.pack_size
  if validate.integer(num_samples, 'num_samples', pack, MAX_SAMPLES) % pack:
    raise ValueError(f'num_samples must be a multiple of the pack size '
                     f'{pack}; got {num_samples}.')
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
  grid = list(itertools.product(train_corrs, noise_vars, range(num_seeds)))
  corrs, noises = (np.array([g[i] for g in grid]) for i in (0, 1))
  keys = cell_keys(seed, len(grid))
  test_corrs = evaluation_correlations(k, num_test_corrs)
  cells = []
  for objective in objectives:
    out = _train_cells(objective, k, keys, corrs, noises, config, num_samples)
    for i, (corr, noise, j) in enumerate(grid):
      cells.append({
          'objective': objective, 'num_attributes': k,
          'noise_var': float(noise), 'train_corr': float(corr), 'seed_index': j,
          **evaluate(out['W'][i], out['readout'][i], noise, corr, test_corrs),
          'fit_accuracy': float(out['fit_accuracy'][i]),
          **{f'final_{name}': (float(out[name][i]) if name == 'ce_loss'
                               or objective != 'base' else None)
             for name in ('ce_loss', 'adversary_loss', 'adversary_acc')},
          **{name: np.asarray(out[name][i], np.float64).tolist()
             for name in ('W', 'readout', 'W_history')}})
  return cells
