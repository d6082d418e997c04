"""The wheel: what `pip install .` puts into site-packages."""

import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_wheel_holds_the_library_only(tmp_path):
  # Built from a copy, so the checkout gets no build/ or egg-info folder.
  source = tmp_path / 'src'
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
      '.venv', '.git', 'runs', 'workdirs', 'build', 'dist', '*.egg-info',
      '__pycache__', '.pytest_cache'))
  subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                  '--no-build-isolation', '-q', str(source), '-w',
                  str(tmp_path / 'dist')], check=True, capture_output=True)
  (wheel,) = (tmp_path / 'dist').glob('cmi_jax-*.whl')
  names = zipfile.ZipFile(wheel).namelist()
  top = {n.split('/')[0] for n in names}
  assert top == {'cmi_jax', wheel.name.split('-py')[0] + '.dist-info'}, top
  assert 'cmi_jax/py.typed' in names
  assert 'cmi_jax/losses.py' in names and 'cmi_jax/data/celeba.py' in names
  assert not [n for n in names if n.startswith(('experiments', 'tests'))]
  metadata = zipfile.ZipFile(wheel).read(
      next(n for n in names if n.endswith('METADATA'))).decode()
  assert 'Requires-Python: >=3.11' in metadata
  assert 'License: Apache-2.0' in metadata or 'Apache' in metadata
  assert any(n.endswith('LICENSE') for n in names)
