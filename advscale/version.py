"""The advscale version (one place; ``advscale.__version__`` re-exports it)."""

__version__ = "0.1.0"
