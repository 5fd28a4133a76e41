"""Synthetic training data: the EDM sampler, generators, resumable sharded output, quality.

* :mod:`advscale.synthetic.edm` — the EDM sampler (Karras et al. 2022) and preconditioning.
* :mod:`advscale.synthetic.base` — the generator interface.
* :mod:`advscale.synthetic.builtin_gaussian` — the offline default (NOT a trained model).
* :mod:`advscale.synthetic.builtin_unet` — a small EDM U-Net trained here.
* :mod:`advscale.synthetic.edm_export` — NVlabs EDM networks exported with ``torch.export``.
* :mod:`advscale.synthetic.diffusers_gen` — diffusers-format models (optional extra).
* :mod:`advscale.synthetic.jobs` — batched, resumable, sharded generation into HDF5.
* :mod:`advscale.synthetic.quality` — FID/KID (Inception or named proxies), label agreement.

Importing this package is cheap; submodules import torch.
"""
