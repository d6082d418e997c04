"""Adversarial, MMD and kernel estimators of (conditional) MI between subspaces.

Conventions shared by every function here:
  * ``z`` is float ``[B, D]``, split into K contiguous subspaces whose sizes
    ``subspaces`` sum to ``D``; ``num_classes`` holds K positive ints.
  * ``labels`` is int ``[B, K]``; ``-1`` marks a missing label. Missing labels
    and classes absent from the batch contribute exactly 0 (never NaN).
  * A conditional ``adversary(k, inputs) -> logits [B]`` takes a Python int
    ``k`` (one discriminator per attribute) and ``inputs = concat(z_or_fake,
    one_hot(s_k))`` ``[B, D + num_classes[k]]``; an unconditional one is
    ``adversary(inputs [B, D]) -> logits [B]``.
  * ``key`` seeds the shuffle; an optional ``permutations`` int ``[K, B]``
    (from :mod:`cmi_jax.shuffle`) replaces it, so that a step draws the fakes
    once for all its calls.
  * The encoder minimises ``encoder_loss`` (or the MMD), the adversary
    ``adversary_loss``, which sees ``stop_gradient(z)``. Losses are in nats.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cmi_jax import attributes
from cmi_jax import kernels
from cmi_jax import shuffle

ConditionalAdversary = Callable[[int, jax.Array], jax.Array]
Adversary = Callable[[jax.Array], jax.Array]


def grouped_mean(values: chex.Array, groups: chex.Array,
                 num_groups: int) -> jax.Array:
  """``sum_c mean_{i: groups_i = c} values_i``, ``c in [0, num_groups)``.

  Reduces ``values`` ``[B, ...]`` over axis 0 by int ``groups`` ``[B]``;
  an empty group adds 0.
  """
  member = groups[:, None] == jnp.arange(num_groups)  # [B, C]
  counts = member.sum(0)  # [C]
  sums = jnp.tensordot(member.astype(values.dtype), values, axes=(0, 0))
  # max(count, 1) keeps the gradient finite for empty groups (their sum is 0).
  weights = 1.0 / jnp.maximum(counts, 1).astype(values.dtype)
  return jnp.tensordot(weights, sums, axes=(0, 0))


def _real_fake_bce(real_logits: jax.Array, fake_logits: jax.Array,
                   real_target: float) -> jax.Array:
  """``BCE(real_i, t) + BCE(fake_i, 1 - t)`` per row, ``[B]``."""
  real = optax.sigmoid_binary_cross_entropy(
      real_logits, jnp.full_like(real_logits, real_target))
  fake = optax.sigmoid_binary_cross_entropy(
      fake_logits, jnp.full_like(fake_logits, 1.0 - real_target))
  return real + fake


def _check_num_classes(num_classes: Sequence[int],
                       subspaces: tuple[int, ...]) -> tuple[int, ...]:
  num_classes = tuple(num_classes)
  if len(num_classes) != len(subspaces) or any(
      int(n) < attributes.CONTINUOUS for n in num_classes):
    raise ValueError(f'num_classes must give a class count per subspace '
                     f'{subspaces}; got {num_classes}. A count is positive, '
                     'or 0 for a continuous attribute.')
  return tuple(int(n) for n in num_classes)


def _group_ids(labels: jax.Array, num_classes: tuple[int, ...]
               ) -> list[tuple[jax.Array, int]]:
  """Per attribute, ``(groups [B], count)`` of :func:`grouped_mean`.

  A categorical attribute's classes; a continuous one's labelled rows form
  one group (the conditioning is in the fakes and the discriminator's input).
  """
  labelled = attributes.labelled(labels, num_classes)
  return [(jnp.where(labelled[:, k], 0, -1), 1) if n == attributes.CONTINUOUS
          else (labels[:, k].astype(jnp.int32), n)
          for k, n in enumerate(num_classes)]


def check_label_range(labels: chex.Array, num_classes: Sequence[int]) -> None:
  """Refuses labels outside ``[-1, num_classes[k])`` when they are concrete.

  Traced labels pass: data is checked where it enters
  (``cmi_jax.data.base.validate_labels``).
  """
  try:
    values = np.asarray(labels)
  except jax.errors.TracerArrayConversionError:
    return
  for k, n in enumerate(num_classes):
    if n == attributes.CONTINUOUS:
      continue
    bad = ((values[:, k] < -1) | (values[:, k] >= n)
           | (values[:, k] != np.round(values[:, k])))
    if bad.any():
      raise ValueError(
          f'labels[:, {k}] holds {int(values[:, k][np.argmax(bad)])}, outside '
          f'[-1, {n}) for num_classes[{k}] = {n} (-1 marks a missing label); '
          'relabel the classes as 0..n-1.')


def _check_logits(logits: jax.Array, batch: int, what: str) -> None:
  if logits.shape != (batch,):
    raise ValueError(f'the {what} must return logits [B] = [{batch}], not '
                     f'{logits.shape}; squeeze a [B, 1] output.')


def cmi_losses(adversary: ConditionalAdversary, key: chex.PRNGKey,
               z: chex.Array, labels: chex.Array, subspaces: Sequence[int],
               num_classes: Sequence[int], *,
               permutations: Optional[chex.Array] = None,
               block_size: Optional[int] = None
               ) -> tuple[jax.Array, jax.Array]:
  """Adversarial losses for ``sum_k I(z_k; z_-k | s_k)``.

  Scalars ``(encoder_loss, adversary_loss)``; with ``fake_k =
  conditional_shuffle(key, z, labels, subspaces, num_classes)[k]``,
  ``h = one_hot(s_k)``, ``r_i = adversary(k, [z_i, h_i])`` and
  ``f_i = adversary(k, [fake_k,i, h_i])``:

      adversary_loss = sum_k sum_c [mean_{i: s_ik = c} BCE(r_i, 1)
                                    + mean_{i: s_ik = c} BCE(f_i, 0)]
      encoder_loss   = sum_k sum_c [mean_{i: s_ik = c} BCE(f_i, 1)
                                    + mean_{i: s_ik = c} BCE(r_i, 0)]

  (the encoder's is the flipped, non-saturating objective). As in the
  reference code, real and fake means are added and groups and attributes
  summed, so a discriminator at chance scores ``2 log 2`` per present group
  and the encoder's weight ``lambda`` is the paper's. Differentiate
  ``encoder_loss`` only with respect to ``z``. ``permutations``: from
  :func:`cmi_jax.shuffle.conditional_permutations`.

  A continuous attribute (``num_classes[k] == 0``; float ``labels``, NaN
  missing) permutes ``z_k`` within blocks of ``block_size`` rows of close
  ``s_k`` (:mod:`cmi_jax.shuffle`), conditions the discriminator on the
  value (``h = [s_k]``) and averages over its labelled rows as one group.

  Raises:
    ValueError: for malformed inputs or concrete labels out of range; the
      message names the fix.

  Example:
    >>> z = jax.random.normal(jax.random.key(0), (8, 4))
    >>> labels = jnp.array([[0, 1]] * 4 + [[1, 0]] * 4)
    >>> adversary = lambda k, x: x.sum(-1)
    >>> enc, adv = cmi_losses(adversary, jax.random.key(1), z, labels,
    ...                       (2, 2), (2, 2))
  """
  num_classes = _check_num_classes(num_classes, tuple(subspaces))
  fakes = _conditional_fakes(key, z, labels, subspaces, num_classes,
                             permutations, block_size)
  check_label_range(labels, num_classes)
  enc_real, enc_fake = _conditional_logits(adversary, z, fakes, labels,
                                           num_classes)
  adv_real, adv_fake = _conditional_logits(
      adversary, *jax.lax.stop_gradient((z, fakes)), labels, num_classes)
  encoder_loss = adversary_loss = jnp.zeros((), z.dtype)
  for k, (groups, count) in enumerate(_group_ids(labels, num_classes)):
    encoder_loss += grouped_mean(
        _real_fake_bce(enc_real[k], enc_fake[k], 0.0), groups, count)
    adversary_loss += grouped_mean(
        _real_fake_bce(adv_real[k], adv_fake[k], 1.0), groups, count)
  return encoder_loss, adversary_loss


def _conditional_fakes(key: chex.PRNGKey, z: jax.Array, labels: jax.Array,
                       subspaces: Sequence[int], num_classes: tuple[int, ...],
                       permutations: Optional[jax.Array],
                       block_size: Optional[int] = None) -> jax.Array:
  """The ``[K, B, D]`` fakes, from ``key`` or from ``permutations``."""
  if permutations is None:
    return shuffle.conditional_shuffle(key, z, labels, subspaces, num_classes,
                                       block_size)
  shuffle.check_labels(labels, z, tuple(subspaces), num_classes)
  return shuffle.permute_one_subspace(z, permutations, subspaces)


def _conditional_logits(adversary: ConditionalAdversary, z: jax.Array,
                        fakes: jax.Array, labels: jax.Array,
                        num_classes: tuple[int, ...]
                        ) -> tuple[list[jax.Array], list[jax.Array]]:
  """Per-attribute real and fake logits, two lists of K arrays ``[B]``."""
  real, fake = [], []
  # K is small and the discriminators differ per attribute: a static loop.
  for k in range(len(num_classes)):
    s_k = _attribute_codes(labels, num_classes, [k], z.dtype)
    for latent, out in ((z, real), (fakes[k], fake)):
      logits = adversary(k, jnp.concatenate([latent, s_k], axis=-1))
      _check_logits(logits, z.shape[0], f'adversary for attribute {k}')
      out.append(logits)
  return real, fake


def cmi_adversary_accuracy(adversary: ConditionalAdversary, key: chex.PRNGKey,
                           z: chex.Array, labels: chex.Array,
                           subspaces: Sequence[int],
                           num_classes: Sequence[int], *,
                           permutations: Optional[chex.Array] = None,
                           block_size: Optional[int] = None
                           ) -> tuple[jax.Array, jax.Array]:
  """``(accuracy_real, accuracy_fake)`` of the conditional discriminators.

  The fractions of real rows with a positive logit and of fake rows with a
  negative one, over attributes and labelled rows (0.5 each at chance).
  """
  num_classes = _check_num_classes(num_classes, tuple(subspaces))
  fakes = _conditional_fakes(key, z, labels, subspaces, num_classes,
                             permutations, block_size)
  real, fake = _conditional_logits(adversary, jax.lax.stop_gradient(z),
                                   jax.lax.stop_gradient(fakes), labels,
                                   num_classes)
  present = attributes.labelled(labels, num_classes).T  # [K, B]
  count = jnp.maximum(present.sum(), 1)
  acc_real = jnp.sum(present * (jnp.stack(real) > 0)) / count
  acc_fake = jnp.sum(present * (jnp.stack(fake) < 0)) / count
  return acc_real, acc_fake


def mi_adversary_accuracy(adversary: Adversary, key: chex.PRNGKey,
                          z: chex.Array, subspaces: Sequence[int], *,
                          permutations: Optional[chex.Array] = None
                          ) -> tuple[jax.Array, jax.Array]:
  """``(accuracy_real, accuracy_fake)`` of the unconditional discriminator."""
  fake = _marginal_fake(key, z, subspaces, permutations)
  z, fake = jax.lax.stop_gradient((z, fake))
  return jnp.mean(adversary(z) > 0), jnp.mean(adversary(fake) < 0)


def _marginal_fake(key: chex.PRNGKey, z: jax.Array, subspaces: Sequence[int],
                   permutations: Optional[jax.Array]) -> jax.Array:
  """The ``[B, D]`` fake, from ``key`` or from ``permutations``."""
  if permutations is None:
    return shuffle.marginal_shuffle(key, z, subspaces)
  return shuffle.permute_each_subspace(z, permutations, subspaces)


def mi_losses(adversary: Adversary, key: chex.PRNGKey, z: chex.Array,
              subspaces: Sequence[int], *,
              permutations: Optional[chex.Array] = None
              ) -> tuple[jax.Array, jax.Array]:
  """Adversarial losses for the unconditional ``I(z_1; ...; z_K)`` baseline.

  Scalars ``(encoder_loss, adversary_loss)``; with ``fake =
  marginal_shuffle(key, z, subspaces)``, ``r = adversary(z)`` and
  ``f = adversary(fake)``:

      adversary_loss = mean_i BCE(r_i, 1) + mean_i BCE(f_i, 0)
      encoder_loss   = mean_i BCE(f_i, 1) + mean_i BCE(r_i, 0)

  A discriminator at chance scores ``2 log 2``. ``permutations``: from
  :func:`cmi_jax.shuffle.marginal_permutations`.

  Example:
    >>> z = jax.random.normal(jax.random.key(0), (8, 4))
    >>> enc, adv = mi_losses(lambda x: x.sum(-1), jax.random.key(1), z, (2, 2))
  """
  fake = _marginal_fake(key, z, subspaces, permutations)

  def logits(codes):
    out = adversary(codes)
    _check_logits(out, z.shape[0], 'adversary')
    return out

  frozen, frozen_fake = jax.lax.stop_gradient((z, fake))
  encoder_loss = _real_fake_bce(logits(z), logits(fake), 0.0).mean()
  adversary_loss = _real_fake_bce(logits(frozen), logits(frozen_fake),
                                  1.0).mean()
  return encoder_loss, adversary_loss


def rbf_kernel(x: chex.Array, y: chex.Array,
               bandwidths: Sequence[float]) -> jax.Array:
  """``[N, M]``: ``sum_s exp(-||x_i - y_j||^2 / (2 s^2))``, s in bandwidths."""
  sq_dist = (jnp.sum(x**2, -1)[:, None] + jnp.sum(y**2, -1)[None, :]
             - 2.0 * x @ y.T)
  sq_dist = jnp.maximum(sq_dist, 0.0)
  scales = 1.0 / (2.0 * jnp.asarray(bandwidths, x.dtype) ** 2)
  return jnp.exp(-sq_dist[..., None] * scales).sum(-1)


def weighted_mmd2(x: chex.Array, y: chex.Array, weights: chex.Array,
                  bandwidths: Sequence[float]) -> jax.Array:
  """Biased ``MMD^2 = w^T K_xx w + w^T K_yy w - 2 w^T K_xy w``, a scalar.

  ``x``, ``y`` ``[B, D]`` share the weights ``w`` ``[B]`` (non-negative,
  summing to 1, or all 0 for an empty set); ``>= 0`` up to rounding.
  """
  def quad(a, b):
    return weights @ rbf_kernel(a, b, bandwidths) @ weights
  return quad(x, x) + quad(y, y) - 2.0 * quad(x, y)


# The reference's multi-scale list (its ``--mmd_full_sigmas=1``); its default
# is the single bandwidth 1.
FULL_BANDWIDTHS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, 2.0, 4.0, 8.0, 16.0)


def mmd_distance(mmd2: chex.Array) -> jax.Array:
  """``sqrt(max(MMD^2, 0))``, with gradient 0 (not inf) where ``MMD^2 <= 0``."""
  positive = mmd2 > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, mmd2, 1.0)), 0.0)


def cmi_mmd2(key: chex.PRNGKey, z: chex.Array, labels: chex.Array,
             subspaces: Sequence[int], num_classes: Sequence[int],
             bandwidths: Sequence[float] = (1.0,),
             block_size: Optional[int] = None) -> jax.Array:
  """Per-group biased ``MMD^2(z[s_k = c], fake_k[s_k = c])``, ``[K, G]``.

  Fakes of :func:`cmi_jax.conditional_shuffle`; the groups of a continuous
  attribute (count 0) are its blocks of ``block_size`` rows of close
  ``s_k``. G is the largest count of groups; entry ``[k, c]`` is 0 for an
  absent group and for ``c`` past attribute k's groups.
  """
  num_classes = _check_num_classes(num_classes, tuple(subspaces))
  fakes = shuffle.conditional_shuffle(key, z, labels, subspaces, num_classes,
                                      block_size)
  check_label_range(labels, num_classes)
  rows = []
  for k, member in enumerate(_group_members(labels, num_classes, block_size)):
    member = member.T.astype(z.dtype)  # [B, G]
    weights = member / jnp.maximum(member.sum(0), 1.0)
    rows.append(jax.vmap(weighted_mmd2, in_axes=(None, None, 1, None))(
        z, fakes[k], weights, bandwidths))
  return jnp.stack(rows)


def cmi_mmd_loss(key: chex.PRNGKey, z: chex.Array, labels: chex.Array,
                 subspaces: Sequence[int], num_classes: Sequence[int],
                 bandwidths: Sequence[float] = (1.0,),
                 block_size: Optional[int] = None) -> jax.Array:
  """MMD estimate of ``sum_k I(z_k; z_-k | s_k)``, minimised by the encoder.

  ``sum_k sum_c sqrt(max(MMD^2(z[s_k = c], fake_k[s_k = c]), 0))``, the
  per-group MMD (not its square, as the paper's code) of :func:`cmi_mmd2`: a
  scalar in units of the kernel's feature norm. ``bandwidths`` are in units
  of ``z`` (:data:`FULL_BANDWIDTHS` is the reference's multi-scale list).

  Example:
    >>> z = jax.random.normal(jax.random.key(0), (8, 4))
    >>> labels = jnp.array([[0, 1]] * 4 + [[1, 0]] * 4)
    >>> loss = cmi_mmd_loss(jax.random.key(1), z, labels, (2, 2), (2, 2))
    >>> bool(loss >= 0)
    True
  """
  return mmd_distance(cmi_mmd2(key, z, labels, subspaces, num_classes,
                               bandwidths, block_size)).sum()


def mi_mmd2(key: chex.PRNGKey, z: chex.Array, subspaces: Sequence[int],
            bandwidths: Sequence[float] = (1.0,)) -> jax.Array:
  """Biased ``MMD^2(z, marginal_shuffle(key, z, subspaces))``, a scalar."""
  fake = shuffle.marginal_shuffle(key, z, subspaces)
  weights = jnp.full((z.shape[0],), 1.0 / z.shape[0], z.dtype)
  return weighted_mmd2(z, fake, weights, bandwidths)


def mi_mmd_loss(key: chex.PRNGKey, z: chex.Array, subspaces: Sequence[int],
                bandwidths: Sequence[float] = (1.0,)) -> jax.Array:
  """``sqrt(max(MMD^2(z, marginal_shuffle(key, z, subspaces)), 0))``, a scalar.

  The unconditional :func:`cmi_mmd_loss`; :func:`mi_mmd2` is the square.

  Example:
    >>> z = jax.random.normal(jax.random.key(0), (8, 4))
    >>> loss = mi_mmd_loss(jax.random.key(1), z, (2, 2))
    >>> bool(loss >= 0)
    True
  """
  return mmd_distance(mi_mmd2(key, z, subspaces, bandwidths))


# On one-hot codes (squared distances 0 or 2) a median bandwidth can be 0.
ONE_HOT_KERNEL = functools.partial(kernels.gaussian, sigma2=1.0)


def _subspace_pairs(z: jax.Array, subspaces: Sequence[int]
                    ) -> list[tuple[jax.Array, jax.Array]]:
  """``(z_k, z_-k)`` for every subspace k: ``[B, D_k]`` and ``[B, D - D_k]``."""
  masks = shuffle.subspace_masks(subspaces)
  return [(z[:, mask], z[:, ~mask]) for mask in masks]


def _attribute_codes(labels: jax.Array, num_classes: Sequence[int],
                     columns: Sequence[int], dtype) -> jax.Array:
  """The codes of the attributes ``columns`` side by side, ``[B, sum_j C_j]``.

  A categorical attribute's one-hot code (C_j columns), a continuous one's
  value (1 column). A missing label is a row of zeros; callers mask such
  rows (:func:`cmi_jax.attributes.labelled`).
  """
  return jnp.concatenate([
      jnp.nan_to_num(labels[:, j:j + 1].astype(dtype))
      if num_classes[j] == attributes.CONTINUOUS
      else jax.nn.one_hot(attributes.class_column(labels, j), num_classes[j],
                          dtype=dtype)
      for j in columns], 1)


def _group_members(labels: jax.Array, num_classes: tuple[int, ...],
                   block_size: Optional[int]) -> jax.Array:
  """bool ``[K, G, B]``: row b is in group g of attribute k.

  Groups are classes, or blocks of ``block_size`` rows of close values for
  a continuous attribute (:func:`cmi_jax.shuffle.attribute_groups`); G is
  the largest count over the attributes.
  """
  groups = shuffle.attribute_groups(labels, num_classes, block_size)
  bound = shuffle.num_groups_bound(num_classes, labels.shape[0], block_size)
  return groups[:, None, :] == jnp.arange(bound)[None, :, None]


def hsic_cmi_loss(z: chex.Array, labels: chex.Array, subspaces: Sequence[int],
                  num_classes: Sequence[int],
                  kernel: kernels.Kernel = kernels.gaussian,
                  block_size: Optional[int] = None) -> jax.Array:
  """Class-conditional HSIC: ``sum_k I(z_k; z_-k | s_k)`` without an adversary.

      sum_k sum_c (n_kc / n_k) HSIC_u(z_k, z_-k | rows with s_k = c)

  with ``n_k`` the rows labelled for attribute k, ``n_kc`` those of class c
  and ``HSIC_u`` :func:`cmi_jax.kernels.hsic`'s unbiased estimator of the
  selected rows (``kernel`` on each side; the median bandwidth is that of
  the whole batch). A class with fewer than 4 rows, and a missing label,
  contributes 0. The estimate is 0 in expectation when ``z_k`` and ``z_-k``
  are independent given ``s_k`` and can be slightly negative. For a
  continuous attribute (count 0) the classes are blocks of ``block_size``
  rows of close ``s_k`` (:mod:`cmi_jax.shuffle`).

  Example:
    >>> z = jax.random.normal(jax.random.key(0), (16, 4))
    >>> labels = jnp.array([[0, 1], [1, 0]] * 8)
    >>> loss = hsic_cmi_loss(z, labels, (2, 2), (2, 2))
    >>> loss.shape
    ()
  """
  num_classes = _check_num_classes(num_classes, tuple(subspaces))
  members = _group_members(labels, num_classes, block_size)
  total = jnp.zeros((), z.dtype)
  for k, (z_k, z_rest) in enumerate(_subspace_pairs(z, subspaces)):
    k_own, k_rest = kernel(z_k), kernel(z_rest)
    member = members[k]  # [G, B]
    per_class = jax.vmap(lambda rows: kernels.hsic(  # pylint: disable=cell-var-from-loop
        k_own, k_rest, where=rows))(member)
    counts = member.sum(1).astype(z.dtype)
    total += jnp.dot(counts, per_class) / jnp.maximum(counts.sum(), 1)
  return total


def hscic_loss(z: chex.Array, labels: chex.Array, subspaces: Sequence[int],
               num_classes: Sequence[int], *, ridge: float,
               kernel: kernels.Kernel = kernels.gaussian,
               label_kernel: kernels.Kernel = ONE_HOT_KERNEL) -> jax.Array:
  """``sum_k HSCIC(z_k, z_-k | s_k)`` on the batch (Park & Muandet 2020).

  :func:`cmi_jax.kernels.hscic` with ``kernel`` on the codes and
  ``label_kernel`` on ``s_k`` (its one-hot code, or its value when it is
  continuous), its regression on the rows labelled for attribute k
  (``ridge`` its ridge); a scalar, 0 when ``z_k`` and ``z_-k`` are
  independent given ``s_k`` (as the batch grows).
  """
  num_classes = _check_num_classes(num_classes, tuple(subspaces))
  labelled = attributes.labelled(labels, num_classes)
  total = jnp.zeros((), z.dtype)
  for k, (z_k, z_rest) in enumerate(_subspace_pairs(z, subspaces)):
    k_s = label_kernel(_attribute_codes(labels, num_classes, [k], z.dtype))
    total += kernels.hscic(kernel(z_k), kernel(z_rest), k_s, ridge=ridge,
                           where=labelled[:, k])
  return total


def circe_regressions(heldout_labels: chex.Array, num_classes: Sequence[int],
                      *, ridge: float,
                      label_kernel: kernels.Kernel = ONE_HOT_KERNEL
                      ) -> tuple[kernels.CirceRegression, ...]:
  """The K held-out regressions of :func:`circe_loss`, one per attribute.

  Regression k maps the code of ``s_k`` (one-hot, or the value of a
  continuous attribute) to the features of the codes of ``s_-k``
  (:func:`cmi_jax.kernels.circe_regression`, ``label_kernel`` on both),
  fitted on the fully labelled rows of ``heldout_labels`` ``[M, K]``, which
  should be drawn apart from the training batches.
  """
  num_classes = tuple(num_classes)
  labels = np.asarray(heldout_labels)
  labels = labels[np.asarray(attributes.labelled(labels, num_classes)).all(1)]
  if len(labels) < 2:
    raise ValueError(f'the CIRCE regression needs fully labelled held-out '
                     f'rows; got {len(labels)} of {len(heldout_labels)}.')
  everyone = range(len(num_classes))
  return tuple(kernels.circe_regression(
      _attribute_codes(labels, num_classes, [k], jnp.float32),
      _attribute_codes(labels, num_classes,
                       [j for j in everyone if j != k], jnp.float32),
      ridge=ridge, kernel_y=label_kernel, kernel_z=label_kernel)
               for k in everyone)


def circe_loss(z: chex.Array, labels: chex.Array,
               regressions: Sequence[kernels.CirceRegression],
               subspaces: Sequence[int], num_classes: Sequence[int],
               kernel: kernels.Kernel = kernels.gaussian) -> jax.Array:
  """``sum_k CIRCE(z_k ⊥ s_-k | s_k)`` (Pogodin et al. 2023), a scalar.

  Head k's subspace must carry no information on the other attributes
  beyond what ``s_k`` explains: :func:`cmi_jax.kernels.circe` (unbiased,
  centred) with ``kernel`` on ``z_k``, ``Y`` the code of ``s_k`` and ``Z``
  the codes of ``s_-k`` (one-hot, or the value of a continuous attribute),
  on the fully labelled rows, with regression k of
  :func:`circe_regressions`.
  """
  num_classes = _check_num_classes(num_classes, tuple(subspaces))
  full = attributes.labelled(labels, num_classes).all(1)
  total = jnp.zeros((), z.dtype)
  for k, ((z_k, _), regression) in enumerate(
      zip(_subspace_pairs(z, subspaces), regressions)):
    others = [j for j in range(len(num_classes)) if j != k]
    total += kernels.circe(
        z_k, _attribute_codes(labels, num_classes, [k], z.dtype),
        _attribute_codes(labels, num_classes, others, z.dtype), regression,
        kernel_x=kernel, where=full)
  return total


def masked_cross_entropy(logits: chex.Array, labels: chex.Array) -> jax.Array:
  """Mean softmax CE of ``logits`` ``[B, C]`` over labelled rows (or 0)."""
  present = labels >= 0
  per_row = optax.softmax_cross_entropy_with_integer_labels(
      logits, jnp.where(present, labels, 0))
  return jnp.sum(jnp.where(present, per_row, 0.0)) / jnp.maximum(
      present.sum(), 1)


def masked_squared_error(predictions: chex.Array, values: chex.Array
                         ) -> jax.Array:
  """Mean ``(v - v_hat)^2`` of ``predictions`` ``[B]`` over the rows with a
  value (``values`` ``[B]``, NaN missing), or 0."""
  present = ~jnp.isnan(values)
  error = jnp.square(predictions - jnp.where(present, values, 0.0))
  return jnp.sum(jnp.where(present, error, 0.0)) / jnp.maximum(
      present.sum(), 1)
