"""Figures of a run, drawn with matplotlib's Agg canvas and saved atomically.

Every function takes NumPy data and a path, writes one PNG and returns the
path; none touches pyplot's global state, so they are safe in threads.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from cmi_jax import logs

# Border colours of the prediction grid, by which attributes are wrong.
ALL_RIGHT = '#2ca02c'
FIRST_WRONG = '#ff7f0e'
SECOND_WRONG = '#1f77b4'
ALL_WRONG = '#d62728'


# Each objective's colour and label in every figure of the experiments.
STYLES = {'base': ('#1f77b4', 'Base'), 'mi': ('#ff7f0e', 'Base+MI'),
          'cmi': ('#2ca02c', 'Base+CMI'), 'mmd_mi': ('#9467bd', 'MMD MI'),
          'mmd_cmi': ('#8c564b', 'MMD CMI')}


def objective_order(objectives: Iterable[str]) -> list[str]:
  """The distinct ``objectives`` in :data:`STYLES` order (others last)."""
  order = list(STYLES)
  return sorted(set(objectives), key=lambda o: (
      order.index(o) if o in order else len(order), o))


def write_outputs(directory: str, outputs: Mapping[str, Any]
                  ) -> dict[str, str]:
  """Writes ``{file name: content}`` into ``directory``, each atomically.

  A ``.png`` file's content is a matplotlib Figure, a ``.json`` file's JSON
  data (:func:`cmi_jax.logs.write_json_atomic`), any other's text. Returns
  file name -> path.
  """
  paths = {name: os.path.join(directory, name) for name in outputs}
  for name, content in outputs.items():
    if name.endswith('.png'):
      save_figure(content, paths[name])
    elif name.endswith('.json'):
      logs.write_json_atomic(paths[name], content)
    else:
      logs.write_text_atomic(paths[name], content)
  return paths


def new_figure(width: float, height: float):
  """A matplotlib Figure on an Agg canvas (no pyplot, no global state)."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  fig = Figure(figsize=(width, height), dpi=110)
  FigureCanvasAgg(fig)
  return fig


def save_figure(fig, path: str) -> str:
  """Writes ``fig`` to ``path`` as PNG, atomically; returns ``path``."""
  # The temporary name has no .png suffix, so the format must be explicit.
  return logs.write_atomically(
      path, lambda tmp: fig.savefig(tmp, format='png', bbox_inches='tight'))


def _annotated_matrix(ax, matrix: np.ndarray, row_labels: Sequence[str],
                      col_labels: Sequence[str], fmt: str, cmap: str,
                      vmin=None, vmax=None, title: str = '', **labels):
  """An annotated heat map with a colour bar on ``ax``; ``labels``: x/ylabel."""
  image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
  ax.set_xticks(range(len(col_labels)), col_labels, rotation=45, ha='right')
  ax.set_yticks(range(len(row_labels)), row_labels)
  for (i, j), value in np.ndenumerate(matrix):
    if np.isfinite(value):
      ax.text(j, i, format(value, fmt), ha='center', va='center', fontsize=8,
              color=text_color(image.cmap(image.norm(value))))
  ax.set(**labels)
  ax.set_title(title, fontsize=9)
  ax.figure.colorbar(image, ax=ax, fraction=0.046)
  return ax


def _heat_map(path: str, width: float, height: float, matrix, *args,
              edges: Sequence[int] = (), **kwargs) -> str:
  """Saves ``matrix`` as the one :func:`_annotated_matrix` of a figure.

  Black lines separate the blocks that start at the rows/columns ``edges``.
  """
  fig = new_figure(width, height)
  ax = _annotated_matrix(fig.add_subplot(1, 1, 1),
                         np.asarray(matrix, np.float64), *args, **kwargs)
  for edge in edges:
    ax.axhline(edge - 0.5, color='black', linewidth=1.5)
    ax.axvline(edge - 0.5, color='black', linewidth=1.5)
  return save_figure(fig, path)


