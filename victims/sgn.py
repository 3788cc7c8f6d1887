"""SGN, Semantics-Guided Network (Zhang et al., CVPR 2020), with the module names of microsoft/SGN @79aa0dd.

The official state_dict (``results/NTU/SGN/{0,1}_best.pth``, a dict whose ``state_dict`` entry the
loader unwraps) loads with ``strict=True``. SGN classifies a single skeleton sequence of 20 frames,
``(N, 20, 75)`` (25 joints x xyz); inside the network it adds the velocity stream, normalises both
streams with BatchNorm over the 75 coordinates (``norm_data``, index ``c*25 + v``), and adds learned
embeddings of the joint type and of the frame index, which the official code feeds as one-hot
tensors pre-built for one fixed batch size (160 at test). Here those embeddings are computed from
one-hot tensors of a single sample on every call and broadcast over the batch: no state_dict key
changes, any batch size works, and the result is the same per sample.

``forward`` takes raw clips ``(N, 3, T, V, M)`` in metres and runs the official test-time pipeline
per sample in differentiable torch (:func:`sgn_sequence`): translate so that joint 2 (index 1) of
person 0 in its first present frame is the origin (``seq_transformation.py``), drop the empty frames,
split two-person frames into two consecutive single-person frames (``turn_two_to_one``), pad with
zero frames to at least 20, and take one frame from each of 20 segments of length ``L // 20``
(``sub_seq``). The official test draws a random frame per segment five times and averages the five
logits; here the frame is the segment centre, once, so the victim is a deterministic function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel import preprocess
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

__all__ = ["SGN", "sgn_sequence", "sgn_segment_indices"]


def sgn_segment_indices(lengths: torch.Tensor, segments: int = 20) -> torch.Tensor:
    """``(N, segments)`` positions in sequences of ``lengths`` frames, as SGN's ``sub_seq`` lays them out.

    A sequence shorter than ``segments`` is zero-padded to ``segments`` frames (positions ``>= length``
    are padding); then segment ``i`` is ``[i*d, (i+1)*d)`` with ``d = max(length, segments) // segments``
    (the last ``length mod segments`` frames are never used, as in the official code). The official
    sampler draws a random frame in each segment; we take its centre ``i*d + d//2``.
    """
    d = (lengths.clamp_min(segments) // segments)[:, None]
    i = torch.arange(segments, device=lengths.device)[None, :]
    return i * d + d // 2


def sgn_sequence(x: torch.Tensor, segments: int = 20) -> torch.Tensor:
    """SGN's test-time input ``(N, segments, V*3)`` from raw clips ``(N, 3, T, V, M)``, differentiably.

    Every present person-frame (a person slot with a non-zero coordinate) becomes one single-skeleton
    frame, in frame order and, within a frame, in slot order; empty frames disappear; the resulting
    sequence is padded and sampled by :func:`sgn_segment_indices`. All steps are gathers, so the
    gradient reaches the sampled joints.
    """
    n, c, t, v, m = x.shape
    present = preprocess.frame_mask(x)[:, 0, :, 0, :].reshape(n, t * m) > 0  # position = frame*M + slot
    x = preprocess.translate_to_origin(x, joint=1, person=0)
    flat = x.permute(0, 1, 2, 4, 3).reshape(n, c, t * m, v)
    rank = present.long().cumsum(dim=1)  # number of present person-frames up to each position
    length = rank[:, -1]
    index = sgn_segment_indices(length, segments)
    position = torch.searchsorted(rank, index + 1).clamp_max(t * m - 1)  # where the index-th one sits
    seq = torch.gather(flat, 2, position[:, None, :, None].expand(n, c, segments, v))
    seq = seq * (index < length[:, None]).to(x.dtype)[:, None, :, None]  # zero padding of short sequences
    return seq.permute(0, 2, 3, 1).reshape(n, segments, v * c)


class Conv1x1(nn.Module):
    """The official ``cnn1x1`` wrapper (a 1x1 convolution stored as ``.cnn``)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        self.cnn = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x)


