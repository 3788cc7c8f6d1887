"""InfoGCN (Chi, Ha, Chi, Lee, Huang and Ramani, CVPR 2022), with the module names of stnoah1/infogcn @873feaa.

The state_dict that ``main.py`` saves (a raw OrderedDict) loads with ``strict=True``. Not saved, as in
the official code: the relative-representation matrix ``A_vector`` (here a non-persistent float32
buffer; the official one is float64 and only works under Apex AMP) and ``z_prior`` (used only by the
training loss, so absent here).

The network: each frame's joints are mapped to the k-th mode relative representation
``(I - A_outward^k) x`` (k=1, the joint model of the README commands: every joint minus its parent
along InfoGCN's own graph, oriented from the spine-middle outwards; the spine-middle keeps its
position), embedded by ``Linear(3, 64)`` plus a learned joint embedding, normalised by
``data_bn = BatchNorm1d(M*V*64)``, then nine blocks of self-attention graph convolution + multi-scale
TCN, pooling, ``fc`` and the information-bottleneck head. The official forward returns
``(logits, z)``; ours returns the logits. ``z`` is the mean ``fc_mu`` in eval mode and a sample
``mu + eps * exp(noise_ratio * logvar)`` in training mode, as officially.

``forward`` takes raw clips ``(N, 3, T, V, M)`` in metres and applies the test-time pipeline of the
``*_aligned.npz`` files in differentiable torch: the CTR-GCN/SGN translation (joint 2 of person 0 in
its first present frame becomes the origin), InfoGCN's ``align_skeleton`` (:func:`align_skeleton`),
then the feeder's ``valid_crop_resize`` to 64 frames keeping the central 95 % (``crop_resize``). The
test feeder has no random step, so nothing had to be made deterministic.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel import preprocess
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

from .ctrgcn import TemporalConv

__all__ = ["InfoGCN", "align_skeleton", "relative_mode_matrix", "INFOGCN_NTU_EDGES"]

# InfoGCN's NTU graph, (parent, child), 1-based (graph/ntu_rgb_d.py): ST-GCN's topology oriented
# away from the spine-middle joint 2.
INFOGCN_NTU_EDGES: tuple[tuple[int, int], ...] = (
    (2, 1), (2, 21), (21, 3), (3, 4), (21, 5), (5, 6), (6, 7), (7, 8), (8, 23), (23, 22), (21, 9), (9, 10),
    (10, 11), (11, 12), (12, 25), (25, 24), (1, 13), (13, 14), (14, 15), (15, 16), (1, 17), (17, 18), (18, 19), (19, 20),
)


def relative_mode_matrix(k: int, num_joints: int = 25, edges: tuple[tuple[int, int], ...] = INFOGCN_NTU_EDGES) -> torch.Tensor:
    """``I - A^k`` with ``A[child, parent] = 1`` (InfoGCN's ``A_outward_binary``), float32 ``(V, V)``.

    ``k = 1`` gives bone vectors (joint minus parent) with the root kept absolute; larger ``k``
    subtracts the k-th ancestor. (``k = 0`` would map every skeleton to zero.)
    """
    a = np.zeros((num_joints, num_joints))
    for parent, child in edges:
        a[child - 1, parent - 1] = 1.0
    return torch.from_numpy(np.eye(num_joints) - np.linalg.matrix_power(a, k)).float()


def align_skeleton(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """InfoGCN's offline ``utils.align_skeleton`` of ``(N, 3, T, V, M)`` clips, differentiable.

    For each person, in frame 0: ``u = unit(joint 2 - joint 1)`` (spine), ``w`` = the hip line
    ``joint 13 - joint 17`` (right hip -> left hip) made orthogonal to ``u`` and normalised, and
    ``s = unit(w x u)``; every frame of that person is mapped to the coordinates ``(w.p, s.p, u.p)``.
    That basis is left-handed, so, as in the official files, the result is a rotation composed with
    a mirror. No translation. A person whose frame-0 spine vector is zero (absent in frame 0) is
    set to zero, as the official loop leaves it. Joints are 1-based in this text.
    """
    first = x[:, :, 0]  # (N, 3, V, M)
    spine = first[:, :, 1] - first[:, :, 0]  # (N, 3, M)
    hips = first[:, :, 12] - first[:, :, 16]
    length = spine.norm(dim=1, keepdim=True)
    present = length > 0
    u = spine / torch.where(present, length, torch.ones_like(length))
    w = hips - (u * hips).sum(dim=1, keepdim=True) * u
    w = w / w.norm(dim=1, keepdim=True).clamp_min(eps)
    s = torch.cross(w, u, dim=1)
    s = s / s.norm(dim=1, keepdim=True).clamp_min(eps)
    basis = torch.stack([w, s, u], dim=1)  # (N, 3 new axes, 3 old axes, M)
    return torch.einsum("nijm,njtvm->nitvm", basis, x) * present[:, :, None, None, :].to(x.dtype)


class MultiScaleTCN(nn.Module):
    """Four branches of ``out/4`` channels: 5x1 convolutions with dilation 1 and 2, a 3x1 max-pool, a 1x1 conv; ReLU."""

    def __init__(self, channels: int, stride: int, kernel_size: int = 5, dilations: tuple[int, ...] = (1, 2)) -> None:
        super().__init__()
        c = channels // (len(dilations) + 2)

        def entry() -> list[nn.Module]:
            return [nn.Conv2d(channels, c, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]

        branches = [nn.Sequential(*entry(), TemporalConv(c, c, kernel_size, stride, d)) for d in dilations]
        branches.append(nn.Sequential(*entry(), nn.MaxPool2d((3, 1), (stride, 1), (1, 0)), nn.BatchNorm2d(c)))
        branches.append(nn.Sequential(nn.Conv2d(channels, c, 1, stride=(stride, 1)), nn.BatchNorm2d(c)))
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.cat([branch(x) for branch in self.branches], dim=1))


class SelfAttention(nn.Module):
    """Per-frame joint attention ``softmax(q k^T / sqrt(d))`` for each head, ``(N*T, H, V, V)``."""

    def __init__(self, in_channels: int, hidden: int, heads: int) -> None:
        super().__init__()
        self.scale = hidden**-0.5
        self.heads = heads
        self.to_qk = nn.Linear(in_channels, 2 * hidden * heads)
        self.ln = nn.LayerNorm(in_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        q, k = self.to_qk(self.ln(x.permute(0, 2, 3, 1))).chunk(2, dim=-1)  # (N, T, V, H*D) each
        q = q.reshape(n * t, v, self.heads, -1).transpose(1, 2)
        k = k.reshape(n * t, v, self.heads, -1).transpose(1, 2)
        return (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)


class SAGC(nn.Module):
    """Self-attention graph convolution: per head, attention times a learned shared topology, then a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, heads: int, num_joints: int) -> None:
        super().__init__()
        self.shared_topology = nn.Parameter(torch.eye(num_joints).repeat(heads, 1, 1))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(heads))
        self.down = (
            nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
            if in_channels != out_channels
            else None
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.attn = SelfAttention(in_channels, in_channels // 8, heads)
        for m in self.modules():  # the official initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.bn.weight, 1e-6)
        for conv in self.conv_d:
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (out_channels * in_channels * heads)))
        nn.init.normal_(self.attn.to_qk.weight, 0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        heads = len(self.conv_d)
        graphs = self.attn(x) * self.shared_topology  # (N*T, H, V, V)
        feature = x.permute(0, 2, 3, 1).reshape(n * t, v, c)
        # all heads in one matmul, then sum_h conv_d[h](z_h) as one convolution over the stacked heads
        z = (graphs.reshape(n * t, heads * v, v) @ feature).view(n, t, heads, v, c)
        z = z.permute(0, 2, 4, 1, 3).reshape(n, heads * c, t, v)
        weight = torch.cat([conv.weight for conv in self.conv_d], dim=1)
        out = F.conv2d(z, weight, sum(conv.bias for conv in self.conv_d))
        return F.relu(self.bn(out) + (x if self.down is None else self.down(x)))


class EncodingBlock(nn.Module):
    """``relu(tcn(agcn(x)) + residual(x))``; the residual is a strided 1x1 conv + BN where shapes change."""

    def __init__(self, in_channels: int, out_channels: int, heads: int, num_joints: int, stride: int = 1) -> None:
        super().__init__()
        self.agcn = SAGC(in_channels, out_channels, heads, num_joints)
        self.tcn = MultiScaleTCN(out_channels, stride)
        self.residual = TemporalConv(in_channels, out_channels, 1, stride) if in_channels != out_channels or stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.tcn(self.agcn(x)) + (x if self.residual is None else self.residual(x)))


