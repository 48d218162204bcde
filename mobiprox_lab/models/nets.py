"""The two networks of the paper: the HAR MobileNet and the KWS CNN (``build_model``)."""

from __future__ import annotations

import torch
from torch import nn

DEFAULT_HAR_WIDTH = 0.5
HAR_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def _channels(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class ConvBNReLU(nn.Sequential):
    """``conv`` (3x3, pad 1) -> ``bn`` -> ``relu``."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()


class DepthwiseSeparable(nn.Sequential):
    """``dw`` (3x3 depthwise, pad 1, stride s) -> ``dw_bn`` -> ``dw_relu`` ->
    ``pw`` (1x1) -> ``pw_bn`` -> ``pw_relu``."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False)
        self.dw_bn = nn.BatchNorm2d(cin)
        self.dw_relu = nn.ReLU()
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(cout)
        self.pw_relu = nn.ReLU()


class HarMobileNet(nn.Module):
    """CIFAR-style MobileNet (v1) for HAR signal images.

    Input float32 (N, in_channels, H, W) (3x32x32 by default), output logits (N, n_classes).
    Layout: ``features.0`` = conv 3x3 in->32 + BN + ReLU; ``features.1``..``features.13`` =
    depthwise-separable blocks with (out, stride) from :data:`HAR_BLOCKS`; ``pool`` (global
    average), ``flatten``, ``classifier`` (linear). Channel counts are multiplied by
    ``width`` and rounded (see the module docstring for the width we ship and why).
    """

    def __init__(self, n_classes: int, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        if int(n_classes) < 2:
            raise ValueError(f"n_classes: expected an int >= 2, got {n_classes!r}")
        if int(in_channels) < 1:
            raise ValueError(f"in_channels: expected an int >= 1, got {in_channels!r}")
        if not (0 < float(width) <= 4):
            raise ValueError(f"width: expected a float in (0, 4], got {width!r}")
        self.hparams = {"n_classes": int(n_classes), "in_channels": int(in_channels),
                        "width": float(width)}
        cin = _channels(32, width)
        layers: list[nn.Module] = [ConvBNReLU(int(in_channels), cin)]
        for out, stride in HAR_BLOCKS:
            cout = _channels(out, width)
            layers.append(DepthwiseSeparable(cin, cout, stride))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.classifier = nn.Linear(cin, int(n_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


class KwsCNN(nn.Module):
    """Honk's ``cnn-trad-pool2`` keyword spotter.

    Input float32 (N, 1, 101, 40) MFCC, output logits (N, n_classes) (softmax outside):
    ``conv1`` 1->64 20x8 (no pad) -> [``bn1``] -> ``relu1`` -> ``pool1`` 2x2 max -> ``conv2``
    64->64 10x4 -> [``bn2``] -> ``relu2`` -> ``flatten`` -> ``dropout`` (training only) ->
    ``classifier`` linear.

    ``batchnorm`` (default True) adds ``bn1`` / ``bn2``, a training aid only: the runtime
    folds each into its convolution's weights and bias, so the network that is profiled,
    tuned and approximated has exactly the reference's operators and FLOPs (the BN rows stay
    in the operator table as folded, like the HAR model's). Measured: without them the CNN
    needs a warm-up and a small learning rate and reaches 0.49 held-out accuracy in 10
    epochs; with them 0.78 in 8 epochs on the former 6,720 clips, 0.86 in 16 epochs on
    14,400, 0.92 in 8 epochs on the default 43,200 (see the module docstring).
    """

    def __init__(self, n_classes: int = 12, in_channels: int = 1,
                 input_hw: tuple[int, int] = (101, 40), dropout: float = 0.5,
                 batchnorm: bool = True) -> None:
        super().__init__()
        h, w = (int(v) for v in input_hw)
        if h < 39 or w < 18:
            raise ValueError(f"input_hw: expected at least (39, 18) for the 20x8 / 10x4 "
                             f"kernels, got {input_hw!r}")
        if int(n_classes) < 2:
            raise ValueError(f"n_classes: expected an int >= 2, got {n_classes!r}")
        self.hparams = {"n_classes": int(n_classes), "in_channels": int(in_channels),
                        "input_hw": (h, w), "dropout": float(dropout),
                        "batchnorm": bool(batchnorm)}
        self.conv1 = nn.Conv2d(int(in_channels), 64, (20, 8))
        self.bn1 = nn.BatchNorm2d(64) if batchnorm else nn.Identity()
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(64, 64, (10, 4))
        self.bn2 = nn.BatchNorm2d(64) if batchnorm else nn.Identity()
        self.relu2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(float(dropout))
        ho, wo = (h - 19) // 2 - 9, (w - 7) // 2 - 3
        self.classifier = nn.Linear(64 * ho * wo, int(n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.classifier(self.dropout(self.flatten(x)))


def build_model(task: str, n_classes: int, input_shape: tuple[int, ...], **hparams) -> nn.Module:
    """The task's network: ``HarMobileNet`` (width :data:`DEFAULT_HAR_WIDTH` unless given)
    for "har", ``KwsCNN`` for "kws"; ``input_shape`` is (C, H, W)."""
    if len(input_shape) != 3:
        raise ValueError(f"input_shape: expected (C, H, W), got {input_shape!r}")
    if task == "har":
        hp = {"width": DEFAULT_HAR_WIDTH, **hparams}
        return HarMobileNet(n_classes, in_channels=input_shape[0], **hp)
    if task == "kws":
        return KwsCNN(n_classes, in_channels=input_shape[0], input_hw=input_shape[1:], **hparams)
    raise ValueError(f"task: expected one of ('har', 'kws'), got {task!r}")


