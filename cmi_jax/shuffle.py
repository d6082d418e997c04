"""Permutations that turn a batch of codes into samples of a product distribution.

The adversarial estimators of (conditional) mutual information contrast the
batch ``z`` (samples of the joint) with a *fake* batch in which one subspace is
permuted across rows: over the whole batch for ``p(z_k) p(z_-k)``, or within
rows sharing the value of ``s_k`` for ``p(z_k | s_k) p(z_-k | s_k)``.

Everything here has fixed shapes and no Python loop over groups, so it runs
under ``jit``, ``vmap`` and ``grad`` (gradients flow through the gathered
values, not the integer permutations).
"""

from __future__ import annotations

from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np


def check_subspaces(z: chex.Array, subspaces: Sequence[int]) -> tuple[int, ...]:
  """Validates ``subspaces`` against codes ``z`` [B, D]; returns it as a tuple.

  Raises:
    ValueError: if ``z`` is not 2-D, a size is not a positive int, or the sizes
      do not sum to ``D``.
  """
  if jnp.ndim(z) != 2:
    raise ValueError(f'z must have shape [B, D]; got shape {jnp.shape(z)}.')
  subspaces = tuple(subspaces)
  if not subspaces or any(
      not isinstance(s, (int, np.integer)) or s < 1 for s in subspaces):
    raise ValueError(
        f'subspaces must be a non-empty tuple of positive ints (the sizes of '
        f'the contiguous subspaces of z); got {subspaces}.')
  if sum(subspaces) != z.shape[1]:
    raise ValueError(
        f'subspaces {subspaces} sum to {sum(subspaces)} but z has D='
        f'{z.shape[1]} columns; the sizes must sum to D.')
  return tuple(int(s) for s in subspaces)


def subspace_masks(subspaces: Sequence[int]) -> np.ndarray:
  """Boolean ``[K, D]`` mask; row k marks the columns of subspace k."""
  bounds = np.cumsum((0,) + tuple(subspaces))
  columns = np.arange(bounds[-1])
  return (columns >= bounds[:-1, None]) & (columns < bounds[1:, None])


def random_order(key: chex.PRNGKey, size: int) -> jax.Array:
  """A uniformly random permutation of ``range(size)`` in one sort, int32 ``[size]``.

  Rows are ordered by two independent uint32 draws (a 64-bit key), so ties,
  the only departure from uniformity, have probability below
  ``size**2 / 2**65`` (3e-12 at ``size = 10^4``). ``jax.random.permutation``
  guards against ties with repeated 32-bit sorts instead (two of them from
  about 2,000 rows on); on CPU a sort is the costly part of a shuffle.
  """
  bits = jax.random.bits(key, (2, size), jnp.uint32)
  return jnp.lexsort((bits[1], bits[0])).astype(jnp.int32)


def group_positions(groups: jax.Array, num_groups: int) -> jax.Array:
  """Position of every row in the stable order by group, int32 ``[B]``, no sort.

  A counting sort over the buckets ``-1 .. num_groups - 1`` (groups outside
  them give wrong positions), O(B * num_groups): a row's position is the
  number of rows in smaller groups plus the number of earlier rows of its own
  group.
  """
  member = groups[:, None] == jnp.arange(-1, num_groups)  # [B, G + 1]
  counts = member.sum(0)
  starts = jnp.cumsum(counts) - counts
  earlier = jnp.cumsum(member, axis=0) - 1
  return jnp.sum(jnp.where(member, starts + earlier, 0), axis=1,
                 dtype=jnp.int32)


