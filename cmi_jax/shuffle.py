"""Permutations that turn codes into samples of a product distribution.

A *fake* batch permutes subspaces of the codes ``z`` ``[B, D]`` across rows:
over the whole batch for ``prod_k p(z_k)``, or within rows sharing ``s_k`` for
``p(z_k | s_k) p(z_-k | s_k)``. ``subspaces`` holds K positive ints summing
to ``D``; ``labels`` is ``[B, K]``: int classes, ``-1`` for missing. Shapes
are fixed, so everything runs under ``jit``, ``vmap`` and ``grad`` (gradients
flow through the gathered values).

**Continuous attributes.** A class count of 0
(:data:`cmi_jax.attributes.CONTINUOUS`) declares attribute k real-valued:
``labels`` is then float, with ``NaN`` for missing (the categorical columns
hold whole numbers, ``-1`` missing). No two rows
share a real ``s_k``, so "rows with the same ``s_k``" becomes "rows with
close ``s_k``": the labelled rows, sorted by ``s_k``, fall into consecutive
blocks of ``block_size`` rows (the last may be smaller), and ``z_k`` is
permuted within each block (:func:`block_groups`). A fake row then pairs
``z_k`` with the ``z_-k`` of a row whose ``s_k`` differs by at most the
block's range, so the fake follows ``p(z_k | s_k in block) p(z_-k | s_k in
block)``: biased towards the unconditional product by how much ``s_k``
moves inside a block, and exact as the blocks narrow. Narrow blocks leave
few rows to permute (``block_size = 1`` permutes nothing); with B labelled
rows a block spans about ``block_size / B`` of the distribution of ``s_k``,
so keeping the bias fixed as the batch grows means ``block_size``
proportional to B, and keeping the fake's diversity means it grows too: the
default, :func:`default_block_size`, is ``round(sqrt(B))``, which narrows
the blocks (``B^-1/2`` of the range) while their size grows.
"""

from __future__ import annotations

from typing import Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from cmi_jax import attributes
from cmi_jax import validate


def check_subspaces(z: chex.Array, subspaces: Sequence[int]) -> tuple[int, ...]:
  """Validates ``subspaces`` against ``z`` [B, D]; returns it as a tuple."""
  subspaces = tuple(subspaces)
  if jnp.ndim(z) != 2 or not subspaces or any(
      not isinstance(s, (int, np.integer)) or s < 1 for s in subspaces
  ) or sum(subspaces) != z.shape[1]:
    raise ValueError(
        'subspaces must be a non-empty tuple of positive ints summing to D, '
        f'the columns of z [B, D]; got {subspaces} and z of shape '
        f'{jnp.shape(z)}.')
  return tuple(int(s) for s in subspaces)


def subspace_masks(subspaces: Sequence[int]) -> np.ndarray:
  """Boolean ``[K, D]`` mask; row k marks the columns of subspace k."""
  bounds = np.cumsum((0,) + tuple(subspaces))
  columns = np.arange(bounds[-1])
  return (columns >= bounds[:-1, None]) & (columns < bounds[1:, None])


def default_block_size(batch_size: int) -> int:
  """``max(2, round(sqrt(batch_size)))`` rows per block of a continuous s_k."""
  return max(2, int(round(float(np.sqrt(batch_size)))))


def _block_size(batch_size: int, block_size: int | None) -> int:
  return default_block_size(batch_size) if block_size is None else block_size


