"""Built-in attacks: every module here registers its attacks (``advscale.attacks.registry``)
when the registry is first used. Modules stay torch-free at import; runners import torch."""
