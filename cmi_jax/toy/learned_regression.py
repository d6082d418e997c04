r"""Table 1 learned: the linear-Gaussian regression trained by gradient descent.

The setting of :mod:`cmi_jax.toy.linear_regression` (``s ~ N(0, Sigma_s(c))``
in R^K, ``x = s + eps``), N samples a split. The model is linear with one
subspace per attribute: ``z = x W^T`` (``W`` ``[K, D]``, subspace k is
``z[:, k]``) and ``s_hat_k = r_k z_k + b_k``. Every step draws B rows with
replacement and minimises, with Adam,

    sum_k mean_b (s_k - s_hat_k)^2 + lambda * penalty(z, s)

where the penalty is none (``base``), the adversarial ``I(z_1; z_2)``
(``mi``, :func:`cmi_jax.losses.mi_losses`), the adversarial
``sum_k I(z_k; z_-k | s_k)`` with ``s_k`` continuous (``cmi``, fakes
permuted within blocks of close ``s_k``, :func:`cmi_jax.losses.cmi_losses`),
or a kernel measure of it (``hscic``, ``hsic_cmi``; :mod:`cmi_jax.losses`).
The discriminators train at the same time on their own loss, from the same
state. MSEs are summed over the K attributes (the paper's unit), on a
training split at the training correlation and a test split at
``test_corr``. Members (seeds x lambdas) train together under ``vmap``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cmi_jax import losses
from cmi_jax import models
from cmi_jax import validate
from cmi_jax.toy import linear_regression as lr

OBJECTIVES = ('base', 'mi', 'cmi', 'hscic', 'hsic_cmi')


@dataclasses.dataclass(frozen=True)
class LearnedConfig:
  """How one objective is trained.

  Attributes:
    objective: one of :data:`OBJECTIVES`.
    steps: Adam steps.
    batch_size: B, rows a step (drawn with replacement).
    lr: the model's learning rate.
    adversary_lr: the discriminators' learning rate (``mi``, ``cmi``).
    adversary_hidden: their hidden widths.
    block_size: rows per block of close ``s_k`` (``cmi``, ``hsic_cmi``;
      None: ``round(sqrt(B))``).
    ridge: HSCIC's ridge.
  """
  objective: str
  steps: int = 3000
  batch_size: int = 256
  lr: float = 3e-3
  adversary_lr: float = 3e-3
  adversary_hidden: tuple[int, ...] = (32, 32)
  block_size: Optional[int] = None
  ridge: float = 0.1

  def __post_init__(self):
    validate.choice(self.objective, 'objective', OBJECTIVES)
    validate.integer(self.steps, 'steps', 1)
    validate.integer(self.batch_size, 'batch_size', 4)


@flax.struct.dataclass
class LearnedState:
  """One member: the linear model, its discriminators, both optimisers."""
  model: dict[str, jax.Array]
  adversary: Any
  model_opt: Any
  adversary_opt: Any


def _adversary(config: LearnedConfig, num_attributes: int):
  if config.objective == 'mi':
    return models.UnconditionalAdversary(config.adversary_hidden)
  if config.objective == 'cmi':
    return models.Adversary(num_attributes, config.adversary_hidden)
  return None


def predict(model: dict[str, jax.Array], x: jax.Array
            ) -> tuple[jax.Array, jax.Array]:
  """``(z, s_hat)``, both ``[N, K]``, of inputs ``x`` ``[N, D]``."""
  z = x @ model['w'].T
  return z, z * model['r'] + model['b']


def summed_mse(model: dict[str, jax.Array], x: jax.Array,
               s: jax.Array) -> jax.Array:
  """``sum_k mean_n (s_k - s_hat_k)^2``, the paper's unit."""
  return jnp.sum(jnp.mean((s - predict(model, x)[1]) ** 2, axis=0))


def _penalties(config: LearnedConfig, adversary, adv_params, key, z, s):
  """``(encoder penalty, discriminator loss)`` of one batch."""
  k = s.shape[1]
  subspaces, continuous = (1,) * k, (0,) * k
  if config.objective == 'mi':
    return losses.mi_losses(lambda v: adversary.apply(adv_params, v), key, z,
                            subspaces)
  if config.objective == 'cmi':
    return losses.cmi_losses(
        lambda i, v: adversary.apply(adv_params, i, v), key, z, s, subspaces,
        continuous, block_size=config.block_size)
  if config.objective == 'hscic':
    return losses.hscic_loss(z, s, subspaces, continuous,
                             ridge=config.ridge), jnp.zeros(())
  if config.objective == 'hsic_cmi':
    return losses.hsic_cmi_loss(z, s, subspaces, continuous,
                                block_size=config.block_size), jnp.zeros(())
  return jnp.zeros(()), jnp.zeros(())


