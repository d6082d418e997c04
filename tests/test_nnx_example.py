"""docs/examples/nnx_training.py: the CMI loss in a flax.nnx training loop."""

import math
import os
import runpy

import pytest

pytestmark = pytest.mark.usefixtures('fast_compiles')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, 'docs', 'examples', 'nnx_training.py')


def test_nnx_loop_trains_heads_and_keeps_the_conditional_adversary_at_chance():
  example = runpy.run_path(EXAMPLE)
  cmi = example['main'](steps=300, weight=1.0, seed=0)
  base = example['main'](steps=300, weight=0.0, seed=0)
  chance = 2 * 2 * 2 * math.log(2)  # 2 attributes x 2 classes x 2 log 2
  # Against the CMI encoder the discriminators cannot beat chance; against
  # the base encoder (lambda = 0) they can: its subspaces share more than
  # the labels explain.
  assert abs(cmi['adversary_loss'] - chance) < 0.4, cmi
  assert base['adversary_loss'] < chance - 0.8, base
  for result in (cmi, base):
    assert result['accuracy_at_0'] > 0.8, result
    assert result['accuracy_at_-0.8'] > 0.75, result
