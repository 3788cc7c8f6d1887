"""STTFormer (Qiu et al., 2022, arXiv 2201.02849), with the module names of heleiqiu/STTFormer @b9bc6f6.

Spatio-temporal tuples transformer: the frames are grouped into non-overlapping tuples of
``len_parts = 6`` consecutive frames, and self-attention runs over the ``6 x 25 = 150`` joints of each
tuple (scores summed over all tuples), followed by a temporal convolution across tuples ("inter-frame
feature aggregation"). Two victims share the network:

* ``sttformer``: ``model.sttformer.Model`` with the NTU-60 configuration (``num_frames = 120``). The
  state_dict that ``main.py`` saves (raw OrderedDict, ``module.`` stripped) loads with ``strict=True``;
  the sinusoidal tables ``blocks.i.pes.pe`` ``(1, C, 20, 150)`` are persistent buffers whose shape
  depends on ``num_frames``. The repository releases no weights.
* ``sttformer-tasar``: the copy in TASAR (yunfengdiao/Skeleton-Robustness-Benchmark), built with
  ``num_frames = 60`` (``pes.pe`` is ``(1, C, 10, 150)``, all other keys identical).

``forward`` of ``sttformer`` takes raw clips ``(N, 3, T, V, M)`` in metres and applies the test-time
pipeline of the official feeder in differentiable torch: the offline SGN/CTR-GCN translation of the
``.npz`` files (joint 2, index 1, of person 0 in its first present frame becomes the origin; no
rotation), then ``valid_crop_resize`` with ``p_interval = [0.95]`` and ``window_size = 120`` (central
95 % of the valid frames, linearly resized to 120 frames). The training-time random crop and random
rotation are not applied; the test pipeline has no random step.

``forward`` of ``sttformer-tasar`` follows TASAR, which feeds its stored 60-frame clips as they are:
no translation and no resampling. To accept any ``T``, shorter clips are zero-padded after the end up
to 60 frames (what TASAR's files hold) and longer ones keep their first 60 frames when their valid
frames fit, otherwise their valid frames are linearly resized to 60 (a deliberate extension: TASAR
never feeds such clips).

Persons go through the network separately (folded into the batch, pooled features averaged), as
officially, via ``map_persons``: in eval mode an all-zero person slot is computed once per batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel import preprocess
from robustbench_skel.errors import UserError
from robustbench_skel.layout import SkeletonLayout
from robustbench_skel.registry import VICTIMS
from robustbench_skel.victim import Victim

__all__ = ["STTFormer", "STTFormerTasar", "STABlock", "TuplePositionTable", "fit_frames"]

WINDOW = 120  # the official feeder's window_size
# (in_channels, out_channels, qkv_dim) of the eight STA blocks (every official config)
CONFIG = ((64, 64, 16), (64, 64, 16), (64, 128, 32), (128, 128, 32), (128, 256, 64), (256, 256, 64), (256, 256, 64), (256, 256, 64))


def fit_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Bring clips to exactly ``num_frames`` frames without resampling whenever possible.

    Shorter tensors are zero-padded after the end; longer ones keep their first ``num_frames``
    frames, except clips with more valid frames than that, whose valid frames are linearly resized
    to ``num_frames`` (``crop_resize`` with nothing cropped).
    """
    t = x.shape[2]
    if t <= num_frames:
        return F.pad(x, (0, 0, 0, 0, 0, num_frames - t))
    head = x[:, :, :num_frames]
    too_long = preprocess.valid_frame_count(x) > num_frames
    if not bool(too_long.any()):
        return head
    return torch.where(too_long[:, None, None, None, None], preprocess.crop_resize(x, num_frames, keep=1.0), head)


class TuplePositionTable(nn.Module):
    """The official ``Pos_Embed``: a sinusoidal table over the joints of a tuple, ``pe`` ``(1, C, tuples, joints)``.

    The position is the joint's index within its tuple (frame-major, ``frame * V + joint``), the same for
    every tuple; ``pe`` is saved in the official state_dict, so it is a persistent buffer here too.
    ``forward`` returns the first ``x.shape[2]`` rows (the official slicing); should a clip have more tuples
    than the table (only possible for the TASAR variant with unusual ``num_frames``), the last row repeats,
    which is exact because every row is the same by construction.
    """

    def __init__(self, channels: int, num_tuples: int, num_tokens: int) -> None:
        super().__init__()
        position = torch.arange(num_tokens, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * -(math.log(10000.0) / channels))
        table = torch.zeros(num_tokens, channels)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("pe", table.t()[None, :, None, :].repeat(1, 1, num_tuples, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.shape[2]
        if rows <= self.pe.shape[2]:
            return self.pe[:, :, :rows]
        return torch.cat([self.pe, self.pe[:, :, -1:].expand(-1, -1, rows - self.pe.shape[2], -1)], dim=2)


def _conv_bn(in_channels: int, out_channels: int, kernel: tuple[int, int] = (1, 1)) -> nn.Sequential:
    padding = ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel, padding=padding), nn.BatchNorm2d(out_channels))


