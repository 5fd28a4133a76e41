"""The batch-norm momentum schedule: advscale's warm-up, or the reference's (a named option)."""

from __future__ import annotations

import pytest

from advscale.errors import AdvscaleError
from advscale.training.config import TrainConfig
from advscale.training.schedule import bn_momentum_at


def reference_momentum(global_step: int, current: float) -> float:
    """DM-Improves-AT ``gowal21uncovering/utils/watrain.py``: ``set_bn_momentum(model, 1.0)``
    at global step 0, ``set_bn_momentum(model, 0.01)`` at step 1; otherwise left as it is
    (the layers are built with ``BatchNorm2d(momentum=0.01)``)."""
    if global_step == 0:
        return 1.0
    if global_step == 1:
        return 0.01
    return current


def test_reference_schedule_equals_the_reference():
    m = 0.01  # the layers' constructor value
    for t in range(3000):
        m = reference_momentum(t, m)
        assert bn_momentum_at(t, 0.01, "reference") == m, t


def test_default_schedule_is_unchanged_and_differs_in_short_runs():
    assert TrainConfig().bn_schedule == "advscale"
    assert bn_momentum_at(1, 0.01) == pytest.approx(9 / 11)
    assert bn_momentum_at(1, 0.01, "reference") == 0.01
    assert bn_momentum_at(10_000, 0.01) == bn_momentum_at(10_000, 0.01, "reference")


def test_unknown_schedule_is_refused_naming_the_field():
    cfg = TrainConfig(data="x.h5", eval_data="y.h5", samples=1000, bn_schedule="haiku")
    with pytest.raises(AdvscaleError, match="bn_schedule must be one of advscale, reference"):
        cfg.resolved()
