"""GOCor: the Global Optimization-based Correlation layer in pure PyTorch."""
from importlib import metadata as _metadata

from .correlation import GlobalCorrelation, LocalCorrelation, global_correlation, local_correlation
from .module import GOCorConfig, GlobalGOCor, LocalGOCor

__all__ = ["GOCorConfig", "GlobalGOCor", "LocalGOCor", "GlobalCorrelation", "LocalCorrelation",
           "global_correlation", "local_correlation"]
try:
    __version__ = _metadata.version("gocor")
except _metadata.PackageNotFoundError:        # a source tree on sys.path, not installed
    __version__ = "0+unknown"
