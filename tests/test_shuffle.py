"""Properties of the within-group and marginal permutations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import cmi_jax


def random_groups(seed, size=64, num_groups=3, missing=0.2):
  rng = np.random.default_rng(seed)
  groups = rng.integers(0, num_groups, size)
  groups[rng.random(size) < missing] = -1
  return jnp.asarray(groups, jnp.int32)


# None: the two-sort path; 3: the counting-sort path of the losses (groups
# in [-1, 3)); 5: a loose bound is as good.
NUM_GROUPS = (None, 3, 5)


@pytest.mark.parametrize('num_groups', NUM_GROUPS)
@pytest.mark.parametrize('seed', range(5))
def test_group_permutation_is_bijection_inside_groups(seed, num_groups):
  groups = random_groups(seed)
  perm = np.asarray(cmi_jax.group_permutation(jax.random.key(seed), groups,
                                              num_groups))
  assert perm.dtype == np.int32
  assert sorted(perm.tolist()) == list(range(len(groups)))
  np.testing.assert_array_equal(np.asarray(groups)[perm], groups)
  missing = np.flatnonzero(np.asarray(groups) == -1)
  np.testing.assert_array_equal(perm[missing], missing)


@pytest.mark.parametrize('num_groups', NUM_GROUPS)
def test_group_permutation_moves_rows(num_groups):
  groups = jnp.zeros(50, jnp.int32)
  perm = np.asarray(cmi_jax.group_permutation(jax.random.key(0), groups,
                                              num_groups))
  assert np.mean(perm != np.arange(50)) > 0.5


@pytest.mark.parametrize('num_groups', NUM_GROUPS)
def test_group_permutation_is_uniform_within_a_group(num_groups):
  # Group 0 has 3 rows (3! = 6 arrangements), spread among other groups.
  groups = jnp.array([0, 1, 0, -1, 1, 2, 0, 2], jnp.int32)
  keys = jax.random.split(jax.random.key(42), 6000)
  perms = np.asarray(jax.vmap(
      lambda k: cmi_jax.group_permutation(k, groups, num_groups))(keys))
  rows = perms[:, [0, 2, 6]]
  codes = rows[:, 0] * 100 + rows[:, 1] * 10 + rows[:, 2]
  _, counts = np.unique(codes, return_counts=True)
  assert len(counts) == 6
  assert stats.chisquare(counts).pvalue > 1e-3
  # The -1 row never moves; group 1 swaps about half the time.
  assert np.all(perms[:, 3] == 3)
  assert abs(np.mean(perms[:, 1] == 4) - 0.5) < 0.05


@pytest.mark.parametrize('seed', range(4))
def test_the_bound_is_a_hint_that_never_changes_the_draw(seed):
  groups = random_groups(seed)
  key = jax.random.key(seed)
  expected = cmi_jax.group_permutation(key, groups)
  for bound in (3, 5):
    np.testing.assert_array_equal(
        cmi_jax.group_permutation(key, groups, bound), expected)
  labels = jnp.stack([groups, random_groups(seed + 10)], axis=1)
  z = jax.random.normal(jax.random.key(1), (64, 4))
  np.testing.assert_array_equal(
      cmi_jax.conditional_shuffle(key, z, labels, (2, 2)),
      cmi_jax.conditional_shuffle(key, z, labels, (2, 2), (3, 3)))


def test_group_permutation_jit_matches_eager_and_vmaps():
  groups = random_groups(1)
  key = jax.random.key(3)
  eager = cmi_jax.group_permutation(key, groups)
  jitted = jax.jit(cmi_jax.group_permutation)(key, groups)
  np.testing.assert_array_equal(eager, jitted)
  batched = jax.vmap(cmi_jax.group_permutation, (0, None))(
      jax.random.split(key, 4), groups)
  assert batched.shape == (4, len(groups))
  assert len({tuple(p) for p in np.asarray(batched)}) > 1


def test_random_order_is_a_uniform_permutation():
  keys = jax.random.split(jax.random.key(7), 6000)
  orders = np.asarray(jax.vmap(lambda k: cmi_jax.shuffle.random_order(k, 3))(
      keys))
  assert orders.dtype == np.int32
  assert np.all(np.sort(orders, 1) == np.arange(3))
  _, counts = np.unique(orders @ np.array([100, 10, 1]), return_counts=True)
  assert len(counts) == 6
  assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize('shape, num_groups, match', [
    ((4,), 0, 'num_groups must be >= 1'),
    ((4, 2), None, r'groups must be \[B\]')], ids=['bound', 'groups_2d'])
def test_group_permutation_rejects_bad_inputs(shape, num_groups, match):
  with pytest.raises(ValueError, match=match):
    cmi_jax.group_permutation(jax.random.key(0), jnp.zeros(shape, jnp.int32),
                              num_groups)


@pytest.mark.parametrize('num_classes', [None, (2, 3)])
def test_conditional_shuffle_permutes_one_subspace_within_groups(num_classes):
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(40, 5)), jnp.float32)
  labels = jnp.asarray(
      np.stack([rng.integers(-1, 2, 40), rng.integers(0, 3, 40)], 1),
      jnp.int32)
  subspaces = (2, 3)
  fakes = np.asarray(cmi_jax.conditional_shuffle(jax.random.key(1), z,
                                                 labels, subspaces,
                                                 num_classes))
  assert fakes.shape == (2, 40, 5)
  z, labels = np.asarray(z), np.asarray(labels)
  for k, cols, other in ((0, slice(0, 2), slice(2, 5)),
                         (1, slice(2, 5), slice(0, 2))):
    np.testing.assert_array_equal(fakes[k][:, other], z[:, other])
    # Every permuted block is a row of z from the same group.
    for i in range(40):
      matches = np.flatnonzero(np.all(z[:, cols] == fakes[k][i, cols], 1))
      assert len(matches) == 1
      assert labels[matches[0], k] == labels[i, k]
      if labels[i, k] == -1:
        assert matches[0] == i
    assert np.any(fakes[k][:, cols] != z[:, cols])


def test_marginal_shuffle_permutes_each_subspace_independently():
  z = jnp.arange(60, dtype=jnp.float32).reshape(20, 3)
  fake = np.asarray(cmi_jax.marginal_shuffle(jax.random.key(0), z, (1, 2)))
  z = np.asarray(z)
  # Columns keep their multiset; the 2-dim subspace moves as a block.
  for d in range(3):
    np.testing.assert_array_equal(np.sort(fake[:, d]), z[:, d])
  np.testing.assert_array_equal(fake[:, 2] - fake[:, 1], 1.0)
  assert np.any(fake[:, 0] != fake[:, 1] - 1)


def test_shuffles_are_differentiable():
  z = jax.random.normal(jax.random.key(0), (16, 4))
  labels = jnp.zeros((16, 2), jnp.int32)
  grad = jax.grad(lambda z: jnp.sum(cmi_jax.conditional_shuffle(
      jax.random.key(1), z, labels, (2, 2)) ** 2))(z)
  # Each entry of z appears once in each of the K=2 fakes.
  np.testing.assert_allclose(grad, 4 * z, rtol=1e-6)
  grad = jax.grad(lambda z: jnp.sum(
      cmi_jax.marginal_shuffle(jax.random.key(1), z, (2, 2)) ** 2))(z)
  np.testing.assert_allclose(grad, 2 * z, rtol=1e-6)


@pytest.mark.parametrize('subspaces, match', [
    ((2, 3), r'summing to D.*\(2, 3\).*\(8, 4\)'),
    ((4, 0), 'positive ints'),
    ((), 'non-empty'),
])
def test_bad_subspaces(subspaces, match):
  z = jnp.zeros((8, 4))
  with pytest.raises(ValueError, match=match):
    cmi_jax.marginal_shuffle(jax.random.key(0), z, subspaces)


def test_bad_labels_shape_and_dtype():
  z = jnp.zeros((8, 4))
  with pytest.raises(ValueError,
                     match=r'labels must be integer \[8, 2\]; got int32'):
    cmi_jax.conditional_shuffle(jax.random.key(0), z,
                                jnp.zeros((8, 3), jnp.int32), (2, 2))
  with pytest.raises(ValueError,
                     match=r'labels must be integer \[8, 2\]; got float32'):
    cmi_jax.conditional_shuffle(jax.random.key(0), z, jnp.zeros((8, 2)),
                                (2, 2))


def continuous_values(seed, size=40, missing=0.2):
  rng = np.random.default_rng(seed)
  values = rng.normal(size=size).astype(np.float32)
  values[rng.random(size) < missing] = np.nan
  return values


@pytest.mark.parametrize('block_size', [1, 3, 4, 100])
@pytest.mark.parametrize('seed', range(3))
def test_block_groups_are_consecutive_blocks_of_sorted_values(seed,
                                                              block_size):
  values = continuous_values(seed)
  groups = np.asarray(cmi_jax.shuffle.block_groups(jnp.asarray(values),
                                                   block_size))
  labelled = ~np.isnan(values)
  np.testing.assert_array_equal(groups[~labelled], -1)
  # In value order the labelled rows read 0 x block_size, 1 x block_size...
  in_order = groups[labelled][np.argsort(values[labelled], kind='stable')]
  np.testing.assert_array_equal(
      in_order, np.arange(labelled.sum()) // block_size)


@pytest.mark.parametrize('seed', range(3))
def test_continuous_shuffle_moves_rows_only_within_their_block(seed):
  rng = np.random.default_rng(seed)
  values = continuous_values(seed)
  labels = np.stack([rng.integers(-1, 2, 40).astype(np.float32), values], 1)
  z = jnp.asarray(rng.normal(size=(40, 5)), jnp.float32)
  fakes = np.asarray(cmi_jax.conditional_shuffle(
      jax.random.key(seed), z, jnp.asarray(labels), (2, 3), (2, 0),
      block_size=4))
  perm = np.asarray(cmi_jax.shuffle.conditional_permutations(
      jax.random.key(seed), jnp.asarray(labels), (2, 0), 4))
  z = np.asarray(z)
  np.testing.assert_array_equal(fakes[1][:, 2:], z[perm[1], 2:])
  np.testing.assert_array_equal(fakes[1][:, :2], z[:, :2])
  blocks = np.asarray(cmi_jax.shuffle.block_groups(jnp.asarray(values), 4))
  np.testing.assert_array_equal(blocks[perm[1]], blocks)
  missing = np.flatnonzero(np.isnan(values))
  np.testing.assert_array_equal(perm[1][missing], missing)
  assert np.mean(perm[1] != np.arange(40)) > 0.5
  # The categorical column of float labels permutes within its classes.
  np.testing.assert_array_equal(labels[perm[0], 0], labels[:, 0])


def test_continuous_shuffle_is_uniform_inside_a_block():
  # 7 labelled values in blocks of 3: the 3 smallest rows (3! = 6 orders).
  values = jnp.array([0.5, -2.0, np.nan, 3.0, -1.0, 0.1, 2.0, -3.0],
                     jnp.float32)
  labels = values[:, None]
  keys = jax.random.split(jax.random.key(7), 6000)
  perms = np.asarray(jax.vmap(
      lambda k: cmi_jax.shuffle.conditional_permutations(k, labels, (0,),
                                                         3)[0])(keys))
  smallest = [7, 1, 4]  # -3, -2, -1
  codes = perms[:, smallest] @ np.array([100, 10, 1])
  _, counts = np.unique(codes, return_counts=True)
  assert len(counts) == 6
  assert stats.chisquare(counts).pvalue > 1e-3
  assert np.all(perms[:, 2] == 2)  # NaN: missing, never moves
  assert np.all(np.isin(perms[:, smallest], smallest))


def test_continuous_labels_need_float_and_the_count_0():
  z = jnp.zeros((4, 2))
  with pytest.raises(ValueError, match='labels must be integer'):
    cmi_jax.conditional_shuffle(jax.random.key(0), z,
                                jnp.zeros((4, 2), jnp.float32), (1, 1))
  with pytest.raises(ValueError, match='labels must be floating'):
    cmi_jax.conditional_shuffle(jax.random.key(0), z,
                                jnp.zeros((4, 2), jnp.int32), (1, 1), (2, 0))
