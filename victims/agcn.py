"""2s-AGCN (Shi, Zhang, Cheng and Lu, CVPR 2019), with the module names of lshiwjx/2s-AGCN @953c14f.

Two victims:

* ``agcn``: the joint stream (``model.agcn.Model``). Its state_dict loads with ``strict=True``: the
  learned adaptive graph ``PA`` is saved, the fixed spatial graph ``A`` is a non-persistent buffer
  (a plain attribute in the official code), ``data_bn`` is ``BatchNorm1d(M*V*C)``, so each person slot
  has its own input statistics.
* ``agcn-2s``: the two-stream ensemble, an ``agcn`` network on joints (prefix ``joint.``) plus one on
  bones (prefix ``bone.``), logits summed with weight 1 as the official ensemble script does.
  ``--checkpoint joint.pt,bone.pt`` loads the two official files.

The official NTU pipeline normalises the skeletons offline (``data_gen/preprocess.py``); here
``forward`` does the same in differentiable torch (:func:`pre_normalization`), so attacks perturb raw
joints in metres. The bone stream is computed from the normalised joints, as ``gen_bone_data.py`` does
on the normalised joint files. MS-G3D (``victims/msg3d.py``) shares this pipeline and the two-stream
wrapper.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel import preprocess
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

__all__ = ["AGCN", "AGCN2s", "PersonSlotNetwork", "TwoStream", "pre_normalization", "spatial_graph"]


# --------------------------------------------------------------------------------------------------
# The official offline NTU normalisation (2s-AGCN data_gen: ntu_gendata.py + preprocess.py), in torch.


def pre_normalization(x: torch.Tensor) -> torch.Tensor:
    """The 2s-AGCN / MS-G3D NTU normalisation of raw clips ``(N, 3, T, V, M)`` in metres.

    1. loop-pad each person's trailing empty frames;
    2. subtract person 0's spine-middle joint (index 1) frame by frame from every present joint;
    3. rotate so that person 0's hip -> spine bone (joints 0 -> 1) in frame 0 points along +z, then so
       that its left -> right shoulder vector (joint 8 - joint 4, the official ``joint_rshoulder -
       joint_lshoulder``) points along +x.

    T is not resampled (the official files hold 300 frames; a clip keeps its own length). The
    official ``ntu_gendata.py`` also keeps the two most energetic of up to four Kinect bodies, most
    energetic first; our clips already hold at most M persons and their order is kept, so that the
    official pre-normalised files (whose centring and rotation make raw motion energies
    unrecoverable) pass through unchanged in person order.
    """
    x = preprocess.loop_pad(x)
    x = preprocess.center_per_frame(x, joint=1, person=0)
    return preprocess.align_body_axes(x, z_joints=(0, 1), x_joints=(4, 8), person=0, frame=0)


# --------------------------------------------------------------------------------------------------
# Person handling shared with MS-G3D: data_bn over M*V*C, then a per-person network.


class PersonSlotNetwork(Victim):
    """A network whose ``data_bn`` normalises ``M*V*C`` channels (per-slot statistics), followed by a
    per-person body pooled over time and joints, averaged over persons, and a linear classifier.

    Training mode follows the official order: ``data_bn`` on the whole ``(N, M*V*C, T)`` tensor, then
    persons folded into the batch (the body's BatchNorm statistics span all persons). In eval mode
    ``data_bn`` is a fixed per-channel affine map, so each person slot is sent separately through
    ``map_persons`` with that slot's slice of ``data_bn``: empty slots are evaluated once per batch and
    the result is the same function.
    """

    layouts = ("ntu25",)
    head_key = "fc.bias"

    def person_features(self, persons: torch.Tensor) -> torch.Tensor:
        """``(P, C, T, V)`` normalised person clips -> pooled features ``(P, F)``."""
        raise NotImplementedError

    def _slot_features(self, slot: int, persons: torch.Tensor) -> torch.Tensor:
        p, c, t, v = persons.shape
        bn = self.data_bn
        s = slice(slot * v * c, (slot + 1) * v * c)
        z = F.batch_norm(
            persons.permute(0, 3, 1, 2).reshape(p, v * c, t),
            bn.running_mean[s], bn.running_var[s], bn.weight[s], bn.bias[s], False, 0.0, bn.eps,
        )
        return self.person_features(z.view(p, v, c, t).permute(0, 2, 3, 1))

    def network(self, x: torch.Tensor, owner: Victim | None = None) -> torch.Tensor:
        """Logits of already preprocessed clips ``(N, C, T, V, M)`` (no pipeline applied here).

        ``owner`` is the victim whose ``skip_empty_persons`` and ``map_persons`` apply (a two-stream
        wrapper passes itself); by default this network.
        """
        owner = owner or self
        n, c, t, v, m = x.shape
        if self.training or not owner.skip_empty_persons:
            z = self.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t))  # index = (m, v, c)
            persons = z.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
            features = self.person_features(persons).view(n, m, -1)
        else:
            features = torch.stack([owner.map_persons(partial(self._slot_features, k), x[..., k]) for k in range(m)], dim=1)
        return self.fc(features.mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(pre_normalization(x))


class TwoStream(Victim):
    """Joint + bone ensemble of two ``stream`` networks (prefixes ``joint.`` and ``bone.``), logits summed.

    Both streams see the same normalised joints; the bone stream takes ``joint - reference joint``
    over the 2s-AGCN bone pairs (``preprocess.NTU_BONE_PAIRS``, joint 21's bone is zero).
    """

    stream: ClassVar[type[PersonSlotNetwork]]
    layouts = ("ntu25",)
    head_key = "joint.fc.bias"
    checkpoint_parts = ("joint", "bone")

    def __init__(self, num_classes: int, layout: SkeletonLayout, num_persons: int = 2, **kwargs: Any) -> None:
        super().__init__(num_classes, layout, num_persons)
        self.joint = self.stream(num_classes, layout, num_persons, **kwargs)
        self.bone = self.stream(num_classes, layout, num_persons, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        joints = pre_normalization(x)
        bones = preprocess.bone_stream(joints)
        return self.joint.network(joints, self) + self.bone.network(bones, self)


# --------------------------------------------------------------------------------------------------
# 2s-AGCN


def _normalize_columns(a: np.ndarray) -> np.ndarray:
    degree = a.sum(axis=0)
    return a * np.where(degree > 0, 1.0 / np.where(degree > 0, degree, 1.0), 0.0)[None, :]


def spatial_graph(layout: SkeletonLayout) -> np.ndarray:
    """2s-AGCN's ``labeling_mode='spatial'`` graph ``(3, V, V)``: identity, inward, outward.

    For an inward edge ``(i, j)`` (child, parent) the inward matrix has ``A[j, i] = 1``, the outward
    one ``A[i, j] = 1``; both are column-normalised (``A @ D^-1`` with column sums).
    """
    v = layout.num_joints
    inward, outward = np.zeros((v, v)), np.zeros((v, v))
    for i, j in layout.graph_edges:
        inward[j, i] = 1.0
        outward[i, j] = 1.0
    return np.stack([np.eye(v), _normalize_columns(inward), _normalize_columns(outward)]).astype(np.float32)


def _conv_init(conv: nn.Conv2d) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.zeros_(conv.bias)


def _bn_init(bn: nn.modules.batchnorm._BatchNorm, scale: float) -> None:
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class UnitTCN(nn.Module):
    """Temporal convolution ``kernel x 1`` (stride on time) + BatchNorm, no activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), (stride, 1), ((kernel_size - 1) // 2, 0))
        self.bn = nn.BatchNorm2d(out_channels)
        _conv_init(self.conv)
        _bn_init(self.bn, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class UnitGCN(nn.Module):
    """Adaptive graph convolution: per subset k, ``A_k + PA_k + C_k(x)`` with ``C_k`` the data-dependent
    graph ``softmax_{dim -2}(theta(x)^T phi(x) / (C' T))`` from the ``conv_a``/``conv_b`` embeddings;
    the aggregated features go through ``conv_d[k]`` and are summed, then BN, residual ``down``, ReLU.
    """

    def __init__(self, in_channels: int, out_channels: int, graph: np.ndarray) -> None:
        super().__init__()
        subsets, inter = graph.shape[0], out_channels // 4
        self.PA = nn.Parameter(torch.full(graph.shape, 1e-6))
        self.register_buffer("A", torch.from_numpy(graph), persistent=False)
        self.conv_a = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(subsets))
        self.conv_b = nn.ModuleList(nn.Conv2d(in_channels, inter, 1) for _ in range(subsets))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(subsets))
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                _conv_init(module)
            elif isinstance(module, nn.BatchNorm2d):
                _bn_init(module, 1.0)
        _bn_init(self.bn, 1e-6)
        for conv in self.conv_d:  # the official conv_branch_init
            n_out, n_in, k1, k2 = conv.weight.shape
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (n_out * n_in * k1 * k2 * subsets)))
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The three subsets are batched: one conv for all conv_a/conv_b embeddings, one matmul for the
        # graphs, one conv for conv_d on the stacked aggregations (the same function and MACs as the
        # official per-subset loop, with fewer kernels).
        n, c, t, v = x.shape
        k = self.A.shape[0]
        convs = [*self.conv_a, *self.conv_b]
        emb = F.conv2d(x, torch.cat([m.weight for m in convs]), torch.cat([m.bias for m in convs]))
        emb = emb.view(n, 2, k, -1, v)  # (N, a|b, K, C'T, V)
        theta, phi = emb[:, 0].transpose(2, 3), emb[:, 1]
        graph = torch.softmax(theta @ phi / theta.shape[-1], dim=-2) + (self.A + self.PA)  # (N, K, V, V)
        agg = x.reshape(n, c * t, v) @ graph.transpose(1, 2).reshape(n, v, k * v)  # (N, CT, K*V)
        agg = agg.view(n, c, t, k, v).permute(0, 3, 1, 2, 4).reshape(n, k * c, t, v)
        weight = torch.cat([m.weight for m in self.conv_d], dim=1)  # input channel k*C + c
        y = F.conv2d(agg, weight, sum(m.bias for m in self.conv_d))
        return F.relu(self.bn(y) + self.down(x))


