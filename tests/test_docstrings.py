"""Every public module, function, class and method of cmi_jax has a docstring.

Public means: a module path with no component starting with ``_``, and a name
not starting with ``_``. Only objects *defined* in the package are checked
(a name a module imports from elsewhere is checked where it is defined, or not
at all if it comes from another library). Methods are those in a class's own
``__dict__``: functions, static and class methods, properties and cached
properties; dunder methods are left out. A method that overrides one a base
class documents keeps that contract and needs no docstring of its own.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import pkgutil
import types

import pytest

import cmi_jax

PACKAGE = 'cmi_jax'


def public_modules(package=cmi_jax) -> list[str]:
  """Names of the package and of all its public submodules, sorted."""
  names = [package.__name__]
  for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):
    if not any(part.startswith('_') for part in info.name.split('.')):
      names.append(info.name)
  return sorted(names)


def _has_doc(obj) -> bool:
  doc = getattr(obj, '__doc__', None)
  return isinstance(doc, str) and bool(doc.strip())


def _class_has_doc(cls) -> bool:
  """True if ``cls`` itself has a docstring.

  ``dataclasses`` (and so Flax modules and ``flax.struct`` dataclasses) give
  an undocumented class the docstring ``'Name(field: type, ...)'``; that
  signature does not count.
  """
  doc = cls.__dict__.get('__doc__')
  if not isinstance(doc, str) or not doc.strip():
    return False
  if dataclasses.is_dataclass(cls) and doc.startswith(cls.__name__ + '('):
    return False
  return True


def _defined_in(obj, module_name: str) -> bool:
  return getattr(obj, '__module__', None) == module_name


def _method_function(member):
  """The function behind a class attribute, or None if it is not a method."""
  if isinstance(member, (staticmethod, classmethod)):
    return member.__func__
  if isinstance(member, property):
    return member.fget
  if isinstance(member, functools.cached_property):
    return member.func
  if inspect.isfunction(member):
    return member
  return None


def _overrides_documented(cls, attr: str) -> bool:
  """Whether a base class of ``cls`` documents ``attr`` (its contract holds)."""
  for base in cls.__mro__[1:]:
    function = _method_function(vars(base).get(attr))
    if function is not None and _has_doc(function):
      return True
  return False


def missing_docstrings(module: types.ModuleType) -> list[str]:
  """Qualified names in ``module`` that lack a docstring ('' = the module)."""
  missing = []
  if not _has_doc(module):
    missing.append(f'{module.__name__} (module docstring)')
  for name, obj in sorted(vars(module).items()):
    if name.startswith('_') or not _defined_in(obj, module.__name__):
      continue
    if inspect.isclass(obj):
      if not _class_has_doc(obj):
        missing.append(f'{module.__name__}.{name}')
      for attr, member in sorted(vars(obj).items()):
        if attr.startswith('_'):
          continue
        function = _method_function(member)
        if function is None or not getattr(
            function, '__module__', '').startswith(PACKAGE):
          continue  # Not a method, or one added by another library.
        if not (_has_doc(function) or _overrides_documented(obj, attr)):
          missing.append(f'{module.__name__}.{name}.{attr}')
    elif inspect.isfunction(obj) and not _has_doc(obj):
      missing.append(f'{module.__name__}.{name}')
  return missing


def test_the_walk_finds_the_package():
  modules = public_modules()
  for name in ('cmi_jax', 'cmi_jax.losses', 'cmi_jax.train',
               'cmi_jax.data.base', 'cmi_jax.metrics.dci',
               'cmi_jax.toy.linear_regression'):
    assert name in modules
  assert not any('._' in name for name in modules)


def test_the_checker_flags_what_lacks_a_docstring():
  module = types.ModuleType('fake_cmi_module')  # no docstring

  def documented():
    """Has one."""

  def bare():
    pass

  class Bare:

    def method(self):
      pass

    @property
    def value(self):
      return 1

    def _private(self):
      pass

  @dataclasses.dataclass
  class Data:
    """Documented dataclass."""
    x: int = 0

  @dataclasses.dataclass
  class UndocumentedData:
    x: int = 0

  class Override(Bare):
    """Documented subclass."""

    def method(self):  # Bare.method has no docstring either: flagged.
      pass

  class Documented:
    """Documented base."""

    def method(self):
      """The contract."""

  class Refines(Documented):
    """Documented subclass."""

    def method(self):  # inherits Documented.method's contract: not flagged
      pass

  for obj in (documented, bare, Bare, Data, UndocumentedData, Override,
              Documented, Refines):
    obj.__module__ = module.__name__
    module.__dict__[obj.__name__] = obj
  for function in (Bare.method, Bare.value.fget, Bare._private,
                   Override.method, Documented.method, Refines.method):
    function.__module__ = PACKAGE + '.fake'
  module.__dict__['imported'] = inspect.isclass  # from elsewhere: skipped
  assert missing_docstrings(module) == [
      'fake_cmi_module (module docstring)',
      'fake_cmi_module.Bare',
      'fake_cmi_module.Bare.method',
      'fake_cmi_module.Bare.value',
      'fake_cmi_module.Override.method',
      'fake_cmi_module.UndocumentedData',
      'fake_cmi_module.bare',
  ]


@pytest.mark.parametrize('module_name', public_modules())
def test_public_names_have_docstrings(module_name):
  module = importlib.import_module(module_name)
  missing = missing_docstrings(module)
  assert not missing, (
      f'{len(missing)} public names of {module_name} lack a docstring:\n  '
      + '\n  '.join(missing))
