"""The one compile path: every jitted (or pmapped) program of the engine."""

from __future__ import annotations

import functools
from typing import Any, Callable, Hashable, Optional, Sequence

import jax


@functools.lru_cache(maxsize=64)
def compiled(fn: Callable[..., Any], *bound: Hashable,
             static_argnums: Sequence[int] = (),
             donate_argnums: Sequence[int] = (),
             pmap_axis: Optional[str] = None) -> Callable[..., Any]:
  """``jax.jit(functools.partial(fn, *bound))``, built once per arguments.

  Args:
    fn: a module-level function whose first arguments are ``bound``.
    *bound: its static leading arguments (a trainer, a mesh, a sharding, a
      flag), hashed by value, so equal trainers share one executable.
    static_argnums, donate_argnums: of the remaining arguments, as
      ``jax.jit`` takes them.
    pmap_axis: ``jax.pmap`` over this named axis instead of ``jax.jit``.

  The cache is bounded so that a process building many trainers does not
  keep all their executables.
  """
  program = functools.partial(fn, *bound)
  if pmap_axis is not None:
    return jax.pmap(program, axis_name=pmap_axis,
                    donate_argnums=tuple(donate_argnums))
  return jax.jit(program, static_argnums=tuple(static_argnums),
                 donate_argnums=tuple(donate_argnums))