class TCNGCNUnit(nn.Module):
    """``gcn1`` then ``tcn1`` (9x1), plus a residual (none, identity, or 1x1 ``unit_tcn`` with stride)."""

    def __init__(self, in_channels: int, out_channels: int, graph: np.ndarray, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.gcn1 = UnitGCN(in_channels, out_channels, graph)
        self.tcn1 = UnitTCN(out_channels, out_channels, stride=stride)
        if not residual:
            self.residual = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = UnitTCN(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = 0 if self.residual is None else self.residual(x)
        return F.relu(self.tcn1(self.gcn1(x)) + res)


# (in, out, stride) of units l2..l10; l1 is 3 -> 64 without residual.
_UNITS = ((64, 64, 1), (64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 256, 1))


@VICTIMS.register("agcn")
class AGCN(PersonSlotNetwork):
    """2s-AGCN joint stream on the official NTU normalisation (see :func:`pre_normalization`).

    Deterministic: the official NTU pipeline has no test-time randomness. Deviations: T is the clip's
    own length (not the files' 300 frames); persons keep the clip's order (no motion-energy ranking).
    """

    description = "2s-AGCN (CVPR 2019) joint stream: adaptive graph convolution on view-normalised joints"

    def __init__(self, num_classes: int, layout: SkeletonLayout, num_persons: int = 2, in_channels: int = 3) -> None:
        super().__init__(num_classes, layout, num_persons)
        graph = spatial_graph(layout)
        self.data_bn = nn.BatchNorm1d(num_persons * in_channels * layout.num_joints)
        self.l1 = TCNGCNUnit(in_channels, 64, graph, residual=False)
        for i, (c_in, c_out, stride) in enumerate(_UNITS, start=2):
            setattr(self, f"l{i}", TCNGCNUnit(c_in, c_out, graph, stride=stride))
        self.fc = nn.Linear(256, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / num_classes))
        _bn_init(self.data_bn, 1.0)

    def person_features(self, persons: torch.Tensor) -> torch.Tensor:
        x = persons
        for i in range(1, 11):
            x = getattr(self, f"l{i}")(x)
        return x.mean(dim=(2, 3))


class BoneStreamMixin:
    """The bone stream of a two-stream model as a victim of its own: the same network fed
    ``joint - reference joint`` of the normalised joints (the official bone-stream models)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(preprocess.bone_stream(pre_normalization(x)))


@VICTIMS.register("agcn-bone")
class AGCNBone(BoneStreamMixin, AGCN):
    """2s-AGCN bone stream alone (the second half of ``agcn-2s``)."""

    description = "2s-AGCN (CVPR 2019) bone stream: the AGCN on bone vectors of the view-normalised joints"


@VICTIMS.register("agcn-2s")
class AGCN2s(TwoStream):
    """2s-AGCN joint + bone ensemble (two ``agcn`` networks, logits summed)."""

    description = "2s-AGCN (CVPR 2019) two-stream: joint and bone AGCNs, logits summed"
    stream = AGCN
