"""Checks of user-given scalars and arrays, at the library's boundaries.

Each returns the value as a plain Python type or raises one ``ValueError``
that names the argument, the accepted range and (``hint``) the fix. Inner
functions trust what these let through.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence

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


def arrays(where: str, specs: dict[str, tuple[Any, str]],
           hint: str = '', numpy_only: bool = False,
           **limits: int) -> None:
  """Checks the dtype and shape of arrays where they enter the library.

  ``specs`` maps a name to ``(array, spec)``; a spec is an optional dtype (a
  NumPy name, ``'integer'`` or ``'floating'`` for any of those types) and the
  axes, e.g.
  ``'uint8 [N, H, W]'``: a number is that size, a name the same size wherever
  it recurs, a last ``...`` one or more axes. ``limits`` cap named axes
  (``H=32``); ``numpy_only`` refuses what is not a NumPy array. Only
  ``dtype`` and ``shape`` are read, so traced arrays can be checked. One
  ValueError names ``where`` (if given), what each array must be and what it is.
  """
  sizes = {}

  def fits(array: Any, spec: str) -> bool:
    dtype, axes = spec.rstrip(']').split('[')
    dtype, axes = dtype.strip(), axes.split(', ')
    if not hasattr(array, 'shape') or (
        numpy_only and not isinstance(array, np.ndarray)):
      return False
    shape = tuple(array.shape)
    if axes[-1] == '...':  # one or more trailing axes, any size
      axes = axes[:-1]
      shape = shape[:len(axes)] if len(shape) > len(axes) else ()
    if dtype in ('integer', 'floating'):
      dtype_ok = np.issubdtype(array.dtype, getattr(np, dtype))
    else:
      dtype_ok = not dtype or array.dtype == dtype
    return dtype_ok and len(shape) == len(axes) and all(
        size == int(axis) if axis.isdigit()
        else sizes.setdefault(axis, size) == size
        and size <= limits.get(axis, size)
        for axis, size in zip(axes, shape))

  if not all(fits(array, spec) for array, spec in specs.values()):
    rules = ' and '.join(f'{n} must be {s}' for n, (_, s) in specs.items())
    if limits:
      rules += f' ({", ".join(f"{k} <= {n}" for k, n in limits.items())})'
    got = ' and '.join(
        (f'{type(a).__name__} ' if numpy_only else '')
        + f'{getattr(a, "dtype", type(a).__name__)} {np.shape(a)}'
        for a, _ in specs.values())
    where = f'{where}: ' if where else ''
    raise ValueError(f'{where}{rules}; got {got}. {hint}'.rstrip())
