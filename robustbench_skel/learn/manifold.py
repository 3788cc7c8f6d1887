"""The motion manifold of the hard no-box attacks (SMI, Lu et al. ICCV 2023, §3.1): a contrastive encoder.

A no-box attacker holds unlabelled clips only. The paper learns a feature space from them by
contrastive self-supervision (MoCo, Thoker et al.'s "Skeleton-contrast" augmentations, InfoNCE) and
attacks *that* space: the adversarial clip is pushed away from its own clean feature and towards
other clips and far k-means centres. Here the encoder is a small graph/temporal-convolution network on
per-frame centred clips, trained with two augmented views per clip (temporal crop-resize, then shear
or joint corruption, as the paper) and InfoNCE with in-batch negatives (``queue=0``) or a MoCo queue
with a momentum key encoder (``queue>0``).

Presets: ``fast`` (default) trains on the synth pool in about a minute on 2 CPU cores; ``paper`` is the
paper's optimisation for GPU users (SGD 0.01, 451 epochs, lr x0.1 at 160 and 351, queue 16384, key
momentum 0.999, tau 0.07, 128-d head, a 10-block 64-128-256 GCN like AGCN's, 64-frame crops). What
``paper`` does not reproduce: the BiGRU second representation and the cross-representation positives
(only the AGCN query encoder is used by the attack, so we train that branch alone), and AGCN's adaptive
adjacency (a fixed normalised adjacency of the layout's graph here).

k-means negatives (paper: 120 clusters on about 16-19k NTU test clips, drop the Q = 10 centres nearest
each sample) are scaled to the pool: by default one cluster per 24 clips (at most 120, at least 12)
and Q in the paper's ratio Q/K = 1/12. The manifold is trained once per pool and hyperparameters and
cached as an artefact (tensors only); training is deterministic under its seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..artefacts import ArtefactStore
from ..budget import valid_mask
from ..errors import UserError
from ..handed import UnlabelledPool
from ..layout import SkeletonLayout
from ..motion import valid_prefix_lengths
from ..progress_meter import progress as show_progress

__all__ = ["ManifoldConfig", "PRESETS", "manifold_config", "MotionEncoder", "MotionManifold", "augment",
           "info_nce", "train_manifold", "load_or_train_manifold"]


@dataclass(frozen=True)
class ManifoldConfig:
    """Every hyperparameter of the manifold (all of them go into the artefact's cache key)."""

    epochs: int = 4
    batch_size: int = 64
    optimizer: str = "adam"  # "adam" or "sgd" (the paper: SGD, momentum 0.9)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_milestones: tuple[int, ...] = ()  # epochs at which lr is multiplied by 0.1
    temperature: float = 0.07  # the paper's tau
    queue: int = 0  # 0: in-batch negatives (SimCLR-style); > 0: MoCo queue of this many keys
    key_momentum: float = 0.999  # MoCo key-encoder momentum (only with a queue)
    arch: str = "tcn"  # "tcn" (pose vectors, temporal convolutions) or "gcn" (AGCN-like graph blocks)
    channels: tuple[int, ...] = (64, 64)
    strides: tuple[int, ...] = (2, 2)
    dim: int = 64  # projection head output (the paper: 128)
    crop_frames: int = 32  # crop-resize length (the paper: 64 of 300 frames)
    crop_min: float = 0.1  # crop ratio U[crop_min, 1] (the paper), at least crop_frames frames
    shear: float = 1.0  # shear off-diagonals U(-shear, shear) (the paper: 1)
    corrupt_joints: int = 15  # joints zeroed or mixed by joint corruption (the paper: 15 of 25)
    n_clusters: int | None = None  # None: pool size // 24, clamped to [12, 120] (the paper: 120)
    drop_nearest: int | None = None  # None: round(n_clusters / 12) (the paper: Q = 10 of 120)
    seed: int = 0

    def clusters(self, pool_size: int) -> tuple[int, int]:
        """``(K, Q)``: k-means clusters and the nearest centres dropped per sample, for a pool of this size."""
        k = self.n_clusters if self.n_clusters is not None else min(120, max(12, pool_size // 24))
        k = min(k, pool_size)
        q = self.drop_nearest if self.drop_nearest is not None else max(1, round(k / 12))
        if not 0 <= q < k:
            raise UserError(f"manifold: drop_nearest must lie in [0, {k}) for {k} clusters, got {q}")
        return k, q

    def spec(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


PRESETS: dict[str, ManifoldConfig] = {
    "fast": ManifoldConfig(),
    "paper": ManifoldConfig(
        epochs=451, batch_size=64, optimizer="sgd", lr=0.01, weight_decay=1e-4, lr_milestones=(160, 351),
        temperature=0.07, queue=16384, key_momentum=0.999, arch="gcn", channels=(64, 64, 64, 64, 128, 128, 128, 256, 256, 256),
        strides=(1, 1, 1, 1, 2, 1, 1, 2, 1, 1), dim=128, crop_frames=64, n_clusters=120, drop_nearest=10,
    ),
}


def manifold_config(preset: str, seed: int = 0, **overrides: Any) -> ManifoldConfig:
    """A preset with some fields overridden (None values are ignored); a UserError for a bad value."""
    if preset not in PRESETS:
        raise UserError(f"manifold preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    config = replace(PRESETS[preset], seed=int(seed), **{k: v for k, v in overrides.items() if v is not None})
    if not (isinstance(config.epochs, int) and config.epochs >= 1):
        raise UserError(f"manifold epochs must be a positive integer, got {config.epochs!r}")
    if config.optimizer not in ("adam", "sgd"):
        raise UserError(f"manifold optimizer must be adam or sgd, got {config.optimizer!r}")
    if len(config.channels) != len(config.strides) or not config.channels:
        raise UserError("manifold channels and strides must have the same, non-zero length")
    if not (config.batch_size >= 2 and config.temperature > 0 and config.crop_frames >= 2 and 0 < config.crop_min <= 1):
        raise UserError("manifold: batch_size >= 2, temperature > 0, crop_frames >= 2 and crop_min in (0, 1] are required")
    return config


def _centre(clips: torch.Tensor, layout: SkeletonLayout) -> torch.Tensor:
    """Per-frame centring on the first actor's centre joint (the 2s-AGCN pre-normalisation); absent frames stay zero."""
    root = clips[:, :, :, layout.center : layout.center + 1, :1]
    return (clips - root) * valid_mask(clips)


class _Block(nn.Module):
    """Graph convolution (fixed normalised adjacency, then 1x1) and a 9-frame temporal convolution, residual."""

    def __init__(self, c_in: int, c_out: int, stride: int, adjacency: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("adjacency", adjacency)
        self.spatial = nn.Conv2d(c_in, c_out, 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.temporal = nn.Conv2d(c_out, c_out, (9, 1), stride=(stride, 1), padding=(4, 0))
        self.bn2 = nn.BatchNorm2d(c_out)
        self.residual = nn.Identity() if c_in == c_out and stride == 1 else nn.Conv2d(c_in, c_out, 1, stride=(stride, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.einsum("nctv,vw->nctw", x, self.adjacency)
        h = torch.relu(self.bn1(self.spatial(h)))
        h = self.bn2(self.temporal(h))
        return torch.relu(h + self.residual(x))


class MotionEncoder(nn.Module):
    """Clips ``(N, 3, T, V, M)`` in metres -> features ``(N, C)`` (the attack's space), plus a projection head.

    ``arch="tcn"`` (default): each person-frame's pose vector (3 V coordinates) embedded by a 1x1
    convolution, then 5-frame temporal convolutions: about 15x cheaper than the graph network on a CPU,
    and like the paper's sequence branch, a whole-pose representation. ``arch="gcn"``: graph
    convolutions over the layout's joints then 9-frame temporal convolutions per block (AGCN-like).
    """

    def __init__(self, layout: SkeletonLayout, channels: tuple[int, ...], strides: tuple[int, ...], dim: int,
                 arch: str = "tcn") -> None:
        super().__init__()
        self.layout = layout
        self.arch = arch
        v = layout.num_joints
        self.norm = nn.BatchNorm1d(3 * v)
        if arch == "gcn":
            a = torch.from_numpy(layout.adjacency()) + torch.eye(v)
            d = a.sum(1).rsqrt()
            adjacency = d[:, None] * a * d[None, :]
            widths = (3, *channels)
            self.blocks = nn.ModuleList(_Block(widths[i], widths[i + 1], strides[i], adjacency) for i in range(len(channels)))
        elif arch == "tcn":
            layers: list[nn.Module] = [nn.Conv1d(3 * v, channels[0], 1), nn.ReLU()]
            widths = (channels[0], *channels)
            for i in range(len(channels)):
                layers += [nn.Conv1d(widths[i], widths[i + 1], 5, stride=strides[i], padding=2),
                           nn.BatchNorm1d(widths[i + 1]), nn.ReLU()]
            self.blocks = nn.ModuleList([nn.Sequential(*layers)])
        else:
            raise UserError(f"manifold arch must be tcn or gcn, got {arch!r}")
        self.head = nn.Sequential(nn.Linear(channels[-1], channels[-1]), nn.ReLU(), nn.Linear(channels[-1], dim))

    def backbone(self, centred: torch.Tensor) -> torch.Tensor:
        """Features of already centred clips; persons absent from the whole batch are skipped."""
        n, c, t, v, m = centred.shape
        present = centred.ne(0).any(dim=(1, 2, 3))  # (N, M)
        keep = present.any(dim=0)  # persons present somewhere in the batch
        mk = int(keep.sum())
        p = centred[..., keep].permute(0, 4, 1, 3, 2).reshape(n * mk, c * v, t)
        p = self.norm(p)  # BatchNorm over the joints' coordinates, as AGCN's data_bn
        if self.arch == "gcn":
            p = p.reshape(n * mk, c, v, t).permute(0, 1, 3, 2)
            for block in self.blocks:
                p = block(p)
            h = p.mean(dim=(2, 3))
        else:
            h = self.blocks[0](p).mean(dim=2)
        h = h.view(n, mk, -1)
        w = present[:, keep].to(h.dtype)
        return (h * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.backbone(_centre(clips, self.layout))


def augment(centred: torch.Tensor, config: ManifoldConfig, generator: torch.Generator) -> torch.Tensor:
    """One random view per clip: temporal crop-resize to ``crop_frames``, then shear or joint corruption (p = 0.5 each)."""
    n, c, t, v, m = centred.shape
    lengths = valid_prefix_lengths(centred.numpy()).max(axis=1)  # (N,)
    u = torch.rand(n, 6, generator=generator)
    length = torch.from_numpy(lengths).clamp_min(1).to(torch.float64)
    ratio = config.crop_min + (1 - config.crop_min) * u[:, 0].double()
    size = torch.minimum(length, torch.maximum((ratio * length).round(), torch.full_like(length, config.crop_frames)))
    start = (u[:, 1].double() * (length - size + 1)).floor().clamp(max=length - size)
    pos = start[:, None] + torch.linspace(0, 1, config.crop_frames, dtype=torch.float64)[None] * (size[:, None] - 1)
    lo = pos.floor().long().clamp(0, t - 1)
    hi = (lo + 1).clamp(max=t - 1)
    frac = (pos - lo).to(centred.dtype).view(n, 1, -1, 1, 1)

    def frames(index: torch.Tensor) -> torch.Tensor:
        return centred.gather(2, index.view(n, 1, -1, 1, 1).expand(n, c, -1, v, m))

    out = frames(lo) * (1 - frac) + frames(hi) * frac  # linear resize of the crop (align_corners)
    mask = valid_mask(out)
    shear = torch.eye(3).repeat(n, 1, 1) + (torch.rand(n, 3, 3, generator=generator) * 2 - 1) * config.shear * (1 - torch.eye(3))
    mixing = torch.rand(n, 3, 3, generator=generator) * 2 - 1
    joints = torch.rand(n, v, generator=generator).argsort(dim=1)[:, : config.corrupt_joints]
    corrupt = torch.zeros(n, v, dtype=torch.bool).scatter_(1, joints, True)
    sheared = torch.einsum("nij,njtvm->nitvm", shear, out)
    mixed = torch.einsum("nij,njtvm->nitvm", mixing, out)
    corrupted = torch.where(corrupt.view(n, 1, 1, v, 1), torch.where(u[:, 3].view(n, 1, 1, 1, 1) < 0.5, 0.0, mixed), out)
    view = torch.where(u[:, 2].view(n, 1, 1, 1, 1) < 0.5, sheared, corrupted)
    return view * mask


def info_nce(query: torch.Tensor, key: torch.Tensor, temperature: float, queue: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE (paper Eq. 1): each query's positive is its own key; negatives the other keys of the batch, or the queue."""
    q, k = F.normalize(query, dim=1), F.normalize(key, dim=1)
    if queue is None:
        logits = q @ k.t() / temperature  # the diagonal holds the positives
        return F.cross_entropy(logits, torch.arange(q.shape[0], device=q.device))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


@dataclass
class MotionManifold:
    """A trained encoder and the pool's k-means centres: the attack's feature space and its far negatives."""

    encoder: MotionEncoder
    centres: torch.Tensor  # (K, C), L2-normalised
    drop_nearest: int

    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """L2-normalised features ``(N, C)`` of raw clips (differentiable in ``clips``)."""
        return F.normalize(self.encoder(clips), dim=1)

    def far_centres(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, K - Q, C)``: every centre but the ``Q`` nearest (by cosine) to each feature, in the centres' order."""
        centres = self.centres.to(features)
        near = (features.detach() @ centres.t()).topk(self.drop_nearest, dim=1).indices if self.drop_nearest else None
        keep = torch.ones(features.shape[0], centres.shape[0], dtype=torch.bool, device=features.device)
        if near is not None:
            keep.scatter_(1, near, False)
        return centres.expand(features.shape[0], -1, -1)[keep].view(features.shape[0], -1, centres.shape[1])

    def to(self, device: torch.device) -> "MotionManifold":
        self.encoder.to(device)
        self.centres = self.centres.to(device)
        return self


def _build_encoder(layout: SkeletonLayout, config: ManifoldConfig) -> MotionEncoder:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return MotionEncoder(layout, tuple(config.channels), tuple(config.strides), config.dim, config.arch)


def _pool_features(encoder: MotionEncoder, clips: torch.Tensor, batch_size: int) -> torch.Tensor:
    encoder.eval()
    with torch.no_grad():
        return torch.cat([F.normalize(encoder(clips[i : i + batch_size]), dim=1) for i in range(0, clips.shape[0], batch_size)])


def train_manifold(pool: UnlabelledPool, config: ManifoldConfig, progress: bool = False,
                   device: torch.device | None = None) -> dict[str, Any]:
    """Train the encoder on the pool (on ``device``; views are drawn on the CPU), cluster its features.

    Returns the artefact's content (tensors only, on the CPU).
    """
    device = torch.device("cpu") if device is None else device
    from scipy.cluster.vq import kmeans2

    clips = pool.clips.float()
    if clips.shape[0] < 2:
        raise UserError("the no-box pool needs at least two clips to learn a manifold")
    k, _ = config.clusters(clips.shape[0])
    centred = _centre(clips, pool.layout)
    generator = torch.Generator().manual_seed(config.seed)
    encoder = _build_encoder(pool.layout, config).to(device)
    key_encoder = None
    queue = None
    if config.queue > 0:
        key_encoder = _build_encoder(pool.layout, config).to(device)
        key_encoder.load_state_dict(encoder.state_dict())
        for p in key_encoder.parameters():
            p.requires_grad_(False)
        queue = F.normalize(torch.randn(config.queue, config.dim, generator=generator), dim=1).to(device)
    params = list(encoder.parameters())
    if config.optimizer == "sgd":
        optimizer = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    batch = min(config.batch_size, clips.shape[0])
    epochs = show_progress(range(config.epochs), desc="motion manifold", unit="epoch", enabled=progress)
    losses = []
    for epoch in epochs:
        lr = config.lr * 0.1 ** sum(epoch >= m for m in config.lr_milestones)
        for group in optimizer.param_groups:
            group["lr"] = lr
        encoder.train()
        order = torch.randperm(clips.shape[0], generator=generator)
        total, count = 0.0, 0
        for start in range(0, order.numel() - batch + 1, batch):  # drop the last partial batch (BatchNorm, negatives)
            x = centred[order[start : start + batch]]
            v1, v2 = augment(x, config, generator).to(device), augment(x, config, generator).to(device)
            q = encoder.head(encoder.backbone(v1))
            if key_encoder is None:
                k2 = encoder.head(encoder.backbone(v2))
                loss = 0.5 * (info_nce(q, k2, config.temperature) + info_nce(k2, q, config.temperature))
            else:
                with torch.no_grad():
                    key_encoder.train()
                    k2 = F.normalize(key_encoder.head(key_encoder.backbone(v2)), dim=1)
                loss = info_nce(q, k2, config.temperature, queue)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if key_encoder is not None:
                with torch.no_grad():
                    for pk, pq in zip(key_encoder.state_dict().values(), encoder.state_dict().values()):
                        if pk.dtype.is_floating_point:
                            pk.mul_(config.key_momentum).add_(pq, alpha=1 - config.key_momentum)
                        else:
                            pk.copy_(pq)
                    queue = torch.cat([k2, queue])[: config.queue]
            total, count = total + float(loss.detach()), count + 1
        losses.append(total / max(count, 1))
        epochs.set_postfix(loss=f"{losses[-1]:.3f}")
    features = _pool_features(encoder, clips.to(device), 256).cpu().double().numpy()
    centres, _ = kmeans2(features, k, iter=20, minit="++", rng=np.random.default_rng(config.seed))
    centres = F.normalize(torch.from_numpy(centres).float(), dim=1)
    return {"encoder": {k_: v.detach().cpu().clone() for k_, v in encoder.state_dict().items()},
            "centres": centres, "losses": torch.tensor(losses, dtype=torch.float64)}


def load_or_train_manifold(
    pool: UnlabelledPool, config: ManifoldConfig, store: ArtefactStore | None = None, command: str | None = None,
    progress: bool = False, device: torch.device | None = None,
) -> tuple[MotionManifold, dict[str, Any] | None]:
    """The manifold of ``pool`` (trained once and cached in ``store``; trained in memory without one) and its record entry."""
    spec = {"pool": pool.sha256, "layout": pool.layout.name, **config.spec()}

    def build() -> dict[str, Any]:
        return train_manifold(pool, config, progress, device)

    if store is None:
        content, entry = build(), None
    else:
        content, entry = store.load_or_build("motion-manifold", spec, build, command)
    encoder = _build_encoder(pool.layout, config)
    encoder.load_state_dict(content["encoder"])
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    _, q = config.clusters(pool.clips.shape[0])
    return MotionManifold(encoder, content["centres"].float(), q), entry