class NormData(nn.Module):
    """BatchNorm1d over the ``C*V`` coordinates of ``(N, C, V, T)`` (feature index ``c*V + v``)."""

    def __init__(self, channels: int, num_joints: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(channels * num_joints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, v, t = x.shape
        return self.bn(x.reshape(n, c * v, t)).view(n, c, v, t)


class Embed(nn.Module):
    """Two 1x1 convolutions with ReLU (``in -> 64 -> out``), optionally after :class:`NormData`."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int, norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [NormData(in_channels, num_joints)] if norm else []
        layers += [Conv1x1(in_channels, 64), nn.ReLU(), Conv1x1(64, out_channels), nn.ReLU()]
        self.cnn = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x)


class FrameModule(nn.Module):
    """The official ``local``: max over joints, a 1x3 temporal convolution and a 1x1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, segments: int) -> None:
        super().__init__()
        self.maxpool = nn.AdaptiveMaxPool2d((1, segments))
        self.cnn1 = nn.Conv2d(in_channels, in_channels, kernel_size=(1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.cnn2 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.dropout = nn.Dropout2d(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.relu(self.bn1(self.cnn1(self.maxpool(x)))))
        return self.relu(self.bn2(self.cnn2(x)))


class GraphConv(nn.Module):
    """The official ``gcn_spa``: ``relu(bn(W (G x) + W1 x))`` with a data-dependent graph ``G`` per frame."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.w = Conv1x1(in_channels, out_channels, bias=False)
        self.w1 = Conv1x1(in_channels, out_channels)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        mixed = torch.einsum("ntvw,ncwt->ncvt", g, x)
        return self.relu(self.bn(self.w(mixed) + self.w1(x)))


class JointGraph(nn.Module):
    """The official ``compute_g_spa``: ``softmax_w(theta(x_v) . phi(x_w))`` per frame, ``(N, T, V, V)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.g1 = Conv1x1(in_channels, out_channels)
        self.g2 = Conv1x1(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("ncvt,ncwt->ntvw", self.g1(x), self.g2(x)).softmax(dim=-1)


@VICTIMS.register("sgn")
class SGN(Victim):
    """SGN on 20 sampled single-skeleton frames; raw clips are turned into that input inside ``forward``.

    Persons are not processed as separate streams (two-person frames become consecutive frames of
    one sequence), so ``map_persons`` is not used.
    """

    description = "SGN (CVPR 2020): semantics-guided network on 20 sampled single-skeleton frames"
    layouts = ("ntu25",)
    head_key = "fc.bias"

    def __init__(self, num_classes: int, layout: SkeletonLayout, num_persons: int = 2, segments: int = 20) -> None:
        super().__init__(num_classes, layout, num_persons)
        v, dim = layout.num_joints, 256
        self.segments = segments
        self.tem_embed = Embed(segments, dim, v, norm=False)
        self.spa_embed = Embed(v, 64, v, norm=False)
        self.joint_embed = Embed(3, 64, v, norm=True)
        self.dif_embed = Embed(3, 64, v, norm=True)
        self.maxpool = nn.AdaptiveMaxPool2d((1, 1))
        self.cnn = FrameModule(dim, dim * 2, segments)
        self.compute_g1 = JointGraph(dim // 2, dim)
        self.gcn1 = GraphConv(dim // 2, dim // 2)
        self.gcn2 = GraphConv(dim // 2, dim)
        self.gcn3 = GraphConv(dim, dim)
        self.fc = nn.Linear(dim * 2, num_classes)
        for module in self.modules():  # the official initialisation
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, 0.0, (2.0 / fan_out) ** 0.5)
        for gcn in (self.gcn1, self.gcn2, self.gcn3):
            nn.init.zeros_(gcn.w.cnn.weight)

    def index_embeddings(self, num_joints: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Joint-type ``(1, 64, V, T)`` and frame-index ``(1, 256, V, T)`` embeddings of the one-hot codes."""
        like = {"device": self.fc.weight.device, "dtype": self.fc.weight.dtype}
        joint_code = torch.eye(num_joints, **like)[None, :, :, None].expand(1, num_joints, num_joints, steps)
        frame_code = torch.eye(steps, **like)[None, :, None, :].expand(1, steps, num_joints, steps)
        return self.spa_embed(joint_code), self.tem_embed(frame_code)

    def network(self, seq: torch.Tensor) -> torch.Tensor:
        """The official ``SGN.forward`` on ``(N, segments, V*3)`` sequences."""
        n, steps, dim = seq.shape
        x = seq.view(n, steps, dim // 3, 3).permute(0, 3, 2, 1)  # (N, 3, V, T)
        velocity = F.pad(x[..., 1:] - x[..., :-1], (1, 0))  # zero in the first frame
        spa, tem = self.index_embeddings(dim // 3, steps)
        h = torch.cat([self.joint_embed(x) + self.dif_embed(velocity), spa.expand(n, -1, -1, -1)], dim=1)
        g = self.compute_g1(h)
        h = self.gcn3(self.gcn2(self.gcn1(h, g), g), g)
        h = self.cnn(h + tem)
        return self.fc(self.maxpool(h).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(sgn_sequence(x, self.segments))
