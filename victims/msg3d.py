"""MS-G3D (Liu, Zhang, Chen, Wang and Ouyang, CVPR 2020), with the module names of kenziyuliu/MS-G3D @2f927f4.

Two victims:

* ``msg3d``: the joint stream (``model.msg3d.Model``, NTU config ``num_gcn_scales=13``,
  ``num_g3d_scales=6``). Its state_dict loads with ``strict=True``: the learnable residual adjacencies
  ``A_res`` are saved; the disentangled k-hop adjacency powers are rebuilt from the binary NTU graph
  (no self loops) and kept as non-persistent buffers (plain attributes in the official code).
* ``msg3d-2s``: joint + bone ensemble (prefixes ``joint.`` and ``bone.``), logits summed;
  ``--checkpoint joint.pt,bone.pt`` loads two official files (e.g. ``ntu60-xsub-joint-fusion.pt``
  and ``ntu60-xsub-bone.pt``).

MS-G3D uses the same offline NTU normalisation as 2s-AGCN (its ``data_gen/`` is a copy); ``forward``
applies it in torch (:func:`victims.agcn.pre_normalization`), and the per-slot ``data_bn`` handling
of :class:`victims.agcn.PersonSlotNetwork`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS

from .agcn import BoneStreamMixin, PersonSlotNetwork, TwoStream
from .ctrgcn import TemporalConv

__all__ = ["MSG3D", "MSG3D2s", "k_hop_adjacency", "multiscale_adjacency", "spacetime_adjacency"]


# --------------------------------------------------------------------------------------------------
# Graphs


def k_hop_adjacency(a: np.ndarray, k: int) -> np.ndarray:
    """Disentangled k-hop adjacency: nodes at exactly ``k`` hops, plus self loops (identity for k = 0)."""
    eye = np.eye(len(a))
    if k == 0:
        return eye
    step = (a + eye) > 0
    reach = [eye > 0]
    for _ in range(k):
        reach.append((reach[-1].astype(np.float64) @ step) > 0)
    return reach[k].astype(np.float64) - reach[k - 1].astype(np.float64) + eye


def _normalize_symmetric(a: np.ndarray) -> np.ndarray:
    inv_sqrt = a.sum(axis=-1) ** -0.5
    return inv_sqrt[:, None] * a * inv_sqrt[None, :]


def multiscale_adjacency(a: np.ndarray, num_scales: int) -> np.ndarray:
    """``(num_scales * V, V)``: the symmetric-normalised k-hop adjacencies for k = 0..num_scales-1."""
    return np.concatenate([_normalize_symmetric(k_hop_adjacency(a, k)) for k in range(num_scales)]).astype(np.float32)


def spacetime_adjacency(a_binary: np.ndarray, window: int) -> np.ndarray:
    """G3D's cross-spacetime graph over a window of ``window`` frames: ``A + I`` tiled ``window x window``."""
    return np.tile(a_binary + np.eye(len(a_binary)), (window, window))


def _aggregate(x: torch.Tensor, graph: torch.Tensor, scales: int) -> torch.Tensor:
    """``(N, C, T, V)`` with ``graph (K*V, V)`` -> ``(N, K*C, T, V)``, channel index ``k*C + c``."""
    n, c, t, v = x.shape
    out = (x.reshape(-1, v) @ graph.t()).view(n, c, t, scales, v)  # one GEMM (x may be a strided view)
    return out.permute(0, 3, 1, 2, 4).reshape(n, scales * c, t, v)


# --------------------------------------------------------------------------------------------------
# Building blocks (official names)