def text_color(rgba: Sequence[float]) -> str:
  """Black or white, by the WCAG luminance ``L`` of a cell coloured ``rgba``."""
  channels = np.asarray(rgba[:3], np.float64)
  linear = np.where(channels <= 0.04045, channels / 12.92,
                    ((channels + 0.055) / 1.055) ** 2.4)
  luminance = float(linear @ np.array([0.2126, 0.7152, 0.0722]))
  # Contrast with black (L + 0.05) / 0.05 against white 1.05 / (L + 0.05).
  return 'black' if luminance > 0.179 else 'white'


def joint_count_tables(tables: Mapping[str, np.ndarray],
                       attribute_names: Sequence[str], path: str) -> str:
  """Heat maps of the joint label counts ``(2,) * K`` of every split.

  Each table is drawn as ``[2, 2**(K-1)]``: rows attribute 0 (the first of
  the K ``attribute_names``), columns the rest.
  """
  fig = new_figure(3.8 * len(tables), 3.4)
  for i, (split, table) in enumerate(tables.items()):
    table = np.asarray(table, np.float64)
    matrix = table.reshape(2, -1)
    cols = [''.join(map(str, bits)) for bits in np.ndindex(table.shape[1:])]
    _annotated_matrix(fig.add_subplot(1, len(tables), i + 1), matrix,
                      ['0', '1'], cols, '.0f', 'Blues',
                      title=f'{split}\n(n={matrix.sum():.0f})',
                      ylabel=attribute_names[0],
                      xlabel=', '.join(attribute_names[1:]))
  fig.suptitle('Joint label counts per split')
  fig.tight_layout()
  return save_figure(fig, path)


def image_grid(images: np.ndarray, labels: np.ndarray, path: str,
               title: str, columns: int = 8, preds: np.ndarray | None = None,
               class_names: Sequence[Sequence[str] | None] | None = None,
               num_classes: Sequence[int] | None = None) -> str:
  """A grid of images with their labels (and coloured borders with ``preds``).

  Args:
    images: float ``[N, H, W, C]`` in [0, 1] (C = 1: gray).
    labels: ``[N, K]``: classes, or values of continuous attributes.
    preds: optional ``[N, K]`` predictions; borders by :func:`border_color`
      of the categorical attributes.
    class_names: optional, per attribute, the name of each class index
      (``[['3', '8'], ['3', '8']]``), shown instead of indices.
    num_classes: optional K class counts; a continuous attribute's (0)
      values are shown with two significant digits.
  """
  continuous = np.array([n == 0 for n in num_classes or [1] * labels.shape[1]])

  def name(k, v) -> str:
    if continuous[k]:
      return f'{v:.2g}'
    v = int(v)
    return str(v if class_names is None or v < 0 else class_names[k][v])

  def names(row) -> str:
    return ','.join(name(k, v) for k, v in enumerate(row))

  rows = max(1, int(np.ceil(len(images) / columns)))
  aspect = images.shape[2] / images.shape[1]
  fig = new_figure(columns * 1.1 * aspect, rows * 1.3 + 0.6)
  for i, image in enumerate(images):
    ax = fig.add_subplot(rows, columns, i + 1)
    if image.shape[-1] == 1:  # One gray channel.
      ax.imshow(np.clip(image[..., 0], 0, 1), cmap='gray', vmin=0, vmax=1,
                interpolation='nearest')
    else:
      ax.imshow(np.clip(image, 0, 1), interpolation='nearest')
    ax.set(xticks=[], yticks=[])
    caption = names(labels[i])
    if preds is not None:
      color = border_color((preds[i] != labels[i]) & ~continuous)
      ax.spines[:].set(edgecolor=color, linewidth=3)
      caption += ' → ' + names(preds[i])
    ax.set_title(caption, fontsize=7)
  if preds is not None:
    title += ('\nborder: green both right · orange attr 0 wrong · '
              'blue attr 1 wrong · red both wrong')
  fig.suptitle(title, fontsize=9)
  return save_figure(fig, path)


def border_color(wrong: np.ndarray) -> str:
  """The border colour for one example's error pattern ``wrong`` ``[K]``.

  Green all right, red all wrong, blue only attribute 1 of two wrong, orange
  any other partial error.
  """
  if not wrong.any():
    return ALL_RIGHT
  if wrong.all():
    return ALL_WRONG
  return SECOND_WRONG if len(wrong) == 2 and not wrong[0] else FIRST_WRONG


