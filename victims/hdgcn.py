"""HD-GCN (Lee, Lee, Lee and Lee, ICCV 2023), with the module names of Jho-Yonsei/HD-GCN @672da2c.

The state_dict that ``main.py`` saves (a raw OrderedDict) loads with ``strict=True``, including the
official aliasing: ``HD_Gconv`` registers its last per-layer module list twice, as ``gcn1.conv.5``
and as ``gcn1.conv_d``, so every tensor of ``gcn1.conv.5.*`` is saved a second time under
``gcn1.conv_d.*`` (270 entries). Here the same module is registered under both names, so both keys
exist, are tied, and count once in the parameters.

The network is CTR-GCN's (:mod:`robustbench_skel.victims.ctrgcn`: ``data_bn`` over ``M*V*C``, ten
units, multi-scale TCN, pooling, ``fc``) with the graph convolution replaced by the hierarchically
decomposed one: the joints are grouped by hop distance from a centre of mass (CoM joint 1, 2 or 21,
1-based), and each pair of adjacent groups gives one layer of the learned ``PA`` ``(6, 3, V, V)``
(identity on both groups, edges outward to the next group, edges back). Per layer, a 1x1 conv to
``C/4`` channels feeds three graph branches (conv + BN) and an EdgeConv on the k=5 nearest joints in
feature space; the six layers are summed (l1) or weighted by the attention-guided hierarchy
aggregation (``aha``: an EdgeConv over the six layer summaries, k=3). The temporal convolutions use a
bias-free conv plus a separate ``bias`` parameter ``(1, C, 1, 1)``.

``com`` picks the hierarchy; it changes the initial ``PA`` and which joints ``aha`` summarises, but no
key or shape, so a checkpoint does not tell which CoM it was trained with. The default, 1, is the
config of the checkpoint manifest (``joint_com_1.yaml``); the authors' six-way ensemble uses joint
and bone streams with CoM 1, 2 and 21.

``forward`` applies the CTR-GCN-family test-time pipeline of the data (HD-GCN uses CTR-GCN's files and
feeder): the SGN translation (joint 2 of person 0 in its first present frame becomes the origin),
then the central 95 % of the valid frames resized to 64 frames; the person handling (per-slot
``data_bn`` in eval mode through ``map_persons``) is CTR-GCN's.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from robustbench_skel.checkpoint import StateDict
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS

from .ctrgcn import WINDOW, CTRGCNFamily, MultiScaleTCN, TCNGCNUnit, init_bn, init_conv, normalize_columns

__all__ = ["HDGCN", "hierarchy_groups", "hierarchical_graph"]

# NTU joints (1-based) grouped by hop distance from the centre of mass (graph/tools.py get_groups).
_NTU_GROUPS: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((1,), (2, 13, 17), (14, 18, 21), (3, 5, 9, 15, 19), (4, 6, 10, 16, 20), (7, 11), (8, 12, 22, 23, 24, 25)),
    2: ((2,), (1, 21), (13, 17, 3, 5, 9), (14, 18, 4, 6, 10), (15, 19, 7, 11), (16, 20, 8, 12), (22, 23, 24, 25)),
    21: ((21,), (2, 3, 5, 9), (4, 6, 10, 1), (7, 11, 13, 17), (8, 12, 14, 18), (22, 23, 24, 25, 15, 19), (16, 20)),
}


def hierarchy_groups(com: int) -> list[list[int]]:
    """The seven 0-based joint groups of the NTU hierarchy rooted at ``com`` (1-based: 1, 2 or 21)."""
    if com not in _NTU_GROUPS:
        raise ValueError(f"HD-GCN's centre of mass is joint 1, 2 or 21 (1-based), not {com}")
    return [[j - 1 for j in group] for group in _NTU_GROUPS[com]]


def hierarchical_graph(com: int, num_joints: int = 25) -> np.ndarray:
    """``(L, 3, V, V)``, one layer per adjacent pair of groups (inner, outer): identity on both groups
    (not normalised), edges inner -> outer and outer -> inner (``A[target, source] = 1``), each divided
    by its column sums, as the official ``get_hierarchical_graph``."""
    groups = hierarchy_groups(com)
    layers = []
    for inner, outer in zip(groups[:-1], groups[1:]):
        identity, forward = np.zeros((num_joints, num_joints)), np.zeros((num_joints, num_joints))
        identity[inner + outer, inner + outer] = 1.0
        forward[np.ix_(outer, inner)] = 1.0
        layers.append(np.stack([identity, normalize_columns(forward), normalize_columns(forward.T)]))
    return np.stack(layers).astype(np.float32)


class HDTemporalConv(nn.Module):
    """HD-GCN's temporal conv: bias-free ``kernel x 1`` conv, a separate ``bias`` ``(1, C, 1, 1)``, BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), (stride, 1), (pad, 0), (dilation, 1), bias=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) + self.bias)


