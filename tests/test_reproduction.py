"""Regression test of the paper's effect on real data, with a fixed seed.

The protocol of experiments/reproduction.py: T-shirt/top vs Trouser (Debian's
Fashion-MNIST IDX files), train correlation 0.9, occlusion noise 0.8, the
paper's learning rates x 10 for a 5,000-step budget, seed 0. At this budget
the margin (CMI - Base accuracy on the anti-correlated test set) depends on
the seed; seed 0's is about twice ``MARGIN``. docs/results.md holds the
over-seed claim at the paper's full budget.
"""

import os

import pytest

from experiments.reproduction import FASHION_DIR, accuracies_at, fashion_splits

MARGIN = 0.02


def final_accuracies(objective, splits):
  (_, accuracies), = accuracies_at(objective, splits)
  return accuracies


@pytest.mark.slow  # Two 5,000-step runs: the long-run check of the suite.
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
