"""FR-Head (Zhou, Li, Wang, Hu, Lu and Wang, CVPR 2023), zhysora/FR-Head @d53ea51.

FR-Head adds four contrastive "feature refinement" heads (``ST_RenovateNet``: ``ren_low``,
``ren_mid``, ``ren_high``, ``ren_fin``, on the features after l1, l5, l8 and l10) to a CTR-GCN
backbone. They only shape the training loss; the test-time model is the CTR-GCN backbone
(``model.ctrgcn.Model`` with ``cl_mode=None``), key-identical to the official CTR-GCN, with the same
data and test-time pipeline (FR-Head's feeder adds ``random_scale``, a training-only augmentation).
So this victim is :class:`~robustbench_skel.victims.ctrgcn.CTRGCN` with

* a checkpoint hook that drops the training-only ``ren_*`` keys the released ``runs.pt`` files hold
  (72 keys for ``num_frame=64``), and
* :meth:`FRHead.auxiliary_heads`, the refinement heads (``victims/frhead_refinement.py``), which
  ``train`` optimises beside the backbone, adding their losses to cross-entropy as ``--cl-mode
  ST-Multi-Level`` does, and does not save: the saved weights are the backbone's, loading as above.

The repo's NTU-60 configs use ``num_class: 120``; a released NTU-60 file therefore has a 120-way
``fc``, and ``load_victim`` sizes the classifier from the checkpoint (``head_key``).
"""

from __future__ import annotations

import logging

from robustbench_skel.checkpoint import StateDict
from robustbench_skel.registry import VICTIMS

from .ctrgcn import CTRGCN
from .frhead_refinement import LEVELS, FeatureRefinementHeads

__all__ = ["FRHead"]

log = logging.getLogger(__name__)

TRAINING_ONLY_PREFIXES = tuple(f"{name}." for name, _, _ in LEVELS)


@VICTIMS.register("frhead")
class FRHead(CTRGCN):
    """FR-Head's test-time network: the CTR-GCN backbone; its contrastive heads are training-only."""

    description = "FR-Head (CVPR 2023): CTR-GCN backbone trained with feature-refinement heads (training-only)"

    def remap_checkpoint_keys(self, state: StateDict) -> StateDict:
        """Drop the training-only ``ren_*`` keys of the released checkpoints (logged once)."""
        kept = {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIXES)}
        dropped = len(state) - len(kept)
        if dropped:
            log.info("frhead: dropped %d training-only FR-Head keys (ren_low/ren_mid/ren_high/ren_fin) before loading the CTR-GCN backbone", dropped)
        return kept

    def auxiliary_heads(self) -> FeatureRefinementHeads:
        """FR-Head's four refinement heads for this backbone's classes, window, joints and persons."""
        return FeatureRefinementHeads(self.num_classes, self.window, self.layout.num_joints, self.num_persons)
