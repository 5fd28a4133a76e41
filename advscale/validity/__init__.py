"""Invalid adversarial data: the human (and machine) labelling study of Bartoldson et al. 2024.

Appendix G/H of *Adversarial Robustness Limits via Scaling-Law and Human-Alignment Studies*
(ICML 2024) asks raters to classify the adversarial images that fooled a model, then their clean
versions, and calls an adversarial image *valid* when its true class is still visible to people.
This package repeats that study on any ``advscale attack --save-adv`` file:

* :mod:`advscale.validity.advset` reads the adversarial-image HDF5 file;
* :mod:`advscale.validity.store` keeps one append-only JSONL labels file per rater;
* :mod:`advscale.validity.server` is the rating web application (standard-library HTTP server);
* :mod:`advscale.validity.machine_rater` lets a user-supplied command act as a rater;
* :mod:`advscale.validity.scoring` applies the paper's validity rule and computes Table 4.

Nothing here imports torch, and nothing calls an online service.
"""

from __future__ import annotations

CONFIDENCES = ("low", "high")
"""Rater confidence levels: the paper's 'Low' and 'Higher' clarity / confidence."""

VERSIONS = ("adv", "clean")
"""Which image of a pair a label is for: the adversarial image or its clean original."""

RATER_KINDS = ("human", "machine")
"""Who gave a label: a person through the web page, or a command through ``validity rate``."""

RATER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""Rater ids: 1-64 letters, digits, ``_`` or ``-`` (they name the rater's labels file)."""

__all__ = ["CONFIDENCES", "RATER_ID_PATTERN", "RATER_KINDS", "VERSIONS"]
