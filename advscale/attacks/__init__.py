"""Attacks and robustness evaluation, shared by training and ``advscale attack``.

``pgd`` (the one L∞ PGD: CE, CW-margin and TRADES-KL losses), ``trades`` (the TRADES objective),
``robustness`` (the one PGD evaluation service and its per-image seeding rule, used by
``train.eval`` and ``attack --attack pgd-cw|pgd-ce``), ``autoattack`` (the AutoAttack adapter),
and the ``advscale attack`` pipeline: ``settings``, ``inputs``, ``chunks``, ``records``,
``statefile``, ``merge``, ``evaluate`` (the driver) and ``advfile`` (``--save-adv`` files).
Attacks import ``core``, ``records``, ``data`` and ``models`` only, never ``training``.
"""
