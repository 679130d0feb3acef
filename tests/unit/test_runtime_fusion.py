"""Conv-BN folding at model load: the same answers with fewer ops, and never a refused model."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from handlers.runtime import build_model, fuse_conv_bn


def _with_trained_statistics(model: nn.Module) -> nn.Module:
    """BatchNorm fresh from init is the identity; give it statistics so folding changes real numbers."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(shape, generator=generator) * 0.1)
    return model.eval()


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_torchvision_model_is_folded_and_answers_the_same() -> None:
    torch.manual_seed(0)
    model = _with_trained_statistics(build_model("torchvision:mobilenet_v3_small", {}, num_classes=5))
    fused = fuse_conv_bn(model)
    assert _batchnorms(model) > 30 and _batchnorms(fused) == 0
    batch = torch.randn(3, 3, 224, 224)
    with torch.inference_mode():
        expected, got = model(batch), fused(batch)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), (got - expected).abs().max()


class _Branchy(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            x = -x
        return self.bn(self.conv(x))


def test_untraceable_model_is_served_unfused_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    model = _Branchy().eval()
    with caplog.at_level(logging.WARNING, logger="handlers.runtime"):
        assert fuse_conv_bn(model) is model
    assert "conv-bn fusion skipped, _Branchy" in caplog.text


def test_model_without_batchnorm_is_left_alone() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()).eval()
    assert fuse_conv_bn(model) is model
