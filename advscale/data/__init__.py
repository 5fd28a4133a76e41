"""Image datasets: the HDF5 layout, importers, mixtures and the fast training reader.

Submodules import h5py/torch lazily; importing ``advscale.data`` itself is cheap.
"""

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