class EdgeConv(nn.Module):
    """DGCNN edge convolution over nodes ``(N, C, V)``: for each node, its ``k`` nearest nodes in feature
    space (itself included), ``[neighbour - node, node]`` -> 1x1 conv, BN, LeakyReLU(0.2), max over the
    neighbours. On ``(N, C, T, V)`` input the features are averaged over time first and the result is
    repeated over time. The neighbour choice is piecewise constant; gradients flow through the features."""

    def __init__(self, in_channels: int, out_channels: int, k: int) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.2, inplace=True),
        )
        init_conv(self.conv[0])
        init_bn(self.conv[1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2] if x.dim() == 4 else None
        nodes = x.mean(dim=2) if frames is not None else x  # (N, C, V)
        n, c, v = nodes.shape
        with torch.no_grad():
            sq = nodes.pow(2).sum(dim=1)
            neg_dist = 2 * nodes.transpose(1, 2) @ nodes - sq[:, :, None] - sq[:, None, :]  # -|x_i - x_j|^2
            idx = neg_dist.topk(self.k, dim=-1).indices  # (N, V, k)
        neighbours = torch.gather(nodes, 2, idx.reshape(n, 1, v * self.k).expand(n, c, v * self.k)).view(n, c, v, self.k)
        centre = nodes.unsqueeze(-1).expand_as(neighbours)
        out = self.conv(torch.cat([neighbours - centre, centre], dim=1)).amax(dim=-1)  # (N, C', V)
        return out if frames is None else out.unsqueeze(2).expand(-1, -1, frames, -1)


class AHA(nn.Module):
    """Attention-guided hierarchy aggregation of the ``L`` layer outputs ``(N, C, T, V)`` into one.

    Each layer: max over time, 1x1 conv to ``C/4``, mean over the joints of its two groups; an
    EdgeConv (k=3) across the ``L`` layer summaries, ``Conv1d`` back to ``C``, sigmoid: the weight of
    each layer and channel in the sum. (The official code stacks the layers into ``(N, C, L, T, V)``;
    summing the list is the same function without that large copy.)
    """

    def __init__(self, channels: int, groups: list[list[int]], num_joints: int) -> None:
        super().__init__()
        inter = channels // 4
        self.conv_down = nn.Sequential(nn.Conv2d(channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU(inplace=True))
        self.edge_conv = EdgeConv(inter, inter, k=3)
        self.aggregate = nn.Conv1d(inter, channels, 1)
        pooling = torch.zeros(len(groups) - 1, num_joints)  # row i: mean over the joints of groups i and i+1
        for i, (inner, outer) in enumerate(zip(groups[:-1], groups[1:])):
            pooling[i, inner + outer] = 1.0 / len(inner + outer)
        self.register_buffer("pooling", pooling, persistent=False)

    def forward(self, layers: list[torch.Tensor]) -> torch.Tensor:
        summary = self.conv_down(torch.stack([y.amax(dim=2) for y in layers], dim=2))  # (N, C/4, L, V)
        summary = torch.einsum("nclv,lv->ncl", summary, self.pooling)
        weights = torch.sigmoid(self.aggregate(self.edge_conv(summary)))  # (N, C, L)
        return sum(y * weights[:, :, i, None, None] for i, y in enumerate(layers))


class HDGconv(nn.Module):
    """Hierarchically decomposed graph convolution (official ``HD_Gconv``)."""

    def __init__(self, in_channels: int, out_channels: int, graph: np.ndarray, groups: list[list[int]], att: bool) -> None:
        super().__init__()
        num_layers, num_subsets, num_joints = graph.shape[0], graph.shape[1], graph.shape[2]
        inter = out_channels // (num_subsets + 1)
        self.PA = nn.Parameter(torch.from_numpy(graph.copy()))
        self.conv_down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, inter, 1), nn.BatchNorm2d(inter), nn.ReLU(inplace=True)) for _ in range(num_layers)
        )
        self.conv = nn.ModuleList(
            nn.ModuleList([*(nn.Sequential(nn.Conv2d(inter, inter, 1), nn.BatchNorm2d(inter)) for _ in range(num_subsets)), EdgeConv(inter, inter, k=5)])
            for _ in range(num_layers)
        )
        self.conv_d = self.conv[-1]  # the official alias: the last layer's modules saved a second time
        self.aha = AHA(out_channels, groups, num_joints) if att else None
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
        layers = []
        for a, down, branches in zip(self.PA, self.conv_down, self.conv):
            z = down(x)
            mixed = [conv(torch.einsum("nctu,vu->nctv", z, a[j])) for j, conv in enumerate(branches[:-1])]
            layers.append(torch.cat([*mixed, branches[-1](z)], dim=1))
        out = sum(layers) if self.aha is None else self.aha(layers)
        return self.relu(self.bn(out) + self.down(x))


@VICTIMS.register("hdgcn")
class HDGCN(CTRGCNFamily):
    """HD-GCN, joint stream, hierarchy rooted at joint ``com`` (1-based; 1, 2 or 21)."""

    description = "HD-GCN (ICCV 2023): hierarchically decomposed GCN with attention-guided hierarchy aggregation, CTR-GCN pipeline"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        in_channels: int = 3,
        drop_out: float = 0.0,
        window: int = WINDOW,
        com: int = 1,
    ) -> None:
        groups = hierarchy_groups(com)
        graph = hierarchical_graph(com, layout.num_joints)

        def make_unit(cin: int, cout: int, stride: int, residual: bool) -> nn.Module:
            gcn = HDGconv(cin, cout, graph, groups, att=residual)  # l1 (no block residual) has no aha
            tcn = MultiScaleTCN(cout, cout, kernel_size=5, stride=stride, dilations=(1, 2), temporal_conv=HDTemporalConv)
            return TCNGCNUnit(gcn, tcn, cin, cout, stride, residual)

        super().__init__(num_classes, layout, num_persons, make_unit, in_channels, drop_out, window)
        self.com = com

    def remap_checkpoint_keys(self, state: StateDict) -> StateDict:
        """Fill in the aliased ``gcn1.conv_d.*`` keys from ``gcn1.conv.<last>.*`` when a file lacks them."""
        if any(".gcn1.conv_d." in k for k in state):
            return state
        last = len(self.l1.gcn1.conv) - 1
        state = dict(state)
        for key in list(state):
            head, sep, tail = key.partition(f".gcn1.conv.{last}.")
            if sep:
                state[f"{head}.gcn1.conv_d.{tail}"] = state[key]
        return state
