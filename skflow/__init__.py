"""skflow: flow matching and stochastic interpolants for scikit-learn."""

from .classifier import FlowMatchingClassifier
from .density import FlowMatchingDensity
from .impute import FlowMatchingImputer
from .outlier import FlowMatchingOutlierDetector
from .persistence import load, save
from .transport import InterpolantTransport

__all__ = [
    "FlowMatchingClassifier",
    "FlowMatchingDensity",
    "FlowMatchingImputer",
    "FlowMatchingOutlierDetector",
    "InterpolantTransport",
    "__version__",
    "load",
    "save",
]

__version__ = "0.1.0.dev0"
