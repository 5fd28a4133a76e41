"""The WRN family: paper parameter counts, timm registration, activations, any timm model."""

from __future__ import annotations

import pytest
import torch

from advscale.errors import AdvscaleError
from advscale.models import canonical_name, count_parameters, create_model, is_model, list_models
from advscale.models.timm_bridge import register_all, register_timm


def _params_meta(name: str, **kw) -> int:
    with torch.device("meta"):
        return count_parameters(create_model(name, **kw))


@pytest.mark.parametrize(
    ("name", "expected", "tol"),
    [
        ("wrn-28-10", 36_479_194, 0),  # Gowal et al. / Bartoldson et al. Table 2: 36.5M
        ("wrn-34-20", 184_531_674, 0),
        ("wrn-70-16", 266.8e6, 0.05e6),
        ("wrn-82-8", 79e6, 0.5e6),
        ("wrn-94-16", 366e6, 0.5e6),
    ],
)
def test_paper_parameter_counts(name, expected, tol):
    n = _params_meta(name)
    assert abs(n - expected) <= tol, (name, n)


def test_structure_and_activation():
    m = create_model("wrn-16-2", activation="relu")
    assert m.depth == 16 and m.width == 2
    assert len(m.blocks) == 3 * (16 - 4) // 6
    assert [m.stem.out_channels, m.blocks[0].conv1.out_channels,
            m.blocks[2].conv1.out_channels, m.blocks[4].conv1.out_channels] == [16, 32, 64, 128]
    assert any(isinstance(x, torch.nn.ReLU) for x in m.modules())
    assert not any(isinstance(x, torch.nn.SiLU) for x in m.modules())
    silu = create_model("wrn-16-2")  # SiLU is the default
    assert any(isinstance(x, torch.nn.SiLU) for x in silu.modules())
    gelu = create_model("wrn-10-1", activation="gelu")
    assert any(isinstance(x, torch.nn.GELU) for x in gelu.modules())
    # activations have no parameters: same N
    assert count_parameters(m) == count_parameters(silu)


def test_normalisation_inside_model():
    m = create_model("wrn-10-1").eval()
    x = torch.rand(2, 3, 32, 32)
    out = m(x)
    assert out.shape == (2, 10)
    # the model normalises [0,1] inputs itself with CIFAR-10 statistics
    assert torch.allclose(m.mean.flatten(), torch.tensor([0.4914, 0.4822, 0.4465]))
    assert torch.allclose(m.std.flatten(), torch.tensor([0.2471, 0.2435, 0.2616]))


def test_timm_registry():
    import timm

    register_all()
    with torch.device("meta"):  # 36M parameters: count them without allocating
        m = timm.create_model("wrn_28_10", pretrained=False)
    assert count_parameters(m) == 36_479_194
    # any depth-width, registered on request; kwargs reach the model
    assert register_timm(22, 3) == "wrn_22_3"
    m2 = timm.create_model("wrn_22_3", num_classes=7, activation="gelu")
    assert m2(torch.rand(1, 3, 32, 32)).shape == (1, 7)
    assert register_timm(22, 3) == "wrn_22_3"  # idempotent
    assert "wrn_22_3" in timm.list_models("wrn_*")


def test_names():
    assert is_model("WRN-28-10") and is_model("wrn_70_16") and is_model("wrn-22-3")
    assert not is_model("resnet18")
    assert "wrn-28-10" in list_models() and "wrn-D-W" in list_models()
    assert list_models("wrn-94-*", families=False) == ["wrn-94-16"]
    assert canonical_name("wrn_28_10") == "wrn-28-10"
    assert count_parameters(create_model("wrn_10_1")) == count_parameters(create_model("wrn-10-1"))


def test_bad_names():
    with pytest.raises(AdvscaleError, match="unknown model"):
        create_model("no-such-model-xyz")
    with pytest.raises(AdvscaleError, match="6k"):
        create_model("wrn-12-2")
    with pytest.raises(AdvscaleError, match="activation"):
        create_model("wrn-10-1", activation="tanh")


def test_any_timm_model_32px_10_classes():
    m = create_model("resnet18")
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
