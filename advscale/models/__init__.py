"""Models by name: the WideResNet family (registered in timm) and any timm model.

``create_model("wrn-28-10")`` builds a pre-activation WideResNet; any other name goes to
``timm.create_model`` with 10 classes. Import cost: torch and timm load on first use.
"""

from advscale.models.factory import count_parameters, create_model, parse_wrn_name

__all__ = ["create_model", "count_parameters", "parse_wrn_name"]
