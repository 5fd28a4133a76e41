"""The core layer: small, torch-light helpers every other layer builds on.

* :mod:`advscale.core.fileio`: atomic writes and file hashes.
* :mod:`advscale.core.jsonl`: the append-only JSONL log (one torn-last-line policy).
* :mod:`advscale.core.units`: units and the papers' constants (e.g. 7822 FLOPs per N·D).
* :mod:`advscale.core.devices`: ``--device`` resolution (imports torch).
* :mod:`advscale.core.tensors`: uint8 NHWC ↔ float NCHW conversion (imports torch).
* :mod:`advscale.core.stfile`: safetensors files with JSON metadata (imports torch).

Nothing here imports any other advscale package except :mod:`advscale.errors`.
"""