def train(config: LearnedConfig, x: jax.Array, s: jax.Array,
          weights: jax.Array, keys: jax.Array) -> LearnedState:
  """Trains S members, each on its own split.

  Args:
    x: ``[S, N, D]`` inputs; ``s``: ``[S, N, K]`` attributes.
    weights: ``[S]`` lambdas; ``keys``: ``[S]`` PRNG keys.

  Returns:
    The final states, stacked ``[S, ...]``.
  """
  num_attributes, dim = s.shape[-1], x.shape[-1]
  adversary = _adversary(config, num_attributes)
  model_tx = optax.adam(config.lr)
  adversary_tx = optax.adam(config.adversary_lr)

  def init(key, x):
    k_w, k_adv = jax.random.split(key)
    model = {'w': jax.random.normal(k_w, (num_attributes, dim)) / np.sqrt(dim),
             'r': jnp.ones(num_attributes), 'b': jnp.zeros(num_attributes)}
    if adversary is None:
      adv_params = {}
    elif config.objective == 'mi':
      adv_params = adversary.init(k_adv, x[:2, :num_attributes])
    else:
      adv_params = adversary.init(
          k_adv, [jnp.zeros((2, num_attributes + 1))] * num_attributes,
          method=adversary.init_all)
    return LearnedState(model, adv_params, model_tx.init(model),
                        adversary_tx.init(adv_params))

  def member(key, x, s, weight):
    def step(state, key):
      k_rows, k_loss = jax.random.split(key)
      rows = jax.random.randint(k_rows, (config.batch_size,), 0, x.shape[0])
      xb, sb = x[rows], s[rows]

      def model_loss(model):
        z, s_hat = predict(model, xb)
        mse = jnp.sum(jnp.mean((sb - s_hat) ** 2, axis=0))
        penalty, _ = _penalties(config, adversary, state.adversary, k_loss,
                                z, sb)
        return mse + weight * penalty

      def adversary_loss(adv_params):
        z = jax.lax.stop_gradient(predict(state.model, xb)[0])
        return _penalties(config, adversary, adv_params, k_loss, z, sb)[1]

      grads = jax.grad(model_loss)(state.model)
      updates, model_opt = model_tx.update(grads, state.model_opt)
      model = optax.apply_updates(state.model, updates)
      adv_params, adversary_opt = state.adversary, state.adversary_opt
      if adversary is not None:
        adv_grads = jax.grad(adversary_loss)(state.adversary)
        adv_updates, adversary_opt = adversary_tx.update(
            adv_grads, state.adversary_opt)
        adv_params = optax.apply_updates(state.adversary, adv_updates)
      return LearnedState(model, adv_params, model_opt, adversary_opt), None

    k_init, k_steps = jax.random.split(key)
    state, _ = jax.lax.scan(step, init(k_init, x),
                            jax.random.split(k_steps, config.steps))
    return state

  return jax.jit(jax.vmap(member))(keys, x, s, weights)


def table_rows(objectives: Sequence[str], lambdas: Sequence[float],
               seeds: Sequence[int], *, train_corr: float = 0.8,
               noise_var: float = 0.1, test_corr: float = 0.0,
               num_samples: int = 10_000, num_attributes: int = 2,
               **config: Any) -> list[dict[str, Any]]:
  """Every (objective, lambda, seed): its train and test MSE (summed).

  Seed ``i`` draws its training split from ``default_rng(i)`` and its test
  split from ``default_rng(10_000 + i)``; every objective and lambda of a
  seed sees the same splits. ``config``: more :class:`LearnedConfig` fields.
  """
  members = [(w, i) for w in lambdas for i in range(len(seeds))]
  index = np.array([i for _, i in members])
  weights = jnp.asarray([w for w, _ in members], jnp.float32)
  keys = jax.vmap(jax.random.key)(jnp.asarray(np.asarray(seeds)[index]))
  splits = {}  # name -> (x, s), one split per member: [S, N, D], [S, N, K]
  for name, corr, offset in (('train', train_corr, 0),
                             ('test', test_corr, 10_000)):
    setting = lr.make_setting(corr, noise_var, num_attributes)
    s, x = map(np.stack, zip(*(
        lr.sample(setting, num_samples, np.random.default_rng(offset + seed))
        for seed in seeds)))
    splits[name] = (jnp.asarray(x, jnp.float32)[index],
                    jnp.asarray(s, jnp.float32)[index])
  rows = []
  for objective in objectives:
    states = train(LearnedConfig(objective, **config), *splits['train'],
                   weights, keys)
    mse = {name: np.asarray(jax.vmap(summed_mse)(states.model, *split))
           for name, split in splits.items()}
    rows += [{'objective': objective, 'lambda': w,
              'seed': int(seeds[i]), 'train_mse': float(mse['train'][m]),
              'test_mse': float(mse['test'][m])}
             for m, (w, i) in enumerate(members)]
  return rows


def summarize(rows: Sequence[dict[str, Any]], stable_train_mse: float
              ) -> dict[str, dict[str, Any]]:
  """Per objective: the curve over lambda and the table row.

  ``curve`` holds each lambda's means over seeds and whether it trained
  stably: every seed's train MSE finite and at most ``stable_train_mse``
  (the run passes the closed-form MI = 0 model's, the worst training error
  of the paper's constrained solutions). The table row (``train_mse``,
  ``test_mse``, ``seeds``, ``lambda``) is the largest stable lambda; a
  validation split at the training correlation would pick lambda = 0, since
  exploiting the correlation lowers in-distribution error.
  """
  summary = {}
  for objective in dict.fromkeys(r['objective'] for r in rows):
    curve = []
    for weight in sorted({r['lambda'] for r in rows
                          if r['objective'] == objective}):
      mine = [r for r in rows
              if r['objective'] == objective and r['lambda'] == weight]
      train = np.array([r['train_mse'] for r in mine])
      curve.append({
          'lambda': weight, 'seeds': len(mine),
          'train_mse': float(train.mean()),
          'test_mse': float(np.mean([r['test_mse'] for r in mine])),
          'stable': bool(np.all(np.isfinite(train))
                         and np.all(train <= stable_train_mse))})
    stable = [point for point in curve if point['stable']]
    row = (stable or curve[:1])[-1]
    summary[objective] = {
        'train_mse': row['train_mse'], 'test_mse': row['test_mse'],
        'seeds': row['seeds'], 'lambda': row['lambda'], 'curve': curve}
  return summary
