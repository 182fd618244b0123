import pytest
import torch

from napari_samed2.model import (
    REGISTRY,
    ModelConfigError,
    adapter_parameters,
    build_model,
    count_parameters,
    has_temporal_adapter,
    sam2_config,
    small_config,
)
from napari_samed2.model.temporal_adapter import TemporalAdapter, TemporalBlock


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_preset_builds(name):
    spec = REGISTRY[name]
    net = build_model(spec.config(), temporal_adapter=spec.temporal_adapter)
    assert has_temporal_adapter(net) == spec.temporal_adapter
    assert net.image_size == spec.preprocessing.image_size


def test_parameter_counts_match_references():
    tiny = build_model(sam2_config("sam2.1-tiny"))
    samed2_full = build_model(
        sam2_config("sam2-small"), temporal_adapter=True, keep_unused_fusion=True
    )
    samed2 = build_model(sam2_config("sam2-small"), temporal_adapter=True)
    stock_small = build_model(sam2_config("sam2-small"))
    assert 38.9 <= count_parameters(tiny) / 1e6 < 39.0  # Meta quotes 38.9M (truncated)
    assert round(count_parameters(samed2_full) / 1e6, 2) == 58.48
    assert round(count_parameters(samed2) / 1e6, 1) == 46.9
    assert round(count_parameters(stock_small) / 1e6, 1) == 46.0
    adapters = sum(p.numel() for p in adapter_parameters(samed2))
    assert round(adapters / 1e6, 2) == 0.86


def test_adapter_in_every_block_with_released_key_names():
    net = build_model(sam2_config("sam2-small"), temporal_adapter=True)
    blocks = net.image_encoder.trunk.blocks
    assert len(blocks) == 16
    assert all(isinstance(b, TemporalBlock) for b in blocks)
    keys = net.state_dict().keys()
    for suffix in ("norm.weight", "linear_down.weight", "conv.weight", "linear_up.bias"):
        assert f"image_encoder.trunk.blocks.15.adapter.{suffix}" in keys
    assert blocks[0].adapter.linear_down.out_features == 32
    assert blocks[0].adapter.conv.kernel_size == (3, 3, 3)


def _stock_and_adapted(config):
    torch.manual_seed(0)
    stock = build_model(config)
    adapted = build_model(config, temporal_adapter=True)
    missing, unexpected = adapted.load_state_dict(stock.state_dict(), strict=False)
    assert not unexpected and all(".adapter." in key for key in missing)
    return stock, adapted


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_zeroed_adapter_equals_stock_sam2(batch):
    stock, adapted = _stock_and_adapted(sam2_config("sam2-small", image_size=256))
    for module in adapted.modules():
        if isinstance(module, TemporalAdapter):
            torch.nn.init.normal_(module.conv.weight)  # the rest is random; only up is zero
            torch.nn.init.zeros_(module.linear_up.weight)
            torch.nn.init.zeros_(module.linear_up.bias)
    images = torch.rand(batch, 3, 256, 256)
    with torch.no_grad():
        expected = stock.image_encoder(images)
        actual = adapted.image_encoder(images)
    for key in ("vision_features",):
        assert actual[key].shape == expected[key].shape
        assert (actual[key] - expected[key]).abs().max().item() <= 1e-5
    for got, want in zip(actual["backbone_fpn"], expected["backbone_fpn"], strict=True):
        assert (got - want).abs().max().item() <= 1e-5


def _adapted_tiny():
    torch.manual_seed(1)
    net = build_model(small_config(), temporal_adapter=True)
    for module in net.modules():
        if isinstance(module, TemporalAdapter):
            torch.nn.init.normal_(module.linear_up.weight, std=0.5)
    return net.image_encoder


def test_encoder_pairs_neighbours_and_nothing_else():
    encoder = _adapted_tiny()
    a, b, c, d = torch.rand(4, 1, 3, 256, 256)
    with torch.no_grad():
        ab = encoder(torch.cat([a, b]))["vision_features"]
        abcd = encoder(torch.cat([a, b, c, d]))["vision_features"]
        ac = encoder(torch.cat([a, c]))["vision_features"]
    # pairs (0,1) and (2,3) are independent of each other ...
    assert torch.allclose(abcd[:2], ab, atol=1e-5)
    # ... but within a pair the neighbour matters: that is the temporal adapter at work
    assert (ac[0] - ab[0]).abs().max().item() > 1e-3


def test_odd_batch_pairs_last_image_with_itself():
    encoder = _adapted_tiny()
    a, b, c = torch.rand(3, 1, 3, 256, 256)
    with torch.no_grad():
        lone = encoder(a)["vision_features"]
        doubled = encoder(torch.cat([a, a]))["vision_features"]
        three = encoder(torch.cat([a, b, c]))["vision_features"]
        cc = encoder(torch.cat([c, c]))["vision_features"]
    assert lone.shape[0] == 1 and three.shape[0] == 3
    assert torch.allclose(lone[0], doubled[0], atol=1e-5)
    assert torch.allclose(three[2], cc[0], atol=1e-5)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ModelConfigError, match="mapping"):
        build_model("sam2.1-tiny")
    with pytest.raises(ModelConfigError, match="missing"):
        build_model({"image_size": 256})
    config = small_config()
    config["image_size"] = 250
    with pytest.raises(ModelConfigError, match="multiple of 32"):
        build_model(config)
    config = small_config()
    config["image_encoder"]["trunk"]["global_att_blocks"] = [1]  # first block of stage 2
    with pytest.raises(ModelConfigError, match="first block of a stage"):
        build_model(config)
    with pytest.raises(ModelConfigError, match="temporal_adapter"):
        build_model(small_config(), keep_unused_fusion=True)


def test_whole_yaml_and_omegaconf_accepted():
    from omegaconf import OmegaConf

    net = build_model(OmegaConf.create({"model": small_config()}))
    assert net.image_size == 256
