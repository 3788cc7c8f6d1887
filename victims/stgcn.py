"""ST-GCN (Yan, Xiong and Lin, AAAI 2018), with the module names of yysijie/st-gcn.

The official checkpoints (``st_gcn.ntu-xsub.pt``, ``st_gcn.ntu-xview.pt``) load with ``strict=True``:
``A`` is a persistent buffer, ``edge_importance.i`` are parameters, ``data_bn`` normalises the
``V*C`` raw coordinates with statistics shared across persons. ST-GCN's NTU pipeline feeds raw Kinect
coordinates (no centring, no rotation), so ``forward`` applies no preprocessing.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

__all__ = ["STGCN", "spatial_partition"]


def _hop_distance(num_joints: int, edges: list[tuple[int, int]], max_hop: int) -> np.ndarray:
    adjacency = np.zeros((num_joints, num_joints))
    for i, j in edges:
        adjacency[i, j] = adjacency[j, i] = 1
    hop = np.full((num_joints, num_joints), np.inf)
    reach = [np.linalg.matrix_power(adjacency, d) > 0 for d in range(max_hop + 1)]
    for d in range(max_hop, -1, -1):
        hop[reach[d]] = d
    return hop


def spatial_partition(layout: SkeletonLayout, max_hop: int = 1) -> np.ndarray:
    """ST-GCN's 'spatial configuration' adjacency ``(3, V, V)``: root, centripetal, centrifugal.

    Reproduces the official construction, including its quirk: distances to the centre joint are
    taken from the hop matrix capped at ``max_hop``, so joints farther than one hop from the centre
    all compare as equally far (infinite) and fall into the root subset. The released checkpoints
    store this ``A`` and were trained with it.
    """
    v = layout.num_joints
    edges = [(j, j) for j in range(v)] + list(layout.graph_edges)
    hop = _hop_distance(v, edges, max_hop)
    adjacency = (hop <= max_hop).astype(np.float64)
    degree = adjacency.sum(axis=0)
    normalized = adjacency @ np.diag(np.where(degree > 0, 1.0 / np.where(degree > 0, degree, 1), 0.0))
    center = layout.center
    subsets = []
    for h in range(max_hop + 1):
        root, close, far = (np.zeros((v, v)) for _ in range(3))
        for i in range(v):
            for j in range(v):
                if hop[j, i] != h:
                    continue
                if hop[j, center] == hop[i, center]:
                    root[j, i] = normalized[j, i]
                elif hop[j, center] > hop[i, center]:
                    close[j, i] = normalized[j, i]
                else:
                    far[j, i] = normalized[j, i]
        if h == 0:
            subsets.append(root)
        else:
            subsets.extend([root + close, far])
    return np.stack(subsets).astype(np.float32)


class GraphConv(nn.Module):
    """One 1x1 convolution to K groups of channels, mixed over joints by the K adjacency matrices."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels * kernel_size, kernel_size=1)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        n, kc, t, v = x.shape
        x = x.view(n, self.kernel_size, kc // self.kernel_size, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, adjacency)


class STGCNBlock(nn.Module):
    """Spatial graph convolution, then a 9x1 temporal convolution, with a residual connection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, residual: bool, dropout: float, partitions: int) -> None:
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, partitions)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (9, 1), (stride, 1), (4, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        res = 0 if self.residual is None else self.residual(x)
        return F.relu(self.tcn(self.gcn(x, adjacency)) + res)


# (in, out, stride) of the ten blocks; the first has no residual and no dropout.
_BLOCKS = ((64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1))


@VICTIMS.register("stgcn")
class STGCN(Victim):
    """ST-GCN on raw joint coordinates, spatial-configuration partitioning, learnable edge importance."""

    description = "ST-GCN (AAAI 2018): spatial-temporal graph convolution on raw coordinates"
    layouts = ("ntu25", "hdm05", "openpose18", "coco17", "nw-ucla20")
    head_key = "fcn.bias"

    def __init__(self, num_classes: int, layout: SkeletonLayout, num_persons: int = 2, in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__(num_classes, layout, num_persons)
        self.register_buffer("A", torch.from_numpy(spatial_partition(layout)))
        partitions, v = self.A.shape[0], self.A.shape[1]
        self.data_bn = nn.BatchNorm1d(in_channels * v)
        blocks = [STGCNBlock(in_channels, 64, 1, residual=False, dropout=0.0, partitions=partitions)]
        blocks += [STGCNBlock(i, o, s, residual=True, dropout=dropout, partitions=partitions) for i, o, s in _BLOCKS]
        self.st_gcn_networks = nn.ModuleList(blocks)
        self.edge_importance = nn.ParameterList([nn.Parameter(torch.ones_like(self.A)) for _ in blocks])
        self.fcn = nn.Conv2d(256, num_classes, kernel_size=1)

    def person_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(P, C, T, V)`` person clips -> pooled features ``(P, 256)``."""
        p, c, t, v = x.shape
        x = self.data_bn(x.permute(0, 3, 1, 2).reshape(p, v * c, t))  # BN index = v*C + c, as official
        x = x.view(p, v, c, t).permute(0, 2, 3, 1)
        for block, importance in zip(self.st_gcn_networks, self.edge_importance):
            x = block(x, self.A * importance)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v, m = x.shape
        persons = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        features = self.map_persons(self.person_features, persons).view(n, m, -1).mean(dim=1)
        return self.fcn(features[:, :, None, None]).flatten(1)