def block_groups(values: chex.Array, block_size: int) -> jax.Array:
  """Blocks of ``block_size`` rows of close ``values``, int32 ``[B]``.

  The rows with a value (float ``values`` ``[B]``; ``NaN``: missing, group
  ``-1``), in the order of their values (ties by index), form groups 0, 1,
  ... of ``block_size`` consecutive rows each; the last group may be
  smaller.

  Example:
    >>> block_groups(jnp.array([0.3, jnp.nan, -1.0, 2.0, 0.1]), 2).tolist()
    [1, -1, 0, 1, 0]
  """
  validate.arrays('', {'values': (values, 'floating [B]')})
  block_size = validate.integer(block_size, 'block_size', 1)
  missing = jnp.isnan(values)
  order = jnp.lexsort((jnp.where(missing, 0, values), missing))
  rank = jnp.zeros(values.shape[0], jnp.int32).at[order].set(
      jnp.arange(values.shape[0], dtype=jnp.int32))
  return jnp.where(missing, -1, rank // block_size).astype(jnp.int32)


def attribute_groups(labels: chex.Array, num_classes: Sequence[int],
                     block_size: int | None = None) -> jax.Array:
  """Each attribute's groups of rows, int32 ``[K, B]``.

  A categorical attribute's groups are its classes; a continuous one's
  (``num_classes[k] == attributes.CONTINUOUS``) its :func:`block_groups` of
  ``block_size`` (default :func:`default_block_size` of B).
  """
  block_size = _block_size(labels.shape[0], block_size)
  return jnp.stack([
      block_groups(labels[:, k], block_size) if n == attributes.CONTINUOUS
      else labels[:, k].astype(jnp.int32)
      for k, n in enumerate(num_classes)])


def num_groups_bound(num_classes: Sequence[int], batch_size: int,
                     block_size: int | None = None) -> int:
  """A static bound on :func:`attribute_groups` (classes or blocks)."""
  block_size = _block_size(batch_size, block_size)
  return max(-(-batch_size // block_size) if n == attributes.CONTINUOUS
             else int(n) for n in num_classes)


def random_order(key: chex.PRNGKey, size: int) -> jax.Array:
  """A uniformly random permutation of ``range(size)`` (one sort), int32.

  The sort key is 64 random bits, so ties, the only departure from
  uniformity, have probability below ``size**2 / 2**65``.
  """
  bits = jax.random.bits(key, (2, size), jnp.uint32)
  return jnp.lexsort((bits[1], bits[0])).astype(jnp.int32)


def group_positions(groups: jax.Array, num_groups: int) -> jax.Array:
  """Position of every row in the stable order by group, int32 ``[B]``.

  A counting sort; groups outside ``[-1, num_groups)`` give wrong positions.
  """
  member = groups[:, None] == jnp.arange(-1, num_groups)  # [B, G + 1]
  counts = member.sum(0)
  starts = jnp.cumsum(counts) - counts
  earlier = jnp.cumsum(member, axis=0) - 1
  return jnp.sum(jnp.where(member, starts + earlier, 0), axis=1,
                 dtype=jnp.int32)


def group_permutation(key: chex.PRNGKey, groups: chex.Array,
                      num_groups: int | None = None) -> jax.Array:
  """A uniformly random int32 ``[B]`` permutation keeping rows in their group.

  ``groups[perm] == groups`` for int ``groups`` ``[B]``, every within-group
  permutation equally likely; rows of group ``-1`` map to themselves. Rows
  sorted by ``(group, random key)``, paired position by position with rows
  in ``(group, index)`` order, give a uniform bijection inside each group.

  Args:
    num_groups: optional static bound, every group in ``[-1, num_groups)``;
      the ``(group, index)`` order then comes from a counting sort instead of
      a second sort. It selects an algorithm only: the same ``key`` gives the
      same permutation with or without it. Groups outside it give a wrong
      permutation.

  Example:
    >>> groups = jnp.array([0, 1, 0, -1, 1])
    >>> perm = group_permutation(jax.random.key(0), groups, num_groups=2)
    >>> bool(jnp.all(groups[perm] == groups))
    True
  """
  validate.arrays('', {'groups': (groups, '[B]')})
  size = groups.shape[0]
  index = jnp.arange(size, dtype=jnp.int32)
  missing = groups == -1
  bits = jax.random.bits(key, (2, size), jnp.uint32)
  # Missing rows (group -1, first in both orders) keep index order.
  high = jnp.where(missing, jnp.uint32(0), bits[0])
  low = jnp.where(missing, index.astype(jnp.uint32), bits[1])
  shuffled = jnp.lexsort((low, high, groups)).astype(jnp.int32)
  if num_groups is None:
    in_order = jnp.lexsort((index, groups))
    return jnp.zeros(size, jnp.int32).at[in_order].set(shuffled)
  num_groups = validate.integer(num_groups, 'num_groups', 1,
                                hint='It is a static bound on the groups.')
  # perm[i] = the row at i's position of the (group, index) order.
  return shuffled[group_positions(groups, num_groups)]


def _gather_columns(z: jax.Array, row_of_column: jax.Array) -> jax.Array:
  """``out[b, d] = z[row_of_column[b, d], d]`` for ``[B, D]`` indices."""
  return jnp.take_along_axis(z, row_of_column, axis=0)


def conditional_permutations(key: chex.PRNGKey, labels: chex.Array,
                             num_classes: Sequence[int] | None = None,
                             block_size: int | None = None) -> jax.Array:
  """The row permutations of :func:`conditional_shuffle`, int32 ``[K, B]``.

  Row ``k`` is a :func:`group_permutation` of attribute k's groups
  (:func:`attribute_groups`: its classes, or blocks of ``block_size`` rows
  of close values for a continuous one) from ``jax.random.split(key, K)[k]``.
  """
  validate.arrays('', {'labels': (labels, '[B, K]')})
  keys = jax.random.split(key, labels.shape[1])
  if num_classes is None:
    return jax.vmap(group_permutation)(keys, labels.T)
  groups = attribute_groups(labels, num_classes, block_size)
  # One static bound serves every attribute (vmapped): the largest count.
  bound = num_groups_bound(num_classes, labels.shape[0], block_size)
  return jax.vmap(lambda k, g: group_permutation(k, g, bound))(keys, groups)


def permute_one_subspace(z: chex.Array, permutations: chex.Array,
                         subspaces: Sequence[int]) -> jax.Array:
  """``[K, B, D]``: fake ``k`` is ``z`` with subspace ``k`` permuted.

  Subspace ``k`` takes row order ``permutations[k]`` (int ``[K, B]``, e.g.
  :func:`conditional_permutations`).
  """
  subspaces = check_subspaces(z, subspaces)
  _check_permutations(permutations, z, subspaces)
  masks = jnp.asarray(subspace_masks(subspaces))  # [K, D]
  identity = jnp.arange(z.shape[0])[:, None]
  rows = jnp.where(masks[:, None, :], permutations[:, :, None], identity[None])
  return jax.vmap(_gather_columns, in_axes=(None, 0))(z, rows)


def conditional_shuffle(key: chex.PRNGKey, z: chex.Array, labels: chex.Array,
                        subspaces: Sequence[int],
                        num_classes: Sequence[int] | None = None,
                        block_size: int | None = None) -> jax.Array:
  """``[K, B, D]`` fake batches for the terms ``I(z_k; z_-k | s_k)``.

  Fake ``k`` is ``z`` with subspace ``k`` permuted among the rows sharing
  ``labels[:, k]`` (rows labelled ``-1`` keep theirs): ``permute_one_subspace(z,
  conditional_permutations(key, labels, num_classes, block_size),
  subspaces)``.

  Args:
    num_classes: optional K class counts bounding the labels
      (``num_groups`` of :func:`group_permutation`); needed for continuous
      attributes (count 0, float labels, NaN missing; the module
      docstring).
    block_size: rows per block of a continuous attribute (default
      :func:`default_block_size`).
  """
  subspaces = check_subspaces(z, subspaces)
  check_labels(labels, z, subspaces, num_classes)
  return permute_one_subspace(
      z, conditional_permutations(key, labels, num_classes, block_size),
      subspaces)


def marginal_permutations(key: chex.PRNGKey, batch_size: int,
                          num_subspaces: int) -> jax.Array:
  """One :func:`random_order` per subspace (``split(key, K)``), ``[K, B]``."""
  keys = jax.random.split(key, num_subspaces)
  return jax.vmap(random_order, in_axes=(0, None))(keys, batch_size)


def permute_each_subspace(z: chex.Array, permutations: chex.Array,
                          subspaces: Sequence[int]) -> jax.Array:
  """``[B, D]``: ``z`` with subspace ``k`` in row order ``permutations[k]``."""
  subspaces = check_subspaces(z, subspaces)
  _check_permutations(permutations, z, subspaces)
  column_owner = np.repeat(np.arange(len(subspaces)), subspaces)  # [D]
  return _gather_columns(z, permutations[column_owner].T)


def marginal_shuffle(key: chex.PRNGKey, z: chex.Array,
                     subspaces: Sequence[int]) -> jax.Array:
  """A ``[B, D]`` fake batch from ``prod_k p(z_k)``: subspaces permuted apart.

  ``permute_each_subspace(z, marginal_permutations(key, B, K), subspaces)``.
  """
  subspaces = check_subspaces(z, subspaces)
  return permute_each_subspace(
      z, marginal_permutations(key, z.shape[0], len(subspaces)), subspaces)


def _check_permutations(permutations: chex.Array, z: chex.Array,
                        subspaces: tuple[int, ...]) -> None:
  spec = f'integer [{len(subspaces)}, {z.shape[0]}]'
  validate.arrays('', {'permutations': (permutations, spec)},
                  'One row order [B] per subspace (K rows).')


def check_labels(labels: chex.Array, z: chex.Array,
                 subspaces: tuple[int, ...],
                 num_classes: Sequence[int] | None = None) -> None:
  """Raises ValueError unless ``labels`` is ``[B, K]`` matching ``z``.

  Int, or float when ``num_classes`` declares a continuous attribute.
  """
  continuous = (num_classes is not None
                and attributes.any_continuous(num_classes))
  spec = (f'{"floating" if continuous else "integer"} '
          f'[{z.shape[0]}, {len(subspaces)}]')
  validate.arrays('', {'labels': (labels, spec)},
                  'One column per subspace: classes (-1: missing)'
                  + (', or values (NaN: missing) where num_classes is 0.'
                     if continuous else '.'))
