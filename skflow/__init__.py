"""skflow: flow matching and stochastic interpolants for scikit-learn."""

from .density import FlowMatchingDensity
from .outlier import FlowMatchingOutlierDetector
from .persistence import load, save
from .transport import InterpolantTransport

__all__ = [
    "FlowMatchingDensity",
    "FlowMatchingOutlierDetector",
    "InterpolantTransport",
    "__version__",
    "load",
    "save",
]

__version__ = "0.1.0.dev0"
