"""GOCor: the Global Optimization-based Correlation layer in pure PyTorch."""
from .correlation import GlobalCorrelation, LocalCorrelation, global_correlation, local_correlation
from .module import GOCorConfig, GlobalGOCor, LocalGOCor

__all__ = ["GOCorConfig", "GlobalGOCor", "LocalGOCor", "GlobalCorrelation", "LocalCorrelation",
           "global_correlation", "local_correlation"]
__version__ = "0.1.0"
