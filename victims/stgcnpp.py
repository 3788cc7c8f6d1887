"""ST-GCN++ (Duan, Wang, Chen and Lin, ACM MM 2022) as released in PYSKL (kennymckormick/pyskl @3f6795f).

Config ``configs/stgcn++/stgcn++_ntu60_xsub_3dkp/j.py``: PYSKL's ``STGCN`` backbone with
``gcn_adaptive='init'`` (each block's adjacency ``gcn.A`` is a Parameter initialised from the
``spatial`` graph ``[I, In, Out]``), ``gcn_with_res=True`` (a residual inside the graph convolution),
``tcn_type='mstcn'`` (six temporal branches: 3x1 convolutions with dilation 1-4, a max-pool, a strided
1x1 convolution, then BN-ReLU-1x1 ``transform`` and BN), ``data_bn_type='VC'``, and ``GCNHead``
(average over time, joints and persons, then ``fc_cls``). The module has submodules ``backbone`` and
``cls_head``, so the keys of an mmcv checkpoint ``{'meta', 'state_dict'}`` (``backbone.*``,
``cls_head.fc_cls.*``) load as they are; mmaction2 1.x checkpoints name the classifier
``cls_head.fc.*`` and are renamed by :meth:`STGCNPP.remap_checkpoint_keys`. The graph is PYSKL's
``nturgb+d`` layout, whose hand-tip and thumb both hang off the hand joint (unlike ST-GCN's chain).

``forward`` takes raw clips ``(N, 3, T, V, M)`` in metres and applies PYSKL's 3D test pipeline in
differentiable torch (:func:`pre_normalize_3d`, then ``UniformSample clip_len=100`` and
``FormatGCNInput num_person=2``), then the backbone on ``(N, M, T, V, C)``. PYSKL tests ten random
100-frame clips (seed 255) and averages their probabilities; we take one deterministic clip made of
the centre frame of each of 100 equal segments (``uniform_sample_indices``; shorter clips are looped,
as PYSKL does), so the victim is a deterministic function.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from robustbench_skel import preprocess
from robustbench_skel.checkpoint import StateDict
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

__all__ = ["STGCNPP", "pre_normalize_3d", "pyskl_spatial_graph", "PYSKL_NTU_EDGES"]

# PYSKL's 'nturgb+d' layout, (child, parent), 1-based (pyskl/utils/graph.py).
PYSKL_NTU_EDGES: tuple[tuple[int, int], ...] = (
    (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10), (12, 11),
    (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 8), (23, 8), (24, 12), (25, 12),
)


def pyskl_spatial_graph(num_joints: int = 25, edges: tuple[tuple[int, int], ...] = PYSKL_NTU_EDGES) -> torch.Tensor:
    """PYSKL's ``spatial`` mode ``(3, V, V)``: identity, inward and outward adjacency, column-normalised.

    ``edge2mat`` puts edge ``(i, j)`` at ``[j, i]``; each column is divided by its sum (if non-zero).
    """
    def normalized(pairs: list[tuple[int, int]]) -> np.ndarray:
        a = np.zeros((num_joints, num_joints))
        for i, j in pairs:
            a[j, i] = 1.0
        col = a.sum(axis=0)
        return a / np.where(col > 0, col, 1.0)

    inward = [(i - 1, j - 1) for i, j in edges]
    outward = [(j, i) for i, j in inward]
    return torch.from_numpy(np.stack([np.eye(num_joints), normalized(inward), normalized(outward)])).float()


def pre_normalize_3d(x: torch.Tensor) -> torch.Tensor:
    """PYSKL's ``PreNormalize3D`` on ``(N, 3, T, V, M)`` clips, differentiable; returns ``(N, 3, T, V, M)``.

    1. If person 1 is present in more frames than person 0, the two slots are swapped.
    2. The frames where (the new) person 0 is absent are dropped; the kept frames move to the start,
       zeros follow (so the clip's valid length is the number of kept frames).
    3. Joint index 1 of person 0 in the first kept frame is subtracted from every non-zero joint (one
       vector for the whole clip; zero joints stay zero).
    4. Rotation so that person 0's joints 0 -> 1 in that frame point along +z, then joints 4 -> 8
       (PYSKL's ``joint_rshoulder - joint_lshoulder``) along +x (``align_body_axes``).
    The person swap and the frame selection are piecewise constant; the gradient flows through the
    selected values.
    """
    n, c, t, v, m = x.shape
    present = preprocess.frame_mask(x)[:, 0, :, 0, :] > 0  # (N, T, M)
    if m >= 2:
        swap = present[..., 1].sum(dim=1) > present[..., 0].sum(dim=1)
        order = torch.tensor([1, 0, *range(2, m)], device=x.device)
        x = torch.where(swap[:, None, None, None, None], x[..., order], x)
        present = torch.where(swap[:, None, None], present[..., order], present)
    kept = present[..., 0]
    frames = torch.sort((~kept).to(torch.uint8), dim=1, stable=True).indices  # kept frames first, in order
    valid = torch.arange(t, device=x.device)[None, :] < kept.sum(dim=1, keepdim=True)  # (N, T)
    x = preprocess.gather_frames(x, frames) * valid.to(x.dtype)[:, None, :, None, None]
    center = x[:, :, 0, 1, 0]
    x = (x - center[:, :, None, None, None]) * preprocess.joint_mask(x)
    return preprocess.align_body_axes(x, z_joints=(0, 1), x_joints=(4, 8), person=0, frame=0)


class UnitGCN(nn.Module):
    """PYSKL ``unit_gcn`` (adaptive='init', conv_pos='pre', with_res=True): ``relu(bn(sum_k A_k conv_k(x)) + down(x))``."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        self.A = nn.Parameter(adjacency.clone())
        self.conv = nn.Conv2d(in_channels, out_channels * adjacency.shape[0], 1)
        self.down = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
            if in_channels != out_channels
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        res = x if self.down is None else self.down(x)
        y = self.conv(x).view(n, self.A.shape[0], -1, t, v)
        return self.act(self.bn(torch.einsum("nkctv,kvw->nctw", y, self.A)) + res)


class UnitTCN(nn.Module):
    """PYSKL ``unit_tcn``: a temporal convolution, BatchNorm (or none) and dropout."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1, dilation: int = 1, norm: bool = True
    ) -> None:
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), (stride, 1), (pad, 0), (dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x)))


class MSTCN(nn.Module):
    """PYSKL ``mstcn`` with ``ms_cfg = [(3,1), (3,2), (3,3), (3,4), ('max',3), '1x1']``; branch 0 takes the remainder channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        mid = out_channels // 6
        widths = [out_channels - 5 * mid] + [mid] * 5

        def entry(width: int) -> list[nn.Module]:
            return [nn.Conv2d(in_channels, width, 1), nn.BatchNorm2d(width), nn.ReLU()]

        branches: list[nn.Module] = [
            nn.Sequential(*entry(widths[i]), UnitTCN(widths[i], widths[i], 3, stride, dilation, norm=False))
            for i, dilation in enumerate((1, 2, 3, 4))
        ]
        branches.append(nn.Sequential(*entry(widths[4]), nn.MaxPool2d((3, 1), (stride, 1), (1, 0))))
        branches.append(nn.Conv2d(in_channels, widths[5], 1, stride=(stride, 1)))
        self.branches = nn.ModuleList(branches)
        self.transform = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Conv2d(out_channels, out_channels, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.transform(torch.cat([branch(x) for branch in self.branches], dim=1))))


class STGCNBlock(nn.Module):
    """``relu(tcn(gcn(x)) + residual(x))``; the residual is a strided 1x1 ``unit_tcn`` where shapes change."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: torch.Tensor, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.gcn = UnitGCN(in_channels, out_channels, adjacency)
        self.tcn = MSTCN(out_channels, out_channels, stride)
        self.relu = nn.ReLU()
        same = in_channels == out_channels and stride == 1
        self.identity = residual and same
        self.residual = UnitTCN(in_channels, out_channels, 1, stride) if residual and not same else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.residual(x) if self.residual is not None else (x if self.identity else 0)
        return self.relu(self.tcn(self.gcn(x)) + res)


# (in, out, stride) of PYSKL STGCN's ten stages (inflate and down-sample at stages 5 and 8)
_BLOCKS = (
    (3, 64, 1), (64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2),
    (128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1),
)


class Backbone(nn.Module):
    """PYSKL ``STGCN``: ``(N, M, T, V, C)`` -> features ``(N, M, 256, T/4, V)``."""

    def __init__(
        self, adjacency: torch.Tensor, num_persons: int = 2, in_channels: int = 3, data_bn_type: Literal["VC", "MVC"] = "VC"
    ) -> None:
        super().__init__()
        v = adjacency.shape[-1]
        self.data_bn_type = data_bn_type
        self.data_bn = nn.BatchNorm1d((num_persons if data_bn_type == "MVC" else 1) * in_channels * v)
        blocks = [(in_channels, *_BLOCKS[0][1:])] + list(_BLOCKS[1:])
        self.gcn = nn.ModuleList(STGCNBlock(i, o, adjacency, s, residual=k > 0) for k, (i, o, s) in enumerate(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m, t, v, c = x.shape
        x = x.permute(0, 1, 3, 4, 2)  # (N, M, V, C, T): BN index v*C + c (VC) or m*V*C + v*C + c (MVC)
        x = self.data_bn(x.reshape(n, m * v * c, t) if self.data_bn_type == "MVC" else x.reshape(n * m, v * c, t))
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for block in self.gcn:
            x = block(x)
        return x.reshape((n, m) + x.shape[1:])


class GCNHead(nn.Module):
    """PYSKL ``GCNHead`` (dropout 0): average over time, joints and persons, then ``fc_cls``."""

    def __init__(self, num_classes: int, in_channels: int = 256) -> None:
        super().__init__()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc_cls.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_cls(x.mean(dim=(3, 4)).mean(dim=1))


@VICTIMS.register("stgcnpp")
class STGCNPP(Victim):
    """ST-GCN++ (PYSKL, joint modality, NTU 3D skeletons) with PYSKL's 3D test pipeline inside ``forward``.

    With ``data_bn_type='VC'`` (the released config) every person goes through the same network, so the
    persons are mapped through ``map_persons`` (empty slots evaluated once per batch in eval mode) and
    their pooled features averaged, which is what ``GCNHead`` computes. With ``'MVC'`` (statistics per
    person slot) the backbone runs on all persons at once.
    """

    description = "ST-GCN++ (PYSKL): ST-GCN with adaptive graphs, residual GCN and multi-scale TCN"
    layouts = ("ntu25",)
    head_key = "cls_head.fc_cls.bias"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        clip_len: int = 100,
        data_bn_type: Literal["VC", "MVC"] = "VC",
    ) -> None:
        super().__init__(num_classes, layout, num_persons)
        self.clip_len = clip_len
        self.backbone = Backbone(pyskl_spatial_graph(layout.num_joints), num_persons, 3, data_bn_type)
        self.cls_head = GCNHead(num_classes, 256)

    def remap_checkpoint_keys(self, state: StateDict) -> StateDict:
        """mmaction2 1.x names the classifier ``cls_head.fc``; PYSKL names it ``cls_head.fc_cls``."""
        return {("cls_head.fc_cls." + k[len("cls_head.fc."):] if k.startswith("cls_head.fc.") else k): w for k, w in state.items()}

    def pipeline(self, x: torch.Tensor) -> torch.Tensor:
        """Raw ``(N, 3, T, V, M)`` -> the backbone input ``(N, M, clip_len, V, 3)``."""
        x = pre_normalize_3d(x)
        index = preprocess.uniform_sample_indices(preprocess.frame_mask(x)[:, 0, :, 0, 0].sum(dim=1).long(), self.clip_len)
        return preprocess.gather_frames(x, index).permute(0, 4, 2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pipeline(x)
        n, m = x.shape[:2]
        if self.backbone.data_bn_type == "MVC":
            return self.cls_head(self.backbone(x))
        features = self.map_persons(lambda p: self.backbone(p[:, None]).mean(dim=(3, 4))[:, 0], x.reshape(n * m, *x.shape[2:]))
        return self.cls_head.fc_cls(features.view(n, m, -1).mean(dim=1))