# (in, out, stride) of l1..l9
_BLOCKS = ((64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1))


@VICTIMS.register("infogcn")
class InfoGCN(Victim):
    """InfoGCN (joint model, k=1) on raw clips, with the ``_aligned.npz`` preprocessing inside ``forward``.

    ``data_bn`` normalises ``M*V*64`` channels, so person slots have separate statistics. Training
    mode follows the official order (``data_bn`` on all persons, then the blocks on the ``N*M``
    persons, whose BatchNorm statistics span all persons). In eval mode ``data_bn`` is a fixed
    per-channel affine map, so each slot goes through ``map_persons`` with its slice of ``data_bn``
    (empty slots are evaluated once per batch); the function is the same.
    """

    description = "InfoGCN (CVPR 2022): self-attention graph convolution with an information-bottleneck head"
    layouts = ("ntu25",)
    head_key = "decoder.bias"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        k: int = 1,
        num_heads: int = 3,
        noise_ratio: float = 0.5,
        drop_out: float = 0.0,
        window: int = 64,
    ) -> None:
        super().__init__(num_classes, layout, num_persons)
        v, base = layout.num_joints, 64
        self.window = window
        self.noise_ratio = noise_ratio
        self.register_buffer("A_vector", relative_mode_matrix(k, v), persistent=False)
        self.data_bn = nn.BatchNorm1d(num_persons * base * v)
        self.to_joint_embedding = nn.Linear(3, base)
        self.pos_embedding = nn.Parameter(torch.randn(1, v, base))
        for i, (cin, cout, stride) in enumerate(_BLOCKS, start=1):
            self.add_module(f"l{i}", EncodingBlock(cin, cout, num_heads, v, stride))
        self.fc = nn.Linear(4 * base, 4 * base)
        self.fc_mu = nn.Linear(4 * base, 4 * base)
        self.fc_logvar = nn.Linear(4 * base, 4 * base)
        self.decoder = nn.Linear(4 * base, num_classes)
        self.drop_out = nn.Dropout(drop_out)
        for fc in (self.fc, self.fc_mu, self.fc_logvar):  # the official initialisation
            nn.init.xavier_uniform_(fc.weight, gain=nn.init.calculate_gain("relu"))
        nn.init.normal_(self.decoder.weight, 0.0, math.sqrt(2.0 / num_classes))
        nn.init.ones_(self.data_bn.weight)
        nn.init.zeros_(self.data_bn.bias)

    @property
    def blocks(self) -> list[EncodingBlock]:
        return [getattr(self, f"l{i}") for i in range(1, len(_BLOCKS) + 1)]

    def pipeline(self, x: torch.Tensor) -> torch.Tensor:
        """Raw clips -> the 64-frame model input of the official test feeder."""
        x = preprocess.translate_to_origin(x, joint=1, person=0)
        return preprocess.crop_resize(align_skeleton(x), self.window, keep=0.95)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, T, V, M)`` -> joint embeddings ``(N, M*V*64, T)`` (``data_bn``'s channel order)."""
        n, _, t, v, m = x.shape
        x = torch.einsum("vw,nctwm->nmtvc", self.A_vector, x)
        h = self.to_joint_embedding(x) + self.pos_embedding  # (N, M, T, V, 64)
        return h.permute(0, 1, 3, 4, 2).reshape(n, m * v * h.shape[-1], t)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Normalised embeddings of persons ``(P, V*64, T)`` -> pooled features ``(P, 256)``."""
        p, vc, t = h.shape
        v = self.A_vector.shape[0]
        x = h.view(p, v, vc // v, t).permute(0, 2, 3, 1)  # (P, 64, T, V)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def _slot_features(self, slot: int, persons: torch.Tensor) -> torch.Tensor:
        h = self.embed(persons[..., None])
        bn, size = self.data_bn, h.shape[1]
        s = slice(slot * size, (slot + 1) * size)
        h = F.batch_norm(h, bn.running_mean[s], bn.running_var[s], bn.weight[s], bn.bias[s], False, 0.0, bn.eps)
        return self.encode(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pipeline(x)
        n, m = x.shape[0], x.shape[-1]
        if self.training or not self.skip_empty_persons:
            h = self.data_bn(self.embed(x))
            features = self.encode(h.view(n * m, h.shape[1] // m, h.shape[2])).view(n, m, -1)
        else:
            features = torch.stack([self.map_persons(partial(self._slot_features, k), x[..., k]) for k in range(m)], dim=1)
        h = self.drop_out(F.relu(self.fc(features.mean(dim=1))))
        z = self.fc_mu(h)
        if self.training:
            # exp(.) clamped at 100 as officially, written as exp(clamp(.)) so the gradient is 0, not NaN, when it overflows
            std = torch.exp((self.fc_logvar(h) * self.noise_ratio).clamp(max=math.log(100.0)))
            z = z + torch.randn_like(std) * std
        return self.decoder(z)