def confusion_matrix(confusion: np.ndarray, combination_names: Sequence[str],
                     path: str, title: str) -> str:
  """Confusion heat map of joint predictions (rows true, columns predicted)."""
  n = len(combination_names)
  return _heat_map(path, 1.2 + 0.7 * n, 1.0 + 0.6 * n, confusion,
                   combination_names, combination_names, '.0f', 'Blues',
                   title=title, xlabel='predicted combination',
                   ylabel='true combination')


def latent_correlation(correlation: np.ndarray, subspaces: Sequence[int],
                       path: str, title: str) -> str:
  """Heat map of the Pearson correlation of the latent dimensions ``[D, D]``."""
  names = [f'z{d}' for d in range(len(correlation))]
  return _heat_map(path, 1.5 + 0.45 * len(names), 1.0 + 0.45 * len(names),
                   correlation, names, names, '.2f', 'RdBu_r', vmin=-1,
                   vmax=1, title=title, edges=np.cumsum(subspaces)[:-1])


def training_curves(records: Sequence[Mapping[str, Any]], path: str) -> str:
  """Train losses, eval loss and accuracy, kNN MI over epochs of log records.

  The classifier's cross-entropy (about 0.1-0.7 nats) and the adversarial
  terms (about 5 nats for K = 2) get an axis each, left and right, so that
  neither flattens the other.
  """
  epochs = [r for r in records if 'epoch' in r]
  evals = [r for r in epochs if 'eval' in r]
  extras = [r for r in epochs if r.get('extra')]
  panels = 4 if extras else 3
  fig = new_figure(4.2 * panels, 3.4)

  def panel(i, rows, series, ylabel, title, fontsize=7, **style):
    """Subplot ``i`` of ``(name, values over rows)`` against the epochs."""
    ax = fig.add_subplot(1, panels, i)
    for name, values in series:
      ax.plot([r['epoch'] for r in rows], values, label=name, **style)
    ax.set(xlabel='epoch', ylabel=ylabel, title=title)
    ax.legend(fontsize=fontsize)
    return ax

  train = {name: [r['train'].get(name) for r in epochs]
           for name in ('loss/ce', 'loss/disentangle', 'loss/adversary')}
  shown = [(name, [np.nan if v is None else v for v in values])
           for name, values in train.items()
           if any(v not in (None, 0.0) for v in values)]
  ax = panel(1, epochs, shown[:1], 'classifier loss (nats)',
             'training losses')
  if shown[1:]:
    right = ax.twinx()
    for color, (name, values) in enumerate(shown[1:], start=1):
      right.plot([r['epoch'] for r in epochs], values, label=name,
                 color=f'C{color}')
    right.set_ylabel('adversarial terms (nats)')
    ax.legend(*[a + b for a, b in zip(ax.get_legend_handles_labels(),
                                      right.get_legend_handles_labels())],
              fontsize=7)
  for i, (key, ylabel) in enumerate((('loss', 'loss (nats)'),
                                     ('accuracy', 'accuracy'))):
    panel(2 + i, evals, [(split, [r['eval'][split][key] for r in evals])
                         for split in (evals[0]['eval'] if evals else [])],
          ylabel, f'evaluation {key}')
  if extras:
    panel(4, extras, [(name, [r['extra'].get(name, np.nan) for r in extras])
                      for name in sorted({k for r in extras
                                          for k in r['extra']})],
          'nats', 'kNN MI estimates', fontsize=6, marker='.')
  fig.tight_layout()
  return save_figure(fig, path)


def subpopulation_accuracy(accuracy: np.ndarray, counts: np.ndarray,
                           attribute_names: Sequence[str],
                           combination_names: Sequence[str], path: str,
                           title: str) -> str:
  """Heat map of ``accuracy [C, K]`` per combination and attribute.

  NaN marks an absent combination; ``counts [C]`` are examples per one.
  """
  rows = [f'{c} (n={int(n)})' for c, n in zip(combination_names, counts)]
  return _heat_map(path, 1.5 + 1.0 * len(attribute_names),
                   1.0 + 0.5 * len(combination_names), accuracy, rows,
                   attribute_names, '.2f', 'viridis', vmin=0, vmax=1,
                   title=title, xlabel='attribute', ylabel='true combination')
