"""FR-Head's training-only feature refinement (Zhou et al., CVPR 2023; zhysora/FR-Head @d53ea51).

FR-Head trains a CTR-GCN with four extra heads on the feature maps after units l1, l5, l8 and l10
(``ren_low``, ``ren_mid``, ``ren_high``, ``ren_fin``). Each head

1. decouples the map into a spatial embedding (mean over persons and time, a 1x1 conv + BN + ReLU
   squeezing the channels to ``256 // V``, flattened over joints) and a temporal one (mean over persons
   and joints, squeezed to ``256 // T'``, flattened over frames), each projected by a linear layer
   ``cl_fc`` to 256 dimensions;
2. sorts the batch against the classifier's (detached) prediction: true positives (TP, the confident
   samples; optionally only those above a probability threshold), false negatives of class k (labelled
   k, predicted otherwise) and false positives of class k (predicted k, labelled otherwise);
3. keeps one prototype per class, a momentum average (0.9) of that class's TP embeddings, batch by batch;
4. scores every embedding against all prototypes by cosine similarity over a temperature (0.125) and
   applies cross-entropy. The score of the true class is lowered by ``alpha * (1 - p_true) * (1 - cos(z,
   FN mean))`` in one copy of the scores and by ``alpha * (1 - p_true) * (1 + cos(z, FP mean))`` in another
   (alpha 0.125), which pulls the class towards its missed samples and away from the samples it wrongly
   attracts; the head's loss is the sum of both cross-entropies, spatial plus temporal.

The total training loss is ``CE + 0.1 * (0.1 L_low + 0.2 L_mid + 0.5 L_high + 1 L_fin)``: the level weights
of ``--w-multi-cl-loss 0.1 0.2 0.5 1`` used for the released models times the training script's default
``--w-cl-loss 0.1``. Defaults follow the official ``V0`` variant (used for X-Sub); ``confident_only=True`` is
its ``V1`` (X-View), where only TP samples get the FN/FP terms.

Deliberate differences from the official code, none of which changes the parameters or their keys:

* Frames per level: the official heads assume ``num_frame // 2`` and ``// 4`` frames after l5 and l8, which
  breaks for a window not divisible by 4; here they are the real lengths (stride 2 rounds up), equal for
  the official 64.
* The prototypes are a non-persistent buffer (as in the official code they are not in the state_dict, so
  a released ``runs.pt`` still loads strictly), and the stored copy is detached, whereas the official code
  keeps the last batch's autograd graph alive in it until the next step. As in the official code, the
  current batch's share of a prototype is not detached, so the loss also moves the TP embeddings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_skel.checkpoint import StateDict
from robustbench_skel.victim import AuxiliaryHeads, Victim

from .ctrgcn import UNIT_SHAPES, stage_lengths

__all__ = ["FeatureRefinementHeads", "PrototypeContrast", "SpatioTemporalRefinement", "LEVELS", "split_training_state"]

EMBEDDING = 256  # h_channel: the width every embedding is projected to (and the squeeze budget)
# (state_dict prefix, unit whose output it refines, level weight of --w-multi-cl-loss 0.1 0.2 0.5 1)
LEVELS = (("ren_low", 1, 0.1), ("ren_mid", 5, 0.2), ("ren_high", 8, 0.5), ("ren_fin", 10, 1.0))
REFINEMENT_WEIGHT = 0.1  # --w-cl-loss, the training script's default


class PrototypeContrast(nn.Module):
    """Prototype contrast of one embedding stream, with FN/FP calibration (the official ``RenovateNet``)."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: int = EMBEDDING,
        alpha: float = 0.125,
        temperature: float = 0.125,
        momentum: float = 0.9,
        threshold: float = 0.0,
        confidence_weight: bool = True,
        confident_only: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.alpha, self.temperature, self.momentum, self.threshold = alpha, temperature, momentum, threshold
        self.confidence_weight = confidence_weight  # scale the FN/FP terms by (1 - p_true) (official use_p_map)
        self.confident_only = confident_only  # official V1: FN/FP terms on TP samples only
        self.cl_fc = nn.Linear(in_features, hidden)
        # Random start as in the official code; classes get real prototypes as their TP samples arrive.
        self.register_buffer("prototypes", torch.randn(num_classes, hidden), persistent=False)

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Loss of embeddings ``(N, in_features)`` given labels ``(N,)`` and the classifier's logits ``(N, K)``."""
        z = self.cl_fc(embedding).float()
        with torch.autocast(z.device.type, enabled=False):  # cosines over a 0.125 temperature need float32
            return self._loss(z, labels, logits.detach().float())

    def _loss(self, z: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.softmax(dim=1)
        truth = F.one_hot(labels, self.num_classes).float()
        predicted = F.one_hot(logits.argmax(dim=1), self.num_classes).float()
        hit = truth * predicted
        missed, wrongly_attracted = truth - hit, predicted - hit  # FN and FP, per class column
        confident = hit * (probs > self.threshold).float()

        prototypes = self._update_prototypes(z, confident)
        fn_centre, fp_centre = _class_means(z, missed), _class_means(z, wrongly_attracted)
        has_fn = (missed.sum(dim=0) > 0).float()
        has_fp = (wrongly_attracted.sum(dim=0) > 0).float()

        z = F.normalize(z, dim=1)
        similarity = z @ F.normalize(prototypes, dim=1).T  # (N, K)
        weight = self.alpha * truth * ((1 - probs) if self.confidence_weight else 1.0)
        if self.confident_only:
            weight = weight * confident
        toward_fn = (z @ F.normalize(fn_centre, dim=1).T - 1) * weight * has_fn
        away_from_fp = (-(z @ F.normalize(fp_centre, dim=1).T) - 1) * weight * has_fp
        return (F.cross_entropy((similarity + toward_fn) / self.temperature, labels)
                + F.cross_entropy((similarity + away_from_fp) / self.temperature, labels))

    def _update_prototypes(self, z: torch.Tensor, confident: torch.Tensor) -> torch.Tensor:
        """Momentum step of the classes that have confident samples; returns the prototypes for this batch."""
        present = (confident.sum(dim=0) > 0).unsqueeze(1)  # (K, 1)
        keep = torch.where(present, self.momentum, 1.0)
        memory = self.prototypes.to(z.dtype)
        updated = keep * memory + (1 - keep) * _class_means(z, confident)
        with torch.no_grad():
            self.prototypes.copy_(updated.detach())
        return updated


def _class_means(z: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """``(K, D)``: the mean embedding of each class's members (``members`` is ``(N, K)`` 0/1); zero if none."""
    return (members / members.sum(dim=0, keepdim=True).clamp_min(1e-12)).T @ z


class SpatioTemporalRefinement(nn.Module):
    """One FR-Head level (the official ``ST_RenovateNet``): spatial and temporal embeddings of a feature
    map, each refined by a :class:`PrototypeContrast`. Parameter names follow the official checkpoint."""

    def __init__(self, channels: int, frames: int, joints: int, persons: int, num_classes: int, **contrast: object) -> None:
        super().__init__()
        spatial_width, temporal_width = EMBEDDING // joints, EMBEDDING // frames
        if not spatial_width or not temporal_width:
            raise ValueError(f"FR-Head squeezes to {EMBEDDING} // joints and {EMBEDDING} // frames channels; "
                             f"{joints} joints and {frames} frames leave none")
        self.channels, self.frames, self.joints, self.persons = channels, frames, joints, persons
        self.spatio_cl_net = PrototypeContrast(spatial_width * joints, num_classes, **contrast)
        self.tempor_cl_net = PrototypeContrast(temporal_width * frames, num_classes, **contrast)
        self.spatio_squeeze = nn.Sequential(nn.Conv2d(channels, spatial_width, 1), nn.BatchNorm2d(spatial_width), nn.ReLU(True))
        self.tempor_squeeze = nn.Sequential(nn.Conv2d(channels, temporal_width, 1), nn.BatchNorm2d(temporal_width), nn.ReLU(True))

    def forward(self, feature_map: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Loss of a map ``(N*M, C, T', V)`` (persons folded into the batch, person-minor)."""
        expected = (self.channels, self.frames, self.joints)
        if tuple(feature_map.shape[1:]) != expected:
            raise ValueError(f"this FR-Head level expects feature maps (N*M, {expected}), got {tuple(feature_map.shape)}")
        x = feature_map.view(-1, self.persons, *expected).mean(dim=1)  # (N, C, T', V)
        spatial = self.spatio_squeeze(x.mean(dim=2, keepdim=True)).flatten(1)
        temporal = self.tempor_squeeze(x.mean(dim=3, keepdim=True)).flatten(1)
        return self.spatio_cl_net(spatial, labels, logits) + self.tempor_cl_net(temporal, labels, logits)


class FeatureRefinementHeads(AuxiliaryHeads):
    """FR-Head's ``ST-Multi-Level`` refinement: one :class:`SpatioTemporalRefinement` per level of
    :data:`LEVELS` on a CTR-GCN-family backbone of ``window`` input frames."""

    def __init__(
        self,
        num_classes: int,
        window: int,
        joints: int,
        persons: int,
        weight: float = REFINEMENT_WEIGHT,
        **contrast: object,
    ) -> None:
        super().__init__()
        self.weight = weight
        frames = stage_lengths(window)
        for name, unit, _ in LEVELS:
            channels = UNIT_SHAPES[unit - 1][0]
            setattr(self, name, SpatioTemporalRefinement(channels, frames[unit - 1], joints, persons, num_classes, **contrast))

    @property
    def units(self) -> tuple[int, ...]:
        return tuple(unit for _, unit, _ in LEVELS)

    def forward(self, victim: Victim, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One training pass of ``victim`` (a CTR-GCN-family model): its logits and the weighted level losses."""
        logits, stages = victim.forward_with_stages(clips, self.units)
        losses = {name: self.weight * level_weight * getattr(self, name)(stages[unit], labels, logits)
                  for name, unit, level_weight in LEVELS}
        return logits, losses


def split_training_state(state: StateDict) -> tuple[StateDict, StateDict]:
    """A full FR-Head training state_dict (an official ``runs.pt``) split into the backbone's entries and the
    heads' (``ren_*``) entries, keys unchanged, for strict loading into the victim and its
    :class:`FeatureRefinementHeads`."""
    prefixes = tuple(f"{name}." for name, _, _ in LEVELS)
    heads = {k: v for k, v in state.items() if k.startswith(prefixes)}
    return {k: v for k, v in state.items() if k not in heads}, heads
