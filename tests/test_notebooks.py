"""The notebooks run top to bottom in their fast mode and say what they claim.

Each runs in a fresh ``python3`` kernel of this interpreter with
``CMI_JAX_FAST=1`` (smaller steps and sizes) and ``TMPDIR`` in the test's
temporary directory (the notebooks write through ``tempfile``). A probe cell
appended to the notebook prints the checked values as JSON, so the notebooks
stay free of test code.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / 'notebooks'
CELL_TIMEOUT = 900  # seconds
MARKER = 'NOTEBOOK-PROBE:'


def execute(name: str, probe: str, tmp_path: pathlib.Path) -> dict:
  """Runs ``notebooks/<name>`` plus ``probe``; returns the probe's JSON.

  ``probe`` is an expression evaluated in the notebook's namespace after
  its last cell; it must give a JSON-serialisable value.
  """
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  assert_stripped(nb, name)
  nb.cells.append(nbformat.v4.new_code_cell(
      'import json as _json, sys as _sys\n'
      f'print({MARKER!r} + _json.dumps({{"prefix": _sys.prefix, '
      f'"value": {probe}}}, default=float))'))
  env = dict(os.environ)
  env.update({'CMI_JAX_FAST': '1', 'TMPDIR': str(tmp_path)})
  # One CPU device is what a reader's laptop has; the fake devices of
  # conftest.py are for the multi-device tests.
  env.pop('XLA_FLAGS', None)
  client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name='python3',
                          resources={'metadata': {'path': str(NOTEBOOKS)}})
  client.execute(env=env)
  for i, cell in enumerate(nb.cells):
    for output in cell.get('outputs', []):
      assert output.output_type != 'error', (
          f'{name}, cell {i}: {output.ename}: {output.evalue}')
  text = ''.join(o.get('text', '') for o in nb.cells[-1].outputs
                 if o.output_type == 'stream')
  line = next(l for l in text.splitlines() if l.startswith(MARKER))
  result = json.loads(line[len(MARKER):])
  # The kernel must be this virtual environment's interpreter.
  assert os.path.realpath(result['prefix']) == os.path.realpath(sys.prefix)
  return result['value']


def assert_stripped(nb, name: str) -> None:
  """Notebooks are committed without outputs."""
  for i, cell in enumerate(nb.cells):
    if cell.cell_type == 'code':
      assert not cell.outputs and cell.execution_count is None, (
          f'{name}, cell {i} holds outputs; save the notebook stripped.')


def assert_accuracy(value, what: str) -> None:
  assert isinstance(value, float) and 0.0 <= value <= 1.0, (what, value)


@pytest.mark.parametrize('name', sorted(p.name for p in
                                        NOTEBOOKS.glob('*.ipynb')))
def test_notebooks_are_stripped_and_read_the_fast_switch(name):
  nb = nbformat.read(NOTEBOOKS / name, as_version=4)
  assert_stripped(nb, name)
  source = '\n'.join(c.source for c in nb.cells if c.cell_type == 'code')
  assert "os.environ.get('CMI_JAX_FAST')" in source, name


def test_quickstart(tmp_path):
  value = execute(
      'quickstart.ipynb',
      '{"accuracy": accuracy, "engine": engine_accuracy, '
      '"adversary_loss": {k: float(np.mean(v[-20:])) for k, v in '
      'adversary_history.items()}, "chance": chance}', tmp_path)
  for model in ('base', 'cmi'):
    assert set(value['accuracy'][model]) == {'val', 'test_anti',
                                             'test_uncorr'}
    for split, acc in value['accuracy'][model].items():
      assert_accuracy(acc, f'{model} {split}')
  assert_accuracy(value['accuracy']['cmi']['test_anti'], 'cmi anti')
  for split in ('val', 'test_anti', 'test_uncorr'):
    assert_accuracy(value['engine'][split], f'engine {split}')
  # Two binary attributes, two classes each, 2 log 2 a class at chance.
  assert math.isclose(value['chance'], 8 * math.log(2))
  assert abs(value['adversary_loss']['cmi'] - value['chance']) < 0.5
  # Against the base codes the discriminators win, the base model leans on
  # the shortcut, and the engine's CMI model loses less accuracy under the
  # shift. 500 adversarial steps amplify float rounding, so the size of the
  # CMI model's gain depends on the CPU (fast mode, seed 0, printed: base val
  # - anti 0.302 on both machines seen; the engine's CMI 0.054 on one and
  # 0.230 on another): the bound is a 0.05 smaller drop, not a ratio.
  assert value['adversary_loss']['base'] < value['chance'] - 2.0
  base = value['accuracy']['base']
  assert base['val'] - base['test_anti'] > 0.2, base
  engine = value['engine']
  assert (engine['val'] - engine['test_anti']
          < base['val'] - base['test_anti'] - 0.05), (engine, base)


@pytest.mark.slow
def test_theory(tmp_path):
  value = execute(
      'theory.ipynb',
      '{"table": table, "cells": [{k: c[k] for k in ("objective", '
      '"train_accuracy", "uncorrelated_accuracy", "min_accuracy")} '
      'for c in cells]}', tmp_path)
  table = value['table']
  assert set(table) == {'regression', 'mi0', 'cmi0', 'reference'}
  # The claim of Table 1: under correlation shift CMI=0 loses less than the
  # plain regression, which exploits the training correlation.
  assert table['cmi0']['test_mse'] < table['regression']['test_mse']
  assert {c['objective'] for c in value['cells']} == {'base', 'cmi'}
  for cell in value['cells']:
    for key in ('train_accuracy', 'uncorrelated_accuracy', 'min_accuracy'):
      assert_accuracy(cell[key], f"{cell['objective']} {key}")


def test_multi_digit_results(tmp_path):
  value = execute(
      'multi_digit_results.ipynb',
      '{"rows": len(table), "restored": restored["accuracy"], '
      '"logged": logged["accuracy"], "same_data": same_data, '
      '"figure": figure_path}', tmp_path)
  assert value['rows'] >= 1
  assert_accuracy(value['restored'], 'restored test_anti')
  if value['same_data']:
    # The restored checkpoint on the rebuilt split reproduces the logged
    # accuracy of the run's last epoch.
    np.testing.assert_allclose(value['restored'], value['logged'], atol=1e-6)
  assert value['figure'].startswith(str(tmp_path))


@pytest.mark.slow
def test_celeba(tmp_path):
  value = execute(
      'celeba.ipynb',
      '{"accuracy": {s: r["accuracy"] for s, r in '
      'results["final"]["eval"].items()}, "scores": scores, '
      '"counts": {k: np.asarray(v).tolist() for k, v in '
      'data["joint_counts"].items()}}', tmp_path)
  for split, acc in value['accuracy'].items():
    assert_accuracy(acc, split)
  assert set(value['accuracy']) == {'train_eval', 'val', 'test_anti',
                                    'test_uncorr'}
  for name in ('dci/disentanglement', 'mig/mig', 'sap/sap'):
    assert np.isfinite(value['scores'][name]), name
  # The uncorrelated test split is balanced over the four combinations.
  uncorr = np.asarray(value['counts']['test_uncorr'])
  assert uncorr.min() == uncorr.max() > 0
