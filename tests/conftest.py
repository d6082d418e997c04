"""Test-wide setup: 8 fake CPU devices, so multi-device code runs everywhere.

XLA reads the flag when JAX first initialises its backend, so it is set here,
before any test module imports JAX.
"""

import os

import pytest

_FLAG = '--xla_force_host_platform_device_count=8'
if 'xla_force_host_platform_device_count' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _FLAG).strip()
# TensorFlow (pulled in by TFDS) must never claim an accelerator JAX uses.
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


@pytest.fixture(scope='module')
def fast_compiles():
  """Skips most XLA optimisation passes while a module of tiny models runs.

  Use as ``pytestmark = pytest.mark.usefixtures('fast_compiles')``; the
  setting is restored afterwards.
  """
  import jax  # pylint: disable=g-import-not-at-top  # After XLA_FLAGS.
  previous = jax.config.read('jax_disable_most_optimizations')
  jax.config.update('jax_disable_most_optimizations', True)
  yield
  jax.config.update('jax_disable_most_optimizations', previous)


@pytest.fixture(scope='session')
def fake_celeba(tmp_path_factory):
  """A fake CelebA of ``celeba_fixture.NUM_FAKE`` images (seed 0)."""
  import celeba_fixture  # pylint: disable=g-import-not-at-top
  return celeba_fixture.write_fake_celeba(
      tmp_path_factory.mktemp('celeba_dir'), celeba_fixture.NUM_FAKE, seed=0)
