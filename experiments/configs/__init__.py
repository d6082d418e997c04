"""Experiment configs: one ``get_config()`` per experiment, paper defaults."""

from typing import Any, Mapping

import ml_collections


def with_variants(config: ml_collections.ConfigDict, variant: str,
                  variants: Mapping[str, Mapping[str, Any]]
                  ) -> ml_collections.ConfigDict:
  """``config`` changed by each comma-separated name of ``variant``.

  ``variants`` maps each name to its changes (``FILE.py:fast`` gives
  ``'fast'``); they are applied when the config is built, so flags given
  after ``--config`` still win.
  """
  for name in filter(None, variant.split(',')):
    if name not in variants:
      raise ValueError(
          f'unknown config variant {name!r}; ' + (
              f'choose from {", ".join(variants)} (comma-separated) or none.'
              if variants else 'this config has none.'))
    config.update(variants[name])
  return config
