"""Figures a person can read: annotation contrast and class names."""

import matplotlib
import numpy as np
import pytest

from cmi_jax import logs, plots


@pytest.mark.parametrize('cmap, value, expected', [
    ('RdBu_r', 0.0, 'black'),     # diverging map: pale middle
    ('RdBu_r', 0.98, 'white'),    # dark red end
    ('RdBu_r', -0.98, 'white'),   # dark blue end
    ('viridis', 0.02, 'white'),   # dark purple
    ('viridis', 0.98, 'black'),   # yellow
    ('Blues', 0.05, 'black'),
])
def test_annotations_contrast_with_their_cell(cmap, value, expected):
  norm = matplotlib.colors.Normalize(-1 if cmap == 'RdBu_r' else 0, 1)
  assert plots.text_color(matplotlib.colormaps[cmap](norm(value))) == expected


def test_latent_correlation_labels_pale_cells_in_black(tmp_path):
  import matplotlib.figure  # pylint: disable=g-import-not-at-top
  fig = matplotlib.figure.Figure()
  ax = fig.add_subplot(1, 1, 1)
  matrix = np.array([[1.0, 0.05], [0.05, 1.0]])
  plots._annotated_matrix(ax, matrix, ['a', 'b'], ['a', 'b'], '.2f',
                          'RdBu_r', vmin=-1, vmax=1)
  colors = {t.get_text(): t.get_color() for t in ax.texts}
  assert colors == {'1.00': 'white', '0.05': 'black'}


def test_image_grid_captions_name_the_classes(tmp_path, monkeypatch):
  captions = []
  original = matplotlib.axes.Axes.set_title

  def record(self, text, *args, **kwargs):
    captions.append(text)
    return original(self, text, *args, **kwargs)

  monkeypatch.setattr(matplotlib.axes.Axes, 'set_title', record)
  images = np.zeros((2, 8, 16, 3))
  labels = np.array([[0, 1], [1, -1]])
  names = [['T-shirt/top', 'Trouser']] * 2
  plots.image_grid(images, labels, str(tmp_path / 'g.png'), 'grid',
                   preds=np.array([[0, 0], [1, 1]]), class_names=names)
  assert captions[:2] == ['T-shirt/top,Trouser → T-shirt/top,T-shirt/top',
                          'Trouser,-1 → Trouser,Trouser']


def test_tensorboard_tags_are_made_legal_once():
  assert logs.tensorboard_tag('extra/test_uncorr/I(z1;z2|s1)') == (
      'extra/test_uncorr/I_z1_z2_s1_')
  assert logs.tensorboard_tag('eval/val/accuracy') == 'eval/val/accuracy'
