"""skflow: flow matching and stochastic interpolants for scikit-learn."""

from .density import FlowMatchingDensity

__all__ = ["FlowMatchingDensity", "__version__"]

__version__ = "0.1.0.dev0"
