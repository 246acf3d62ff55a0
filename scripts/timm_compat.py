"""Makes `import timm` work beside the CPU build of torch that vitslim links.

timm imports torchvision at import time (transforms, FrozenBatchNorm2d), but PyPI has no
torchvision build matching the CPU torch wheel (its ops fail to load). vitslim's Python helpers
use only timm's model code, which never calls torchvision, so when torchvision cannot be imported
this module installs an inert placeholder for it before timm is imported. Any real use of the
placeholder does nothing useful; it exists only to let timm's modules import.
Use: `from timm_compat import timm` (scripts/ on sys.path).
"""
import importlib.abc
import importlib.machinery
import sys
import types


class _Inert:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert()

    def __call__(self, *args, **kwargs):
        return _Inert()

    def __iter__(self):
        return iter(())

    def __hash__(self):
        return id(self)

    def __mro_entries__(self, bases):
        return (object,)


class _InertModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert()


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _InertModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


def _torchvision_works():
    try:
        import torchvision  # noqa: F401
        return True
    except Exception:
        for name in list(sys.modules):
            if name == "torchvision" or name.startswith("torchvision."):
                del sys.modules[name]
        return False


if not _torchvision_works():
    sys.meta_path.insert(0, _Finder())

import timm  # noqa: E402

__all__ = ["timm"]
