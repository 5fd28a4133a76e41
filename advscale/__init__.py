"""advscale: scaling laws for adversarial robustness.

The package is a library first; ``advscale.cli`` is a thin typer layer over it. Importing
``advscale`` is cheap: torch, timm and h5py are imported only by the modules that need them.
"""

__version__ = "0.1.0"

from advscale.errors import AdvscaleError  # noqa: E402

__all__ = ["AdvscaleError", "__version__"]
