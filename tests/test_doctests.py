"""The examples in the public loss and shuffle docstrings run and print what they say."""

import doctest

import pytest

from cmi_jax import kernels, losses, objectives, shuffle


# The examples run eagerly, each primitive compiled apart: skip XLA's passes.
@pytest.mark.usefixtures('fast_compiles')
@pytest.mark.parametrize('module', [kernels, losses, shuffle, objectives],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
  result = doctest.testmod(
      module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
      verbose=False)
  assert result.attempted > 0, f'{module.__name__} has no example to run'
  assert result.failed == 0, f'{result.failed} example(s) of {module.__name__}'
