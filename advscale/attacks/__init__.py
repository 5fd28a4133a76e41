"""Attacks and robustness evaluation, shared by training and ``advscale attack``.

``pgd`` (the one PGD, L∞ and L2: CE, CW and TRADES-KL losses), ``norms`` (threat models: default
radii and step rules, torch-free), ``trades`` (the TRADES objective), ``robustness`` (the one
evaluation service, its per-image seeding rule and the one robustness decision for every
attack), ``registry`` (``register_attack``: every attack's name, threat models, defaults,
validation, settings-key extras and chunk runner) with ``catalog`` (the built-in attacks: PGD,
AutoAttack), ``autoattack`` (the AutoAttack adapter), and the ``advscale attack`` pipeline:
``settings``, ``inputs``, ``chunks``, ``records``, ``statefile``, ``merge``, ``progress``,
``evaluate`` (the driver), ``distributed`` (the driver under torchrun: one shard per rank,
rank 0 merges), ``precision`` (fp32 / bf16 autocast / tf32 forward) and ``advfile``
(``--save-adv`` files). Attacks import ``core``,
``records``, ``data`` and ``models`` only, never ``training``.
"""
