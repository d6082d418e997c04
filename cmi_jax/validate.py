"""Checks of user-given scalars and arrays, at the library's boundaries.

Each returns the value as a plain Python type or raises one ``ValueError``
that names the argument, the accepted range and (``hint``) the fix. Inner
functions trust what these let through.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

import jax.numpy as jnp
import numpy as np


def _message(name: str, rule: str, value: Any, hint: str) -> str:
  return f'{name} must {rule}; got {value!r}.' + (f' {hint}' if hint else '')


def integer(value: Any, name: str, low: Optional[int] = None,
            high: Optional[int] = None, hint: str = '') -> int:
  """``value`` as an int in ``[low, high]`` (bools are not integers)."""
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ValueError(_message(name, 'be an integer', value, hint))
  _check_range(int(value), name, low, high, False, False, hint)
  return int(value)


def number(value: Any, name: str, low: Optional[float] = None,
           high: Optional[float] = None, *, open_low: bool = False,
           open_high: bool = False, hint: str = '') -> float:
  """``value`` (real or 0-d array) as a finite float; ``open_*``: exclusive."""
  scalar_array = (hasattr(value, 'dtype') and np.ndim(value) == 0
                  and np.issubdtype(value.dtype, np.number))
  real = scalar_array or (isinstance(value, numbers.Real)
                          and not isinstance(value, bool))
  if not real or not math.isfinite(float(value)):
    raise ValueError(_message(name, 'be a finite number', value, hint))
  _check_range(float(value), name, low, high, open_low, open_high, hint)
  return float(value)


def _check_range(value, name, low, high, open_low, open_high, hint) -> None:
  below = low is not None and (value <= low if open_low else value < low)
  above = high is not None and (value >= high if open_high else value > high)
  if not (below or above):
    return
  if high is None:
    rule = f'be {">" if open_low else ">="} {low}'
  elif low is None:
    rule = f'be {"<" if open_high else "<="} {high}'
  else:
    rule = (f'lie in {"(" if open_low else "["}{low}, '
            f'{high}{")" if open_high else "]"}')
  raise ValueError(_message(name, rule, value, hint))


def choice(value: Any, name: str, choices: Sequence[str],
           hint: str = '') -> str:
  """``value`` if it is one of ``choices``."""
  if not isinstance(value, str) or value not in choices:
    raise ValueError(_message(name, f'be one of {tuple(choices)}', value,
                              hint))
  return value


def array(value: Any, name: str, shape: Sequence[Any], dtype: str = '',
          hint: str = '') -> None:
  """Raises unless ``value`` (an array, also traced) has ``shape``, ``dtype``.

  ``shape``: per axis, an int or a letter (any size), e.g. ``('B', 2)``;
  ``dtype``: a NumPy scalar type name the dtype must be a kind of (e.g.
  ``'integer'``, ``'uint32'``), or '' for any.
  """
  got, kind = jnp.shape(value), jnp.result_type(value)
  if len(got) != len(shape) or any(
      isinstance(w, int) and w != g for w, g in zip(shape, got)) or (
          dtype and not jnp.issubdtype(kind, getattr(np, dtype))):
    spec = f'{dtype} '.lstrip() + '[' + ', '.join(map(str, shape)) + ']'
    raise ValueError(f'{name} must be {spec}; got {kind} {got}.'
                     + (f' {hint}' if hint else ''))