class MLP(nn.Module):
    """1x1 conv + BN (+ ReLU unless linear), as ``layers.{0,1,2}``."""

    def __init__(self, in_channels: int, out_channels: int, relu: bool = True) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels), nn.ReLU() if relu else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MSGCN(nn.Module):
    """Multi-scale spatial GCN: disentangled k-hop aggregation (+ learnable ``A_res``), then an MLP with ReLU."""

    def __init__(self, num_scales: int, in_channels: int, out_channels: int, a_binary: np.ndarray) -> None:
        super().__init__()
        self.num_scales = num_scales
        powers = torch.from_numpy(multiscale_adjacency(a_binary, num_scales))
        self.register_buffer("A_powers", powers, persistent=False)
        self.A_res = nn.Parameter(torch.empty_like(powers).uniform_(-1e-6, 1e-6))
        self.mlp = MLP(in_channels * num_scales, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(_aggregate(x, self.A_powers + self.A_res, self.num_scales))


def _tcn_init(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out")
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class MSTCN(nn.Module):
    """Multi-scale temporal conv: four dilated 3x1 branches (dilations 1-4), a max-pool branch and a 1x1
    branch, concatenated, plus a residual (identity or strided 1x1 TemporalConv), then ReLU (optional)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, relu: bool = True, kernel_size: int = 3) -> None:
        super().__init__()
        dilations = (1, 2, 3, 4)
        width = out_channels // (len(dilations) + 2)

        def stem() -> list[nn.Module]:
            return [nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU()]

        branches = [nn.Sequential(*stem(), TemporalConv(width, width, kernel_size, stride, d)) for d in dilations]
        branches.append(nn.Sequential(*stem(), nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(width)))
        branches.append(nn.Sequential(nn.Conv2d(in_channels, width, 1, stride=(stride, 1)), nn.BatchNorm2d(width)))
        self.branches = nn.ModuleList(branches)
        if in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(in_channels, out_channels, 1, stride)
        self.act = nn.ReLU() if relu else nn.Identity()
        self.apply(_tcn_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(torch.cat([branch(x) for branch in self.branches], dim=1) + self.residual(x))


class UnfoldTemporalWindows(nn.Module):
    """``(N, C, T, V)`` -> ``(N, C, T', window*V)``: zero-padded sliding windows of frames, node ``w*V + v``."""

    def __init__(self, window: int, stride: int) -> None:
        super().__init__()
        self.window, self.stride = window, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, _, v = x.shape
        pad = (self.window - 1) // 2
        windows = F.pad(x, (0, 0, pad, pad)).unfold(2, self.window, self.stride)  # (N, C, T', V, W)
        return windows.transpose(3, 4).reshape(n, c, -1, self.window * v)


class SpatialTemporalMSGCN(nn.Module):
    """Multi-scale GCN on the cross-spacetime window graph (+ ``A_res``), linear MLP, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, a_binary: np.ndarray, num_scales: int, window: int) -> None:
        super().__init__()
        self.num_scales = num_scales
        scales = torch.from_numpy(multiscale_adjacency(spacetime_adjacency(a_binary, window), num_scales))
        self.register_buffer("A_scales", scales, persistent=False)
        self.A_res = nn.Parameter(torch.empty_like(scales).uniform_(-1e-6, 1e-6))
        self.mlp = MLP(in_channels * num_scales, out_channels, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.mlp(_aggregate(x, self.A_scales + self.A_res, self.num_scales)))


class MSG3DPathway(nn.Module):
    """One G3D window size: unfold windows, spacetime MS-GCN, collapse the window with a (1, W, 1) Conv3d, BN."""

    def __init__(self, in_channels: int, out_channels: int, a_binary: np.ndarray, num_scales: int, window: int, stride: int) -> None:
        super().__init__()
        self.window = window
        # embed_factor 1: the first block embeds straight to out_channels, later ones keep in_channels
        self.embed_channels = out_channels if in_channels == 3 else in_channels
        self.gcn3d = nn.Sequential(
            UnfoldTemporalWindows(window, stride),
            SpatialTemporalMSGCN(in_channels, self.embed_channels, a_binary, num_scales, window),
        )
        self.out_conv = nn.Conv3d(self.embed_channels, out_channels, kernel_size=(1, window, 1))
        self.out_bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, _, v = x.shape
        x = self.gcn3d(x).view(n, self.embed_channels, -1, self.window, v)
        return self.out_bn(self.out_conv(x).squeeze(3))


class MultiWindowMSG3D(nn.Module):
    """Sum of G3D pathways with windows 3 and 5."""

    def __init__(self, in_channels: int, out_channels: int, a_binary: np.ndarray, num_scales: int, stride: int) -> None:
        super().__init__()
        self.gcn3d = nn.ModuleList(MSG3DPathway(in_channels, out_channels, a_binary, num_scales, w, stride) for w in (3, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(pathway(x) for pathway in self.gcn3d)


# --------------------------------------------------------------------------------------------------
# Victims


@VICTIMS.register("msg3d")
class MSG3D(PersonSlotNetwork):
    """MS-G3D joint stream on the official NTU normalisation (see ``victims.agcn.pre_normalization``).

    Three STGC blocks (96, 192, 384 channels; strides 1, 2, 2): ReLU(MS-GCN -> MS-TCN -> MS-TCN
    + multi-window G3D) -> MS-TCN; global average pooling over time, joints and persons; linear head.
    Deterministic (no test-time randomness in the official NTU pipeline). Deviations: T is the clip's
    own length (not 300); persons keep the clip's order (no motion-energy ranking).
    """

    description = "MS-G3D (CVPR 2020) joint stream: multi-scale disentangled GCN + G3D on view-normalised joints"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        num_gcn_scales: int = 13,
        num_g3d_scales: int = 6,
        in_channels: int = 3,
    ) -> None:
        super().__init__(num_classes, layout, num_persons)
        a = layout.adjacency().astype(np.float64)  # binary, symmetric, no self loops
        c1, c2, c3 = 96, 192, 384
        self.data_bn = nn.BatchNorm1d(num_persons * in_channels * layout.num_joints)
        for i, (c_in, c_mid, c_out, stride) in enumerate(((in_channels, c1, c1, 1), (c1, c1, c2, 2), (c2, c2, c3, 2)), start=1):
            setattr(self, f"gcn3d{i}", MultiWindowMSG3D(c_in, c_out, a, num_g3d_scales, stride))
            setattr(
                self,
                f"sgcn{i}",
                nn.Sequential(
                    MSGCN(num_gcn_scales, c_in, c_mid, a), MSTCN(c_mid, c_out, stride=stride), MSTCN(c_out, c_out, relu=False)
                ),
            )
            setattr(self, f"tcn{i}", MSTCN(c_out, c_out))
        self.fc = nn.Linear(c3, num_classes)

    def person_features(self, persons: torch.Tensor) -> torch.Tensor:
        x = persons
        for i in (1, 2, 3):
            x = F.relu(getattr(self, f"sgcn{i}")(x) + getattr(self, f"gcn3d{i}")(x))
            x = getattr(self, f"tcn{i}")(x)
        return x.mean(dim=(2, 3))


@VICTIMS.register("msg3d-bone")
class MSG3DBone(BoneStreamMixin, MSG3D):
    """MS-G3D bone stream alone (the second half of ``msg3d-2s``)."""

    description = "MS-G3D (CVPR 2020) bone stream: the network on bone vectors of the view-normalised joints"


@VICTIMS.register("msg3d-2s")
class MSG3D2s(TwoStream):
    """MS-G3D joint + bone ensemble (two ``msg3d`` networks, logits summed)."""

    description = "MS-G3D (CVPR 2020) two-stream: joint and bone networks, logits summed"
    stream = MSG3D