def group_permutation(key: chex.PRNGKey, groups: chex.Array,
                      num_groups: int | None = None) -> jax.Array:
  """A uniformly random permutation that keeps every row inside its group.

  Returns ``perm`` with ``groups[perm] == groups``: row ``i`` of a permuted
  batch ``x[perm]`` comes from a row of the same group, and every
  within-group permutation is equally likely. Rows whose group is ``-1``
  (missing label) map to themselves.

  Construction: sorting the rows by ``(group, random key)`` lists each
  group's rows in a uniformly random order; pairing that list position by
  position with the rows in ``(group, index)`` order is a uniform random
  bijection inside each group. With ``num_groups`` the second list comes from
  a counting sort, O(B * num_groups), and the whole permutation costs one
  sort; without it, three sorts (the random ranks of
  ``jax.random.permutation``, then both orders), O(B log B) either way.

  Args:
    key: PRNG key.
    groups: int ``[B]`` group of every row, ``-1`` for rows to keep in place.
    num_groups: optional static bound: every group lies in
      ``[-1, num_groups)`` (e.g. the number of classes of a label). Groups
      outside it give a wrong permutation, so pass it only for validated
      labels.

  Returns:
    int32 ``[B]`` permutation.

  Example:
    >>> groups = jnp.array([0, 1, 0, -1, 1])
    >>> perm = group_permutation(jax.random.key(0), groups, num_groups=2)
    >>> bool(jnp.all(groups[perm] == groups))
    True
  """
  if jnp.ndim(groups) != 1:
    raise ValueError(f'groups must have shape [B]; got {jnp.shape(groups)}.')
  size = groups.shape[0]
  index = jnp.arange(size, dtype=jnp.int32)
  missing = groups == -1
  if num_groups is None:
    rank = jax.random.permutation(key, size).astype(jnp.int32)
    # Missing rows keep index order in both sorts, hence map to themselves.
    rank = jnp.where(missing, index, rank)
    in_order = jnp.lexsort((index, groups))
    shuffled = jnp.lexsort((rank, groups))
    return jnp.zeros(size, jnp.int32).at[in_order].set(
        shuffled.astype(jnp.int32))
  if isinstance(num_groups, bool) or not isinstance(
      num_groups, (int, np.integer)) or num_groups < 1:
    raise ValueError(f'num_groups must be a positive int (a static bound on '
                     f'the groups); got {num_groups!r}.')
  bits = jax.random.bits(key, (2, size), jnp.uint32)
  # Missing rows (group -1, first in both orders) keep index order.
  high = jnp.where(missing, jnp.uint32(0), bits[0])
  low = jnp.where(missing, index.astype(jnp.uint32), bits[1])
  shuffled = jnp.lexsort((low, high, groups)).astype(jnp.int32)
  # perm[i] = the row at i's position of the (group, index) order.
  return shuffled[group_positions(groups, int(num_groups))]


def _gather_columns(z: jax.Array, row_of_column: jax.Array) -> jax.Array:
  """``out[b, d] = z[row_of_column[b, d], d]`` for ``[B, D]`` indices."""
  return jnp.take_along_axis(z, row_of_column, axis=0)


def conditional_permutations(key: chex.PRNGKey, labels: chex.Array,
                             num_classes: Sequence[int] | None = None
                             ) -> jax.Array:
  """The row permutations of :func:`conditional_shuffle`, int32 ``[K, B]``.

  Row ``k`` is a :func:`group_permutation` of ``labels[:, k]`` drawn from
  ``jax.random.split(key, K)[k]``. They depend on the key and the labels
  only, so a training step can draw them once and share them between the
  encoder's term, the adversary's loss and the accuracy metrics (the loss
  functions' ``permutations`` argument); XLA does not merge repeated sorts.

  Args:
    key: PRNG key.
    labels: int ``[B, K]``, ``-1`` for missing.
    num_classes: optional K class counts (see :func:`conditional_shuffle`).
  """
  if jnp.ndim(labels) != 2:
    raise ValueError(f'labels must have shape [B, K]; got {jnp.shape(labels)}.')
  keys = jax.random.split(key, labels.shape[1])
  # One static bound serves every attribute (vmapped): the largest count.
  bound = None if num_classes is None else max(num_classes)
  return jax.vmap(lambda k, g: group_permutation(k, g, bound))(keys, labels.T)


def permute_one_subspace(z: chex.Array, permutations: chex.Array,
                         subspaces: Sequence[int]) -> jax.Array:
  """Fake batch ``k`` = ``z`` with subspace ``k``'s columns in row order ``permutations[k]``.

  Args:
    z: float ``[B, D]`` codes.
    permutations: int ``[K, B]``, e.g. :func:`conditional_permutations`.
    subspaces: K positive ints summing to ``D``.

  Returns:
    ``[K, B, D]``, same dtype as ``z``.
  """
  subspaces = check_subspaces(z, subspaces)
  _check_permutations(permutations, z, subspaces)
  masks = jnp.asarray(subspace_masks(subspaces))  # [K, D]
  identity = jnp.arange(z.shape[0])[:, None]
  rows = jnp.where(masks[:, None, :], permutations[:, :, None], identity[None])
  return jax.vmap(_gather_columns, in_axes=(None, 0))(z, rows)


