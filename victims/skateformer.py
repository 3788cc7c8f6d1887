"""SkateFormer (Do and Kim, ECCV 2024), with the module names of KAIST-VICLab/SkateFormer @1f1d9ff.

Skeletal-temporal transformer: after a 1x1-conv stem, every block splits its channels between a
graph convolution over all ``M * 24`` joint tokens (learned ``gconv``), a grouped temporal convolution,
and four "Skate-Type" partition attentions (near/far joints x local/global frames); four stages of two
blocks, temporal downsampling by 2 at the start of stages 2-4, average pooling and a linear ``head``.
Two victims share the network:

* ``skateformer``: ``model.SkateFormer.SkateFormer_`` with ``config/*/ntu_cs/SkateFormer_j.yaml``
  (partitions type 1 (8, 8), type 2 (8, 12), type 3 (8, 8), type 4 (8, 12)). The released checkpoints
  (raw state_dict, ``module.`` stripped) load with ``strict=True``, including the saved int64 buffers
  ``relative_position_index``.
* ``skateformer-tasar``: the copy in TASAR (yunfengdiao/Skeleton-Robustness-Benchmark): same keys and
  shapes, type 1/3 partitions (8, 4), and ``index_t`` fixed to ``2 * arange(64) / 64 - 1`` inside forward.

Officially ``forward(x, index_t)`` takes the feeder's output. Here ``forward`` takes the raw clip
``(N, 3, T, 25, M)`` in metres and builds both inputs in differentiable torch. For ``skateformer``
(the official test pipeline, :func:`skateformer_pipeline`):

1. the offline SGN/CTR-GCN translation of the ``.npz`` files (joint 2, index 1, of person 0 in its
   first present frame becomes the origin of the whole clip; no rotation);
2. the feeder's ``valid_crop_uniform`` with ``p_interval = [0.95]``, ``window = thres = 64``
   (:func:`valid_crop_uniform`): with ``L`` valid frames, a crop of ``c = min(max(floor(0.95 L), 64), L)``
   frames starting at ``b = floor(0.025 L)``; if ``c >= 64`` the frames ``b + floor(i c / 64)``, otherwise
   the ``c`` frames ``b, ..., b + c - 1`` linearly interpolated to 64 (``F.interpolate`` linear,
   ``align_corners=False``); ``index_t = 2 * idx / L - 1`` of the same (interpolated) indices. This test
   branch has no random step. As officially, when ``b + c > L`` (``40 <= L < 64`` and ``L = 64``) the
   last index is the first frame after the clip, i.e. an all-zero padding frame (a frame of zeros is
   used even if the tensor has no padding left);
3. the ``partition=True`` joint order: joint 21 (spine shoulder) is dropped and the other 24 are grouped
   in six body parts of four (1-based): right arm 7 8 22 23, left arm 11 12 24 25, right leg 13-16,
   left leg 17-20, torso 5 9 6 10, torso 2 3 1 4.

For ``skateformer-tasar``, TASAR's data pipeline: no translation and no resampling; clips are
zero-padded after the end to 64 frames (TASAR's clips have 60), then the same joint order. Longer
inputs keep their first 64 frames when their valid frames fit, otherwise their valid frames are
linearly resized to 64 (an extension: TASAR never feeds such clips).

Persons interact inside the network (graph convolution and joint partitions span both persons'
tokens), so the persons are not processed separately and ``map_persons`` is not used. ``timm`` is not
needed: ``DropPath``, ``Mlp`` and the truncated-normal initialisation are written here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel import preprocess
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim
from robustbench_skel.victims.sttformer import fit_frames

__all__ = [
    "SkateFormer",
    "SkateFormerTasar",
    "SkateFormerBlock",
    "PartitionAttention",
    "PARTITION_ORDER",
    "valid_crop_uniform",
    "skateformer_pipeline",
]

WINDOW = 64  # the feeder's window_size (and thres)
# The feeder's 24-joint order (0-based), joint 21 (spine shoulder) dropped.
PARTITION_ORDER = tuple(
    j - 1 for j in (7, 8, 22, 23, 11, 12, 24, 25, 13, 14, 15, 16, 17, 18, 19, 20, 5, 9, 6, 10, 2, 3, 1, 4)
)
DEPTHS, CHANNELS, EMBED_DIM, NUM_HEADS, KERNEL = (2, 2, 2, 2), (96, 192, 192, 192), 96, 32, 7


def valid_crop_uniform(
    x: torch.Tensor, window: int = WINDOW, keep: float = 0.95, thres: int = WINDOW
) -> tuple[torch.Tensor, torch.Tensor]:
    """The test branch of SkateFormer's ``valid_crop_uniform`` (single ``p_interval``), differentiable in ``x``.

    Returns the clips ``(N, C, window, V, M)`` and ``index_t`` ``(N, window)`` in [-1, 1]; see the module
    docstring for the rule. Indices past the tensor's end read a frame of zeros, as a zero-padded file would.
    """
    t = x.shape[2]
    valid = preprocess.valid_frame_count(x).double()
    cropped = torch.minimum(torch.clamp_min(torch.floor(valid * keep), thres), valid).long().clamp_min(1)
    bias = torch.floor((1 - keep) * valid / 2).long()
    i = torch.arange(window, device=x.device, dtype=torch.float64)[None, :]
    # uniform sampling when the crop holds at least `window` frames
    uniform = (torch.arange(window, device=x.device)[None, :] * cropped[:, None]) // window
    # otherwise all `cropped` frames, linearly interpolated to `window` (align_corners=False)
    src = ((i + 0.5) * (cropped.double()[:, None] / window) - 0.5).clamp_min(0)
    lo = src.floor().long()
    hi = torch.minimum(lo + 1, cropped[:, None] - 1)
    weight = src - lo.double()
    short = (cropped < window)[:, None]
    lo = torch.where(short, lo, uniform) + bias[:, None]
    hi = torch.where(short, hi, uniform) + bias[:, None]
    weight = torch.where(short, weight, torch.zeros_like(weight))
    index_t = 2 * (lo.double() + weight * (hi - lo).double()) / valid.clamp_min(1)[:, None] - 1
    padded = F.pad(x, (0, 0, 0, 0, 0, 1))  # one zero frame after the end for out-of-clip indices
    w = weight.to(x.dtype)[:, None, :, None, None]
    frames = preprocess.gather_frames(padded, lo.clamp_max(t)) * (1 - w)
    frames = frames + preprocess.gather_frames(padded, hi.clamp_max(t)) * w
    return frames, index_t.to(x.dtype)


def skateformer_pipeline(x: torch.Tensor, window: int = WINDOW) -> tuple[torch.Tensor, torch.Tensor]:
    """Official test-time preprocessing: SGN translation, ``valid_crop_uniform``, 24-joint partition order."""
    x = preprocess.translate_to_origin(x, joint=1, person=0)
    x, index_t = valid_crop_uniform(x, window)
    return x[:, :, :, list(PARTITION_ORDER)], index_t


def _trunc_normal(shape: tuple[int, ...], std: float = 0.02) -> nn.Parameter:
    """timm's ``trunc_normal_(std=.02)`` (cut at +-2 absolute) on a new parameter."""
    return nn.Parameter(nn.init.trunc_normal_(torch.empty(shape), std=std, a=-2.0, b=2.0))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's residual branch with probability ``p`` (and rescale)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    """timm's ``Mlp`` without dropout: ``fc2(GELU(fc1(x)))``."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _relative_index(size: int) -> torch.Tensor:
    """``(size, size)`` int64 with entry ``i - j + size - 1`` (the official ``get_relative_position_index_1d``)."""
    r = torch.arange(size)
    return r[:, None] - r[None, :] + size - 1


