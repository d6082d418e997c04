"""A tiny fake CelebA in the official layout, for tests.

``write_fake_celeba`` writes 178x218 JPEG synthetic faces and the two
official text files::

  root/img_align_celeba/000001.jpg ...   (or root/img_align_celeba.zip)
  root/list_attr_celeba.txt              count, 40 names, "000001.jpg -1  1 ..."
  root/list_eval_partition.txt           "000001.jpg 0|1|2"

The faces follow their labels so that models can learn them: ``Male`` draws a
beard and short hair (else long hair at the sides), ``Smiling`` an upward
mouth arc (else a straight mouth), ``Eyeglasses`` frames around the eyes.
``Male`` and ``Smiling`` are balanced within every split (a quarter each, up
to one image), so every split can be sub-sampled to any correlation table its
size allows; the other 38 attributes are independent coin flips.

Import from a test as ``import celeba_fixture``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from typing import Sequence

import numpy as np
from PIL import Image
from PIL import ImageDraw

from cmi_jax.data.celeba_files import CELEBA_ATTRIBUTES

WIDTH, HEIGHT = 178, 218  # the aligned CelebA image size, in pixels


def _draw_face(rng: np.random.Generator, male: bool, smiling: bool,
               glasses: bool) -> Image.Image:
  """One 178x218 RGB synthetic face."""
  background = tuple(int(v) for v in rng.integers(40, 220, 3))
  image = Image.new('RGB', (WIDTH, HEIGHT), background)
  draw = ImageDraw.Draw(image)
  skin = tuple(int(v) for v in rng.integers([170, 120, 90], [250, 200, 170]))
  hair = tuple(int(v) for v in rng.integers(10, 120, 3))
  cx = WIDTH // 2 + int(rng.integers(-6, 7))
  cy = 118 + int(rng.integers(-6, 7))
  if not male:  # long hair behind the face
    draw.rectangle((cx - 58, cy - 70, cx + 58, cy + 70), fill=hair)
  draw.ellipse((cx - 45, cy - 60, cx + 45, cy + 60), fill=skin)
  draw.chord((cx - 46, cy - 66, cx + 46, cy - 10), 180, 360, fill=hair)
  if male:  # beard on the jaw
    draw.chord((cx - 44, cy - 10, cx + 44, cy + 60), 0, 180, fill=hair)
  eye_y = cy - 12
  for ex in (cx - 18, cx + 18):
    draw.ellipse((ex - 6, eye_y - 4, ex + 6, eye_y + 4), fill=(255, 255, 255))
    draw.ellipse((ex - 3, eye_y - 3, ex + 3, eye_y + 3), fill=(30, 20, 10))
    if glasses:
      draw.rectangle((ex - 12, eye_y - 9, ex + 12, eye_y + 9),
                     outline=(0, 0, 0), width=2)
  mouth_y = cy + 25
  lips = (150, 30, 40)
  if smiling:
    draw.arc((cx - 20, mouth_y - 14, cx + 20, mouth_y + 10), 20, 160,
             fill=lips, width=4)
  else:
    draw.line((cx - 16, mouth_y, cx + 16, mouth_y), fill=lips, width=4)
  # Sensor noise: no two images are identical.
  pixels = np.asarray(image, np.int16)
  pixels += rng.integers(-8, 9, pixels.shape, dtype=np.int16)
  return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_text(path: str, text: str) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    f.write(text)
  os.replace(tmp, path)


def write_fake_celeba(root: str | os.PathLike, num_images: int = 300,
                      seed: int = 0, zipped: bool = False,
                      split_fractions: Sequence[float] = (0.6, 0.2, 0.2)
                      ) -> str:
  """Writes a fake CelebA directory in the official layout.

  Args:
    root: the directory to fill (created if needed); becomes ``celeba_dir``.
    num_images: number of images (>= 12, so every split of the default
      fractions holds each Male/Smiling combination).
    seed: fixes attributes, partition and pixels.
    zipped: write ``img_align_celeba.zip`` (``img_align_celeba/000001.jpg
      ...``, as the official archive) instead of the directory.
    split_fractions: shares of train/validation/test (the real data has
      about 0.8, 0.1, 0.1).

  Returns:
    ``root`` as a string.
  """
  if num_images < 12:
    raise ValueError(f'num_images must be >= 12; got {num_images}.')
  if len(split_fractions) != 3 or abs(sum(split_fractions) - 1) > 1e-6:
    raise ValueError('split_fractions must be three shares summing to 1; got '
                     f'{split_fractions}.')
  root = os.fspath(root)
  os.makedirs(root, exist_ok=True)
  rng = np.random.default_rng(seed)
  names = [f'{i + 1:06d}.jpg' for i in range(num_images)]

  sizes = [int(round(f * num_images)) for f in split_fractions[:2]]
  sizes.append(num_images - sum(sizes))
  partition = rng.permutation(np.repeat(np.arange(3), sizes))

  probs = rng.uniform(0.2, 0.8, len(CELEBA_ATTRIBUTES))
  attrs = (rng.random((num_images, len(CELEBA_ATTRIBUTES))) < probs).astype(int)
  male = CELEBA_ATTRIBUTES.index('Male')
  smiling = CELEBA_ATTRIBUTES.index('Smiling')
  for s in range(3):
    rows = np.flatnonzero(partition == s)
    combos = rng.permutation(np.resize(np.arange(4), len(rows)))
    attrs[rows, male] = combos // 2
    attrs[rows, smiling] = combos % 2
  glasses = CELEBA_ATTRIBUTES.index('Eyeglasses')

  staging = tempfile.mkdtemp(prefix='.fake_celeba-', dir=root)
  try:
    image_dir = os.path.join(staging, 'img_align_celeba')
    os.makedirs(image_dir)
    for name, row in zip(names, attrs):
      face = _draw_face(rng, bool(row[male]), bool(row[smiling]),
                        bool(row[glasses]))
      face.save(os.path.join(image_dir, name), 'JPEG', quality=90)
    if zipped:
      archive = os.path.join(staging, 'img_align_celeba.zip')
      with zipfile.ZipFile(archive, 'w', zipfile.ZIP_STORED) as z:
        z.write(image_dir, 'img_align_celeba/')
        for name in names:
          z.write(os.path.join(image_dir, name), f'img_align_celeba/{name}')
      os.replace(archive, os.path.join(root, 'img_align_celeba.zip'))
    else:
      target = os.path.join(root, 'img_align_celeba')
      if os.path.isdir(target):
        shutil.rmtree(target)
      os.replace(image_dir, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)

  signs = 2 * attrs - 1
  lines = [str(num_images), ' '.join(CELEBA_ATTRIBUTES) + ' ']
  lines += [name + ' ' + ' '.join(f'{v:2d}' for v in row)
            for name, row in zip(names, signs)]
  _write_text(os.path.join(root, 'list_attr_celeba.txt'),
              '\n'.join(lines) + '\n')
  _write_text(os.path.join(root, 'list_eval_partition.txt'),
              ''.join(f'{name} {p}\n' for name, p in zip(names, partition)))
  return root


def read_official(celeba_dir: str | os.PathLike):
  """``(header, names, attributes int8 {0, 1} [N, 40], partition [N])``.

  The official text files read the simple way, independent of the library.
  """
  with open(os.path.join(celeba_dir, 'list_attr_celeba.txt')) as f:
    lines = f.read().splitlines()
  rows = [line.split() for line in lines[2:] if line.strip()]
  names = [r[0] for r in rows]
  attributes = np.array([[int(v) for v in r[1:]] for r in rows]) == 1
  with open(os.path.join(celeba_dir, 'list_eval_partition.txt')) as f:
    part = dict(line.split() for line in f if line.strip())
  partition = np.array([int(part[n]) for n in names])
  return lines[1].split(), names, attributes.astype(np.int8), partition


def skip_figures(patch) -> None:
  """Replaces a run's figures (most of a tiny run's time) by no-ops."""
  from cmi_jax import figures  # pylint: disable=g-import-not-at-top
  patch.setattr(figures, 'run_figures', lambda *a, **k: [])
  patch.setattr(figures, 'data_figures', lambda *a, **k: None)


def write_celeba_tfds_metadata(data_dir: str | os.PathLike,
                               num_examples: int,
                               file_format: str = 'tfrecord') -> str:
  """Makes ``data_dir`` look like it holds a prepared TFDS ``celeb_a``.

  Writes the installed builder's metadata with ``num_examples`` per split and
  no records, for ``tfds.testing.mock_data(num_examples=num_examples,
  data_dir=data_dir, policy=tfds.testing.MockPolicy.USE_FILES)``.
  ``file_format``: ``'tfrecord'`` or ``'array_record'``.

  Returns:
    The version directory that was written.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = tfds.builder('celeb_a', data_dir=os.fspath(data_dir))
  builder.info.set_splits(tfds.core.SplitDict([
      tfds.core.SplitInfo(name=name, shard_lengths=[num_examples],
                          num_bytes=0, filename_template=None)
      for name in ('train', 'validation', 'test')]))
  builder.info.as_proto.file_format = file_format
  builder.data_path.mkdir(parents=True, exist_ok=True)
  builder.info.write_to_directory(builder.data_path)
  return os.fspath(builder.data_path)


# The tests' tiny CelebA run; weak supervision scales batch 10 to 20.
NUM_FAKE = 240
TRAIN_CORR = 0.6
WEAK = 0.5
BATCH = 10


def tiny_config(root, cache, **overrides):
  """The CelebA experiment config of one short run on a fixture at ``root``."""
  from experiments.configs import celeba as celeba_config  # After XLA_FLAGS.
  config = celeba_config.get_config()
  config.update({
      'source': 'files', 'celeba_dir': str(root), 'cache_dir': str(cache),
      'train_corr': TRAIN_CORR, 'batch_size': BATCH, 'num_epochs': 1,
      'weak_supervision': WEAK, 'mi_every': 2, 'mi_max_rows': 100,
      'checkpoint_every': 1, 'progress': False, 'tensorboard': False,
      # Large enough for 14 steps to move the predictions off a constant.
      'lr': 1e-3, 'cls_lr': 1e-2, 'd_lr': 1e-3, **overrides})
  return config