def conditional_shuffle(key: chex.PRNGKey, z: chex.Array, labels: chex.Array,
                        subspaces: Sequence[int],
                        num_classes: Sequence[int] | None = None) -> jax.Array:
  """Fake batches for the conditional MI terms ``I(z_k; z_-k | s_k)``.

  Fake batch ``k`` is ``z`` with the columns of subspace ``k`` permuted among
  the rows that share ``labels[:, k]`` (one :func:`group_permutation` per
  attribute, from ``jax.random.split(key, K)``); rows whose label ``k`` is
  ``-1`` keep their own values. Its rows follow ``p(z_k | s_k) p(z_-k | s_k)``.
  Equals ``permute_one_subspace(z, conditional_permutations(key, labels,
  num_classes), subspaces)``.

  Args:
    key: PRNG key.
    z: float ``[B, D]`` codes.
    labels: int ``[B, K]`` class of every attribute, ``-1`` for missing.
    subspaces: K positive ints summing to ``D``.
    num_classes: optional K class counts (labels of attribute ``k`` lie in
      ``[-1, num_classes[k])``); one sort per attribute instead of three
      (see :func:`group_permutation`). The losses pass it.

  Returns:
    ``[K, B, D]`` fake batches, same dtype as ``z``.
  """
  subspaces = check_subspaces(z, subspaces)
  check_labels(labels, z, subspaces)
  return permute_one_subspace(
      z, conditional_permutations(key, labels, num_classes), subspaces)


def marginal_permutations(key: chex.PRNGKey, batch_size: int,
                          num_subspaces: int) -> jax.Array:
  """The row permutations of :func:`marginal_shuffle`, int32 ``[K, B]``.

  One :func:`random_order` per subspace, from ``jax.random.split(key, K)``.
  """
  keys = jax.random.split(key, num_subspaces)
  return jax.vmap(random_order, in_axes=(0, None))(keys, batch_size)


def permute_each_subspace(z: chex.Array, permutations: chex.Array,
                          subspaces: Sequence[int]) -> jax.Array:
  """``z`` with subspace ``k``'s columns in row order ``permutations[k]``, ``[B, D]``."""
  subspaces = check_subspaces(z, subspaces)
  _check_permutations(permutations, z, subspaces)
  column_owner = np.repeat(np.arange(len(subspaces)), subspaces)  # [D]
  return _gather_columns(z, permutations[column_owner].T)


def marginal_shuffle(key: chex.PRNGKey, z: chex.Array,
                     subspaces: Sequence[int]) -> jax.Array:
  """A fake batch from the product of the subspace marginals ``prod_k p(z_k)``.

  Every subspace is permuted independently over the whole batch (one
  :func:`random_order` per subspace, from ``jax.random.split(key, K)``):
  ``permute_each_subspace(z, marginal_permutations(key, B, K), subspaces)``.

  Args:
    key: PRNG key.
    z: float ``[B, D]`` codes.
    subspaces: K positive ints summing to ``D``.

  Returns:
    ``[B, D]`` fake batch.
  """
  subspaces = check_subspaces(z, subspaces)
  return permute_each_subspace(
      z, marginal_permutations(key, z.shape[0], len(subspaces)), subspaces)


def _check_permutations(permutations: chex.Array, z: chex.Array,
                        subspaces: tuple[int, ...]) -> None:
  if jnp.shape(permutations) != (len(subspaces), z.shape[0]) or (
      not jnp.issubdtype(jnp.result_type(permutations), jnp.integer)):
    raise ValueError(
        f'permutations must be int [K, B] = [{len(subspaces)}, {z.shape[0]}] '
        f'(one row order per subspace); got {jnp.result_type(permutations)} '
        f'of shape {jnp.shape(permutations)}.')


def check_labels(labels: chex.Array, z: chex.Array,
                 subspaces: tuple[int, ...]) -> None:
  """Raises ValueError unless ``labels`` is int ``[B, K]`` matching ``z`` and ``subspaces``."""
  if jnp.ndim(labels) != 2 or labels.shape != (z.shape[0], len(subspaces)):
    raise ValueError(
        f'labels must have shape [B, K] = [{z.shape[0]}, {len(subspaces)}] '
        f'(one column per subspace); got {jnp.shape(labels)}.')
  if not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(
        f'labels must be integers (class index, -1 for missing); got dtype '
        f'{labels.dtype}.')