def _partition_layout(
    t: int, v: int, size: tuple[int, int], global_time: bool, far_joints: bool
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """View shape of ``(B, C, T, V)`` and the permutation to ``(B, windows_t, windows_v, P0, P1, C)``.

    Local frames: ``T = (T/P0, P0)``, a window holds ``P0`` consecutive frames; global frames:
    ``T = (P0, T/P0)``, a window holds ``P0`` frames ``T/P0`` apart. Near joints: ``V = (V/P1, P1)``,
    ``P1`` consecutive tokens; far joints: ``V = (P1, V/P1)``, ``P1`` tokens ``V/P1`` apart.
    """
    p0, p1 = size
    time = (p0, t // p0) if global_time else (t // p0, p0)
    joints = (p1, v // p1) if far_joints else (v // p1, p1)
    t_window, t_local = (3, 2) if global_time else (2, 3)
    v_window, v_local = (5, 4) if far_joints else (4, 5)
    return (*time, *joints), (0, t_window, v_window, t_local, v_local, 1)


class UniformMaskDropout(nn.Module):
    """Inverted dropout drawing its mask from ``rand_like`` instead of ``bernoulli_``.

    Same distribution and scaling as ``nn.Dropout``; exists because CPU ``bernoulli_`` on the large attention
    maps took 39% of a SkateFormer training step (this form: about 20% faster per step). Identity in eval mode,
    so attacks and inference are unaffected.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x, dtype=torch.float32) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class PartitionAttention(nn.Module):
    """Multi-head self-attention inside partitions of ``P0 x P1`` tokens (token ``= frame * P1 + joint``).

    Input ``(windows, P0*P1, 3*C)`` laid out as ``(q|k|v, head, dim)``. As officially, the scores are
    scaled by ``num_heads ** -0.5`` (not the head dimension) and get a learned relative bias:

    * joint-type ``'near'`` partitions (types 1 and 3): a table ``(2 P0 - 1, heads)`` indexed by
      ``relative_position_index`` ``(P0, P0)``, tiled ``P1 x P1`` times over the ``(P0 P1)^2`` token pairs.
      This is the official ``repeat`` on a 5-d tensor: token ``i`` is biased by ``i mod P0``, which for
      ``P0 = P1`` is its joint, not its frame; reproduced as is, since the checkpoints were trained with it;
    * ``'far'`` partitions (types 2 and 4): a table ``(2 P0 - 1, P1, P1, heads)``: frame offset and both joints.
    """

    def __init__(self, num_heads: int, size: tuple[int, int], far_joints: bool, attn_drop: float) -> None:
        super().__init__()
        self.num_heads, self.size, self.scale = num_heads, size, num_heads ** -0.5
        p0, p1 = size
        table = (2 * p0 - 1, p1, p1, num_heads) if far_joints else (2 * p0 - 1, num_heads)
        self.relative_position_bias_table = _trunc_normal(table)
        self.register_buffer("relative_position_index", _relative_index(p0))
        self.attn_drop = UniformMaskDropout(attn_drop)

    def relative_bias(self) -> torch.Tensor:
        """``(heads, P0*P1, P0*P1)``."""
        p0, p1 = self.size
        bias = self.relative_position_bias_table[self.relative_position_index]
        if bias.dim() == 3:  # (P0, P0, H) tiled: entry [i, j] = bias[i % P0, j % P0]
            bias = bias.repeat(p1, p1, 1)
        else:  # (t1, t2, v1, v2, H) -> (t1, v1, t2, v2, H)
            bias = bias.permute(0, 2, 1, 3, 4).reshape(p0 * p1, p0 * p1, -1)
        return bias.permute(2, 0, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, _ = tokens.shape
        q, k, v = tokens.reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attention = (q * self.scale) @ k.transpose(-2, -1) + self.relative_bias()
        attention = self.attn_drop(attention.softmax(dim=-1))
        return (attention @ v).transpose(1, 2).reshape(b, n, -1)


class SkateFormerBlock(nn.Module):
    """LayerNorm, a linear map to ``2C`` split into G-Conv (``C/4``), T-Conv (``C/4``) and four partition
    attentions (``3C/8`` each -> ``C/8``), concatenation, ``proj``, residual; then LayerNorm + MLP, residual.

    The four partition types: (1) local frames, near joints; (2) local frames, far joints; (3) global
    frames, near joints; (4) global frames, far joints.
    """

    def __init__(
        self, channels: int, num_tokens: int, sizes: tuple[tuple[int, int], ...], attn_drop: float, drop_path: float,
    ) -> None:
        super().__init__()
        groups = NUM_HEADS // 4
        self.sizes = sizes
        self.gconv = _trunc_normal((groups, num_tokens, num_tokens))
        self.norm_1 = nn.LayerNorm(channels)
        self.mapping = nn.Linear(channels, 2 * channels)
        self.tconv = nn.Conv2d(channels // 4, channels // 4, (KERNEL, 1), padding=((KERNEL - 1) // 2, 0), groups=groups)
        self.attention = nn.ModuleList(
            PartitionAttention(NUM_HEADS // 8, size, far_joints=kind in (1, 3), attn_drop=attn_drop)
            for kind, size in enumerate(sizes)
        )
        self.proj = nn.Linear(channels, channels)
        self.drop_path = DropPath(drop_path)
        self.norm_2 = nn.LayerNorm(channels)
        self.mlp = Mlp(channels, 4 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, v = x.shape
        skip = x.permute(0, 2, 3, 1)  # (B, T, V, C)
        f = self.mapping(self.norm_1(skip)).permute(0, 3, 1, 2)
        f_conv, f_attn = f.split([c // 2, 3 * c // 2], dim=1)
        f_graph, f_time = f_conv.chunk(2, dim=1)
        groups = self.gconv.shape[0]
        graph = torch.einsum("bgctu,gvu->bgctv", f_graph.reshape(b, groups, -1, t, v), self.gconv).reshape(b, -1, t, v)
        outputs = [graph, self.tconv(f_time)]
        for kind, (attention, part) in enumerate(zip(self.attention, f_attn.chunk(4, dim=1))):
            view, perm = _partition_layout(t, v, self.sizes[kind], global_time=kind >= 2, far_joints=kind in (1, 3))
            windows = part.reshape(b, part.shape[1], *view).permute(perm)
            grid = windows.shape[:5]
            out = attention(windows.reshape(-1, grid[3] * grid[4], part.shape[1]))
            inverse = sorted(range(6), key=perm.__getitem__)
            outputs.append(out.reshape(*grid, -1).permute(inverse).reshape(b, -1, t, v))
        y = skip + self.drop_path(self.proj(torch.cat(outputs, dim=1).permute(0, 2, 3, 1)))
        y = y + self.drop_path(self.mlp(self.norm_2(y)))
        return y.permute(0, 3, 1, 2)


class Downsample(nn.Module):
    """The official ``PatchMergingTconv``: a ``7 x 1`` convolution of stride 2 in time, then BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.reduction = nn.Conv2d(in_channels, out_channels, (KERNEL, 1), stride=(2, 1), padding=((KERNEL - 1) // 2, 0))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.reduction(x))


class BlockDS(nn.Module):
    """The official ``SkateFormerBlockDS``: optional downsampling, then a :class:`SkateFormerBlock`."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, **block: object) -> None:
        super().__init__()
        self.downsample = Downsample(in_channels, out_channels) if downsample else None
        self.transformer = SkateFormerBlock(out_channels, **block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(x if self.downsample is None else self.downsample(x))


class Stage(nn.Module):
    def __init__(self, blocks: list[BlockDS]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


@VICTIMS.register("skateformer")
class SkateFormer(Victim):
    """SkateFormer, joint stream, NTU-60 configuration (``SkateFormer_j.yaml``), 64 frames, 24 joints x M persons."""

    description = "SkateFormer (ECCV 2024): skeletal-temporal partition transformer, valid_crop_uniform to 64 frames"
    layouts = ("ntu25",)
    head_key = "head.bias"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        type_1_size: tuple[int, int] = (8, 8),
        type_2_size: tuple[int, int] = (8, 12),
        type_3_size: tuple[int, int] = (8, 8),
        type_4_size: tuple[int, int] = (8, 12),
        attn_drop: float = 0.5,
        drop_path: float = 0.2,
    ) -> None:
        super().__init__(num_classes, layout, num_persons)
        self.type_1_size, self.type_2_size = tuple(type_1_size), tuple(type_2_size)
        self.type_3_size, self.type_4_size = tuple(type_3_size), tuple(type_4_size)
        self.attn_drop, self.drop_path = attn_drop, drop_path
        sizes = (self.type_1_size, self.type_2_size, self.type_3_size, self.type_4_size)
        tokens = len(PARTITION_ORDER) * num_persons
        self.joint_person_embedding = _trunc_normal((EMBED_DIM, tokens))
        self.stem = nn.ModuleList([nn.Conv2d(3, 6, 1), nn.GELU(), nn.Conv2d(6, 9, 1), nn.GELU(), nn.Conv2d(9, EMBED_DIM, 1)])
        rates = torch.linspace(0.0, drop_path, sum(DEPTHS)).tolist()
        stages, cin = [], EMBED_DIM
        for s, (depth, cout) in enumerate(zip(DEPTHS, CHANNELS)):
            blocks = []
            for i in range(depth):
                blocks.append(BlockDS(
                    cin if i == 0 else cout, cout, downsample=(i == 0 and s > 0), num_tokens=tokens, sizes=sizes,
                    attn_drop=attn_drop, drop_path=rates[sum(DEPTHS[:s]) + i],
                ))
            stages.append(Stage(blocks))
            cin = cout
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(CHANNELS[-1], num_classes)

    def pipeline(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return skateformer_pipeline(x)

    def temporal_embedding(self, index_t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal embedding ``(B, T, C)`` of the normalised frame indices (sin on even, cos on odd channels)."""
        channel = torch.arange(0, EMBED_DIM, 2, dtype=torch.float32, device=index_t.device)
        frequency = torch.exp(channel * -(math.log(10000.0) / EMBED_DIM))
        angle = index_t.float()[..., None] * frequency
        return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(-2)

    def network(self, x: torch.Tensor, index_t: torch.Tensor) -> torch.Tensor:
        """The official ``forward(x, index_t)``: ``x`` ``(B, 3, 64, 24, M)`` in partition order, ``index_t`` ``(B, 64)``."""
        b, c, t, v, m = x.shape
        y = x.permute(0, 1, 2, 4, 3).reshape(b, c, t, m * v)  # token = person * 24 + joint
        for layer in self.stem:
            y = layer(y)
        embedding = torch.einsum("btc,cv->bctv", self.temporal_embedding(index_t), self.joint_person_embedding)
        y = y + embedding.to(y.dtype)
        for stage in self.stages:
            y = stage(y)
        return self.head(y.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(*self.pipeline(x))


@VICTIMS.register("skateformer-tasar")
class SkateFormerTasar(SkateFormer):
    """TASAR's SkateFormer: type 1/3 partitions (8, 4), clips zero-padded to 64 frames, fixed ``index_t``."""

    description = "SkateFormer as trained by TASAR: clips fed as stored, zero-padded to 64 frames, fixed index_t"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        type_1_size: tuple[int, int] = (8, 4),
        type_2_size: tuple[int, int] = (8, 12),
        type_3_size: tuple[int, int] = (8, 4),
        type_4_size: tuple[int, int] = (8, 12),
        attn_drop: float = 0.5,
        drop_path: float = 0.2,
    ) -> None:
        super().__init__(
            num_classes, layout, num_persons, type_1_size, type_2_size, type_3_size, type_4_size, attn_drop, drop_path
        )

    def pipeline(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = fit_frames(x, WINDOW)[:, :, :, list(PARTITION_ORDER)]
        index_t = 2 * torch.arange(WINDOW, device=x.device, dtype=x.dtype) / WINDOW - 1
        return x, index_t.expand(x.shape[0], -1)
