"""The WRN family: paper parameter counts, activations, any timm model; checkpoints."""

from __future__ import annotations

import pytest
import torch

from advscale.errors import AdvscaleError
from advscale.models import canonical_name, count_parameters, create_model, is_model, list_models


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


def test_names():
    assert is_model("WRN-28-10") and is_model("wrn_70_16") and is_model("wrn-22-3")
    assert is_model("resnet18") and not is_model("vit_tiny_patch16_224")  # CIFAR ResNet; timm
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
    m = create_model("resnet10t", image_size=32)  # timm's; normalised by advscale's wrapper
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert torch.allclose(m.mean.flatten(), torch.tensor([0.4914, 0.4822, 0.4465]))


# -- padding, checkpoints, DeepMind keys ---------------------------------------------------------
def test_padding_default_dm_same_parameters():
    dm, sym = create_model("wrn-16-2"), create_model("wrn-16-2", padding="symmetric")
    assert dm.padding == "dm" and sym.padding == "symmetric"
    assert count_parameters(dm) == count_parameters(sym)
    assert list(dm.state_dict()) == list(sym.state_dict())
    with pytest.raises(AdvscaleError, match="padding"):
        create_model("wrn-10-1", padding="same")


def test_checkpoint_records_padding_and_old_ones_load_symmetric(tmp_path):
    from advscale.core.stfile import save_tensors
    from advscale.models.checkpoint import (
        CHECKPOINT_VERSION,
        MODEL_PREFIX,
        load_for_eval,
        read_checkpoint_metadata,
        save_model_checkpoint,
    )

    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    sym = create_model("wrn-10-1", padding="symmetric").eval()
    new = save_model_checkpoint(tmp_path / "new.safetensors", sym, {"model": "wrn-10-1"})
    meta = read_checkpoint_metadata(new)
    assert CHECKPOINT_VERSION == "3" and meta["advscale_checkpoint"] == "3"
    assert meta["padding"] == "symmetric"
    # a format-1 checkpoint (no padding key) was trained symmetric: it loads and says so
    tensors = {MODEL_PREFIX + k: v for k, v in sym.state_dict().items()}
    old = save_tensors(tmp_path / "old.safetensors", tensors,
                       {"advscale_checkpoint": "1", "model": "wrn-10-1", "activation": "silu"},
                       what="model checkpoint")
    model, meta = load_for_eval(old)
    assert meta["padding"] == "symmetric" and model.padding == "symmetric"
    with torch.no_grad():
        assert torch.equal(model(x), sym(x))
    dm = create_model("wrn-10-1").eval()
    model, meta = load_for_eval(save_model_checkpoint(tmp_path / "dm.safetensors", dm,
                                                      {"model": "wrn-10-1"}))
    assert meta["padding"] == "dm" and model.padding == "dm"
    with pytest.raises(ValueError, match="padding"):
        save_model_checkpoint(tmp_path / "x.safetensors", dm, {"model": "wrn-10-1",
                                                               "padding": "symmetric"})
    save_tensors(tmp_path / "future.safetensors", tensors,
                 {"advscale_checkpoint": "99", "model": "wrn-10-1"}, what="model checkpoint")
    with pytest.raises(AdvscaleError, match="newer"):
        load_for_eval(tmp_path / "future.safetensors")


def test_dm_key_mapping():
    from advscale.models.dm_keys import dm_key_to_advscale, dm_to_advscale

    assert dm_key_to_advscale("module.layer.2.block.1.conv_0.weight", 2) == "blocks.5.conv1.weight"
    assert dm_key_to_advscale("layer.0.block.0.batchnorm_1.running_var", 2) == \
        "blocks.0.bn2.running_var"
    assert dm_key_to_advscale("init_conv.weight", 2) == "stem.weight"
    assert dm_key_to_advscale("logits.bias", 2) == "fc.bias"
    with pytest.raises(AdvscaleError, match="unknown"):
        dm_key_to_advscale("head.weight", 2)
    with pytest.raises(AdvscaleError, match="outside"):
        dm_key_to_advscale("layer.0.block.3.conv_0.weight", 2)
    with pytest.raises(AdvscaleError, match="DeepMind-style"):
        dm_to_advscale({"stem.weight": 0})