class STABlock(nn.Module):
    """Spatio-temporal tuples attention, then inter-frame feature aggregation (the official ``STA_Block``).

    Input ``(P, C, tuples, joints_per_tuple)``. Per head ``h`` the attention between tokens ``u, v`` is
    ``alphas[h] * tanh(sum_{c,t} q[c,t,u] k[c,t,v] / (qkv_dim * tuples)) + att0s[h, u, v]`` (no softmax),
    computed from ``x + pe`` and applied to ``x`` itself; the heads are concatenated and mixed by a
    ``1 x 5`` convolution over tokens (``out_nets``), then a 1x1 feed-forward (``ff_net``), both with the
    residual ``ress``; then a ``3 x 1`` convolution across tuples (``out_nett``) with residual ``rest``.
    LeakyReLU(0.1) after each residual sum.
    """

    def __init__(
        self, in_channels: int, out_channels: int, qkv_dim: int, num_tuples: int, num_tokens: int,
        num_heads: int, kernel_size: tuple[int, int], use_pes: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.qkv_dim, self.num_heads = in_channels, qkv_dim, num_heads
        self.pes = TuplePositionTable(in_channels, num_tuples, num_tokens) if use_pes else None
        self.to_qkvs = nn.Conv2d(in_channels, 2 * num_heads * qkv_dim, 1)
        self.alphas = nn.Parameter(torch.ones(1, num_heads, 1, 1))
        self.att0s = nn.Parameter(torch.ones(1, num_heads, num_tokens, num_tokens) / num_tokens)
        self.out_nets = _conv_bn(in_channels * num_heads, out_channels, (1, kernel_size[1]))
        self.ff_net = _conv_bn(out_channels, out_channels)
        self.out_nett = _conv_bn(out_channels, out_channels, (kernel_size[0], 1))
        if in_channels != out_channels:
            self.ress = _conv_bn(in_channels, out_channels)
            self.rest = _conv_bn(out_channels, out_channels)
        else:
            self.ress = self.rest = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, c, t, v = x.shape
        xs = x if self.pes is None else x + self.pes(x)
        q, k = self.to_qkvs(xs).view(p, 2 * self.num_heads, self.qkv_dim, t, v).chunk(2, dim=1)
        scores = torch.einsum("phctu,phctv->phuv", q, k) / (self.qkv_dim * t)
        attention = torch.tanh(scores) * self.alphas + self.att0s
        mixed = torch.einsum("pctu,phuv->phctv", x, attention).reshape(p, self.num_heads * c, t, v)
        res = x if self.ress is None else self.ress(x)
        xs = F.leaky_relu(self.out_nets(mixed) + res, 0.1)
        xs = F.leaky_relu(self.ff_net(xs) + res, 0.1)
        rest = xs if self.rest is None else self.rest(xs)
        return F.leaky_relu(self.out_nett(xs) + rest, 0.1)


@VICTIMS.register("sttformer")
class STTFormer(Victim):
    """STTFormer, joint stream, NTU-60 configuration: 8 STA blocks, 3 heads, tuples of 6 frames.

    ``num_frames`` is the frame count the network is built for (``pes.pe`` rows = ``num_frames / len_parts``);
    the official pipeline crop-resizes every clip to it.
    """

    description = "STTFormer (2022): spatio-temporal tuples transformer, SGN translation + crop-resize to 120 frames"
    layouts = ("ntu25",)
    head_key = "fc.bias"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        num_frames: int = WINDOW,
        len_parts: int = 6,
        num_heads: int = 3,
    ) -> None:
        super().__init__(num_classes, layout, num_persons)
        if num_frames % len_parts:
            raise UserError(f"STTFormer needs num_frames divisible by len_parts ({len_parts}), got {num_frames}")
        self.num_frames, self.len_parts, self.num_heads = num_frames, len_parts, num_heads
        tokens = layout.num_joints * len_parts
        self.input_map = nn.Sequential(nn.Conv2d(3, CONFIG[0][0], 1), nn.BatchNorm2d(CONFIG[0][0]), nn.LeakyReLU(0.1))
        self.blocks = nn.ModuleList(
            STABlock(cin, cout, qkv, num_frames // len_parts, tokens, num_heads, kernel_size=(3, 5))
            for cin, cout, qkv in CONFIG
        )
        self.fc = nn.Linear(CONFIG[-1][1], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """The official initialisation: Kaiming (fan-out) convolutions, unit BatchNorm, Xavier classifier."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def pipeline(self, x: torch.Tensor) -> torch.Tensor:
        """Official test-time preprocessing: SGN translation, then the central 95 % resized to ``num_frames``."""
        x = preprocess.translate_to_origin(x, joint=1, person=0)
        return preprocess.crop_resize(x, self.num_frames, keep=0.95)

    def person_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(P, 3, T, V)`` person clips -> features ``(P, 256)`` averaged over tuples and tokens."""
        p, c, t, v = x.shape
        x = self.input_map(x.reshape(p, c, t // self.len_parts, self.len_parts * v))  # token = frame_in_tuple * V + joint
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pipeline(x)
        n, c, t, v, m = x.shape
        persons = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        features = self.map_persons(self.person_features, persons).view(n, m, -1).mean(dim=1)
        return self.fc(features)


@VICTIMS.register("sttformer-tasar")
class STTFormerTasar(STTFormer):
    """TASAR's STTFormer: built for 60 frames and fed TASAR's stored clips as they are (no translation, no resize)."""

    description = "STTFormer as trained by TASAR: 60-frame clips fed as stored (zero-padded to 60 frames)"

    def __init__(
        self,
        num_classes: int,
        layout: SkeletonLayout,
        num_persons: int = 2,
        num_frames: int = 60,
        len_parts: int = 6,
        num_heads: int = 3,
    ) -> None:
        super().__init__(num_classes, layout, num_persons, num_frames, len_parts, num_heads)

    def pipeline(self, x: torch.Tensor) -> torch.Tensor:
        return fit_frames(x, self.num_frames)
