"""CTR-GCN (Chen, Zhang, Yuan, Li, Deng and Hu, ICCV 2021), with the module names of Uason-Chen/CTR-GCN @e13d758.

Three victims share the network here:

* ``ctrgcn``: ``model.ctrgcn.Model`` with its NTU-60 defaults. The state_dict that ``main.py`` saves (a
  raw OrderedDict) loads with ``strict=True``: the learned graph ``PA`` and the refinement scale
  ``alpha`` are parameters; there is no fixed ``A`` (with ``adaptive=True`` the official code keeps none).
* ``ctrgcn-tasar-hdm05``: the CTR-GCN that TASAR (yunfengdiao/Skeleton-Robustness-Benchmark) trains on
  HDM05: one person (``data_bn`` over 75 features), 65 classes, initial ``PA`` from the NTU graph
  although the joints are in HDM05's order (TASAR's quirk), and TASAR's input convention: its HDM05
  clips are already normalised 60-frame windows, so ``forward`` applies no preprocessing.
* ``frhead`` (``victims/frhead.py``) subclasses :class:`CTRGCN`.

``forward`` of ``ctrgcn`` takes raw clips ``(N, 3, T, V, M)`` in metres and applies, in differentiable
torch, the test-time pipeline of the CTR-GCN family (:func:`ctrgcn_pipeline`): the offline SGN
translation (joint 2, index 1, of person 0 in its first present frame becomes the origin of the whole
clip; no rotation), then the feeder's ``valid_crop_resize`` with ``p_interval=[0.95]``: the central
95 % of the valid (non-zero) frames, bilinearly resized to 64 frames. The test feeder has no random
step; the training-time random crop (``p`` in [0.5, 1]) and random rotation are not applied.

Persons: ``data_bn`` (``BatchNorm1d(M*V*C)``) gives each person slot its own input statistics. In
training mode the official order is kept (``data_bn`` on all slots, then persons folded into the
batch). In eval mode ``data_bn`` is a fixed affine map per channel, so each slot goes separately
through ``map_persons`` with its slice of ``data_bn``: empty slots are evaluated once per batch, and
the function is the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel import preprocess
from robustbench_skel.layout import NTU25, SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

__all__ = [
    "CTRGCN",
    "CTRGCNFamily",
    "CTRGCNTasarHDM05",
    "MultiScaleTCN",
    "TCNGCNUnit",
    "UnitTCN",
    "ctrgcn_pipeline",
    "spatial_graph",
    "stage_lengths",
]

WINDOW = 64  # the feeders' window_size
UNIT_SHAPES = ((64, 1), (64, 1), (64, 1), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1))  # l1..l10: (out, stride)


def ctrgcn_pipeline(x: torch.Tensor, window: int = WINDOW) -> torch.Tensor:
    """Test-time CTR-GCN-family preprocessing: SGN translation, then the central-95 % crop resized to ``window`` frames."""
    x = preprocess.translate_to_origin(x, joint=1, person=0)
    return preprocess.crop_resize(x, window, keep=0.95)


def spatial_graph(layout: SkeletonLayout) -> np.ndarray:
    """The 2s-AGCN / CTR-GCN ``spatial`` graph ``(3, V, V)``: identity, inward, outward.

    For an inward edge ``(i, j)`` (child, parent) the inward matrix has ``A[j, i] = 1`` and the outward
    one ``A[i, j] = 1``; both are divided by their column sums.
    """
    v = layout.num_joints
    inward, outward = np.zeros((v, v)), np.zeros((v, v))
    for i, j in layout.graph_edges:
        inward[j, i] = outward[i, j] = 1.0
    return np.stack([np.eye(v), normalize_columns(inward), normalize_columns(outward)]).astype(np.float32)


def normalize_columns(a: np.ndarray) -> np.ndarray:
    """``A @ D^-1`` with ``D`` the column sums (the official ``normalize_digraph``); empty columns stay zero."""
    degree = a.sum(axis=0)
    return a / np.where(degree > 0, degree, 1.0)[None, :]


def init_conv(conv: nn.Conv2d | nn.Conv1d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def init_bn(bn: nn.modules.batchnorm._BatchNorm, scale: float) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


# --------------------------------------------------------------------------------------------------
# Temporal modules (shared with HD-GCN).


class TemporalConv(nn.Module):
    """A ``kernel x 1`` temporal convolution (with bias) and BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), (stride, 1), (pad, 0), (dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class MultiScaleTCN(nn.Module):
    """Four branches of ``out/4`` channels, concatenated: 1x1 conv + BN + ReLU + temporal conv with
    each dilation, 1x1 conv + BN + ReLU + 3x1 max-pool + BN, and a strided 1x1 conv + BN. No residual
    (the official units build it with ``residual=False``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        stride: int = 1,
        dilations: tuple[int, ...] = (1, 2),
        temporal_conv: type[nn.Module] = TemporalConv,
    ) -> None:
        super().__init__()
        width = out_channels // (len(dilations) + 2)

        def squeeze() -> list[nn.Module]:
            return [nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]

        branches = [nn.Sequential(*squeeze(), temporal_conv(width, width, kernel_size, stride, d)) for d in dilations]
        branches.append(nn.Sequential(*squeeze(), nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(width)))
        branches.append(nn.Sequential(nn.Conv2d(in_channels, width, 1, stride=(stride, 1)), nn.BatchNorm2d(width)))
        self.branches = nn.ModuleList(branches)
        for m in self.modules():  # the official weights_init
            if isinstance(m, nn.Conv2d):
                init_conv(m)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class UnitTCN(nn.Module):
    """Strided 1x1 convolution + BatchNorm: the residual path of the down-sampling units."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=(stride, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        init_conv(self.conv)
        init_bn(self.bn, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class TCNGCNUnit(nn.Module):
    """``relu(tcn1(gcn1(x)) + residual(x))``; residual none (first unit), identity, or :class:`UnitTCN`."""

    def __init__(self, gcn: nn.Module, tcn: nn.Module, in_channels: int, out_channels: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.gcn1 = gcn
        self.tcn1 = tcn
        self.relu = nn.ReLU(inplace=True)
        self.residual: nn.Module | None = None
        if residual:
            identity = in_channels == out_channels and stride == 1
            self.residual = nn.Identity() if identity else UnitTCN(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn1(self.gcn1(x))
        return self.relu(y if self.residual is None else y + self.residual(x))


# --------------------------------------------------------------------------------------------------
# Channel-wise topology refinement graph convolution.


class CTRGC(nn.Module):
    """One subset's channel-wise topology refinement: ``conv4(tanh(conv1(x)_u - conv2(x)_v))`` from
    time-averaged features ``(N, C, V, V)``, and the value features ``conv3(x)``. :class:`UnitGCN` mixes
    the values over joints with ``PA[i] + alpha * refinement``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        rel = 8 if in_channels in (3, 9) else in_channels // 8
        self.conv1 = nn.Conv2d(in_channels, rel, 1)
        self.conv2 = nn.Conv2d(in_channels, rel, 1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv4 = nn.Conv2d(rel, out_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k = self.conv1(x).mean(dim=2), self.conv2(x).mean(dim=2)  # (N, R, V)
        return self.conv4(torch.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))), self.conv3(x)


class UnitGCN(nn.Module):
    """Sum of one :class:`CTRGC` per graph subset, BatchNorm, residual (1x1 conv + BN when widths differ), ReLU."""

    def __init__(self, in_channels: int, out_channels: int, graph: np.ndarray) -> None:
        super().__init__()
        self.PA = nn.Parameter(torch.from_numpy(graph.copy()))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.convs = nn.ModuleList(CTRGC(in_channels, out_channels) for _ in range(graph.shape[0]))
        self.down: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init_conv(m)
            elif isinstance(m, nn.BatchNorm2d):
                init_bn(m, 1)
        init_bn(self.bn, 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = 0
        for a, conv in zip(self.PA, self.convs):
            refinement, value = conv(x)
            y = y + torch.einsum("ncuv,nctv->nctu", refinement * self.alpha + a, value)
        return self.relu(self.bn(y) + self.down(x))


# --------------------------------------------------------------------------------------------------
# The family: data_bn, ten units l1..l10, pooling, fc; CTR-GCN's person handling and pipeline.

UnitFactory = Callable[[int, int, int, bool], nn.Module]  # (in, out, stride, residual) -> unit


class CTRGCNFamily(Victim):
    """``data_bn`` over ``M*V*C``, ten units built by ``make_unit`` (64 x4, 128 x3, 256 x3, stride 2 at
    l5 and l8, no block residual in l1), mean over time, joints and persons, ``fc``.

    ``window`` is the feeder's ``window_size`` (64 officially); ``drop_out`` the official dropout before ``fc`` (0).
    """

    layouts = ("ntu25",)
    head_key = "fc.bias"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int,
        make_unit: UnitFactory,
        in_channels: int = 3,
        drop_out: float = 0.0,
        window: int = WINDOW,
    ) -> None:
        super().__init__(num_classes, layout, num_persons)
        self.window = window
        self.data_bn = nn.BatchNorm1d(num_persons * in_channels * layout.num_joints)
        width = in_channels
        for i, (out, stride) in enumerate(UNIT_SHAPES, start=1):
            setattr(self, f"l{i}", make_unit(width, out, stride, i > 1))
            width = out
        self.fc = nn.Linear(width, num_classes)
        self.drop_out = nn.Dropout(drop_out) if drop_out else nn.Identity()
        nn.init.normal_(self.fc.weight, 0, math.sqrt(2.0 / num_classes))
        init_bn(self.data_bn, 1)

    def pipeline(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time preprocessing of raw clips (override for other input conventions)."""
        return ctrgcn_pipeline(x, self.window)

    def person_features(self, persons: torch.Tensor, stages: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """``(P, C, T, V)`` normalised person clips -> features ``(P, 256)`` pooled over time and joints.

        With ``stages`` given, the output of every unit ``l<i>`` is also put there under ``i`` (for
        training-only heads such as FR-Head's); the units never modify their input in place, so these maps
        keep their values after the later units ran.
        """
        for i in range(1, len(UNIT_SHAPES) + 1):
            persons = getattr(self, f"l{i}")(persons)
            if stages is not None:
                stages[i] = persons
        return persons.mean(dim=(2, 3))

    def _slot_features(self, slot: int, persons: torch.Tensor) -> torch.Tensor:
        p, c, t, v = persons.shape
        bn, s = self.data_bn, slice(slot * v * c, (slot + 1) * v * c)
        z = persons.permute(0, 3, 1, 2).reshape(p, v * c, t)  # data_bn index = (m * V + v) * C + c
        z = F.batch_norm(z, bn.running_mean[s], bn.running_var[s], bn.weight[s], bn.bias[s], False, 0.0, bn.eps)
        return self.person_features(z.view(p, v, c, t).permute(0, 2, 3, 1))

    def network(self, x: torch.Tensor, stages: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """Logits of preprocessed clips ``(N, C, T, V, M)``; ``stages`` (training mode): see :meth:`person_features`."""
        n, c, t, v, m = x.shape
        if self.training:
            z = self.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t))
            persons = z.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
            features = self.person_features(persons, stages).view(n, m, -1)
        else:
            features = torch.stack([self.map_persons(partial(self._slot_features, k), x[..., k]) for k in range(m)], dim=1)
        return self.fc(self.drop_out(features.mean(dim=1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(self.pipeline(x))

    def forward_with_stages(self, x: torch.Tensor, units: tuple[int, ...]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Training mode only: the logits of raw clips and the feature maps ``(N*M, C, T', V)`` after the
        given units (1-based, as ``l1``..``l10``), persons folded into the batch in the official order.

        ``forward`` stays as it is, so the test-time outputs and the state_dict do not change; only training
        code that asks for the maps gets them, from the same single pass that gives the logits.
        """
        if not self.training:
            raise RuntimeError("forward_with_stages is for training: call model.train() first")
        unknown = sorted(set(units) - set(range(1, len(UNIT_SHAPES) + 1)))
        if unknown:
            raise ValueError(f"no units {unknown}: the units are l1..l{len(UNIT_SHAPES)}")
        stages: dict[int, torch.Tensor] = {}
        logits = self.network(self.pipeline(x), stages)
        return logits, {i: stages[i] for i in units}


def stage_lengths(window: int) -> tuple[int, ...]:
    """Frames of the feature map after each unit l1..l10 for a ``window``-frame input (stride 2 rounds up)."""
    lengths, frames = [], window
    for _, stride in UNIT_SHAPES:
        frames = -(-frames // stride)
        lengths.append(frames)
    return tuple(lengths)


@VICTIMS.register("ctrgcn")
class CTRGCN(CTRGCNFamily):
    """CTR-GCN, joint stream, on the NTU ``spatial`` graph (initial value of the learned ``PA``)."""

    description = "CTR-GCN (ICCV 2021): channel-wise topology refinement GCN, SGN translation + crop-resize to 64 frames"
    graph_layout: ClassVar[SkeletonLayout | None] = None  # the graph of PA's initial value; None: the clip layout

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        in_channels: int = 3,
        drop_out: float = 0.0,
        window: int = WINDOW,
    ) -> None:
        graph = spatial_graph(self.graph_layout or layout)

        def make_unit(cin: int, cout: int, stride: int, residual: bool) -> nn.Module:
            tcn = MultiScaleTCN(cout, cout, kernel_size=5, stride=stride, dilations=(1, 2))
            return TCNGCNUnit(UnitGCN(cin, cout, graph), tcn, cin, cout, stride, residual)

        super().__init__(num_classes, layout, num_persons, make_unit, in_channels, drop_out, window)


@VICTIMS.register("ctrgcn-tasar-hdm05")
class CTRGCNTasarHDM05(CTRGCN):
    """TASAR's CTR-GCN for HDM05: one person, NTU graph, no preprocessing (TASAR's clips are already
    normalised 60-frame windows and its loader feeds them as they are)."""

    description = "CTR-GCN as trained by TASAR on HDM05 (65 classes, 1 person, NTU graph, clips fed as they are)"
    layouts = ("hdm05",)
    graph_layout = NTU25

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 1,
        in_channels: int = 3,
        drop_out: float = 0.0,
        window: int = WINDOW,
    ) -> None:
        super().__init__(num_classes, layout, num_persons, in_channels, drop_out, window)

    def pipeline(self, x: torch.Tensor) -> torch.Tensor:
        return x
