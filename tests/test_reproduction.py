"""Regression test of the paper's effect on real data, with a fixed seed.

Correlated two-item Fashion-MNIST (T-shirt/top = 0 vs Trouser = 1, the real
IDX files of Debian's dataset-fashion-mnist), train correlation 0.9,
occlusion noise 0.8, the paper's learning rates x 10 (lr_scale, for a 5,000
step budget), seed 0.

Measured with the corrected (paper-scale) losses, seeds 0, 1, 2 (data
split, initialisation and shuffles), margin = CMI - Base anti-correlated
test accuracy (Base at 0.520-0.521); 1 device and 8 fake devices agree:

==========  ======  ======  ======
steps       seed 0  seed 1  seed 2
==========  ======  ======  ======
5,000       0.043   0.033   0.005
7,500       0.074   0.063   0.004
10,000      0.139   0.102   0.021
==========  ======  ======  ======

The adversarial game is chaotic and, at this short budget, seed-dependent
(seed 2 barely moves); the test pins seed 0, whose 5,000-step margin is
about twice the asserted 0.02. docs/results.md holds the over-seed claim at
the paper's full budget.
"""

import os

import pytest
from reproduction_protocol import FASHION_DIR, accuracies_at, fashion_splits

MARGIN = 0.02


def final_accuracies(objective, splits):
  """Accuracies after the test's budget of ``EPOCHS * STEPS_PER_EPOCH`` steps."""
  (_, accuracies), = accuracies_at(objective, splits)
  return accuracies


@pytest.mark.skipif(not os.path.isdir(FASHION_DIR),
                    reason='needs Debian dataset-fashion-mnist (.ci/run '
                    'installs it)')
def test_cmi_beats_base_on_the_anti_correlated_test_set():
  splits = fashion_splits()
  base = final_accuracies('base', splits)
  cmi = final_accuracies('cmi', splits)
  # Base exploits the correlation: far better on val (c = 0.9) than on the
  # anti-correlated test set; CMI closes part of that gap.
  assert base['val'] - base['test_anti'] > 0.2, base
  assert cmi['test_anti'] - base['test_anti'] > MARGIN, (base, cmi)
