"""GOCor: the Global Optimization-based Correlation layer in pure PyTorch.

The layer's names are loaded on first use, so that importing a light part of the kit (the
results tables of :mod:`gocor.lab.runs.report`) does not import torch."""
from __future__ import annotations

import importlib
from importlib import metadata as _metadata

_EXPORTS = {"GOCorConfig": "module", "GlobalGOCor": "module", "LocalGOCor": "module",
            "GlobalCorrelation": "correlation", "LocalCorrelation": "correlation",
            "global_correlation": "correlation", "local_correlation": "correlation"}

__all__ = list(_EXPORTS)
try:
    __version__ = _metadata.version("gocor")
except _metadata.PackageNotFoundError:        # a source tree on sys.path, not installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gocor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
