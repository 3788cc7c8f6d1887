"""The four threat models in the runner: what each hands the attack, how it crafts, what it records.

One small class per threat model keeps :func:`robustbench_skel.run.runner.run_benchmark` free of
``if threat_model == ...`` chains (design.md, last section):

- :class:`WhiteBox`: the attack gets the (defended) victim and crafts on the clips it classifies
  correctly; adaptive settings (EOT, BPDA) against a defense are recorded;
- :class:`Transfer`: the attack gets the surrogate ensemble only; clips are crafted on every
  evaluated sample, once, and cached by content (surrogates, attack, dataset, sample ids, seed), so
  the same adversarial clips serve every victim; the record adds the surrogates' own (white-box)
  success;
- :class:`NoBox`: the attack gets an unlabelled pool and no labels; crafting is cached like transfer;
- :class:`DecisionBased`: the attack gets a label oracle per batch that counts queries; the record
  holds per-sample query counts.

Whatever produced the clips, the evaluator then re-classifies them on the (defended) victim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..artefacts import ArtefactStore
from ..learn.bayes_diagnostic import DIAGNOSTIC_CLIPS, degenerate_check
from ..learn.gradient_alignment import gradient_alignment
from ..attack import Attack, ThreatModel
from ..victim import predict
from .evaluator import proportion
from ..handed import LabelOracle, SurrogateEnsemble, UnlabelledPool
from ..progress_meter import progress_enabled
from .crafting import Crafted, attack_rows
from .progress import BatchCheckpoint
from ..registry import ATTACKS
from .sanity import re_run_success, run_sanity_checks, variant

__all__ = ["Crafted", "ThreatSetting", "WhiteBox", "Transfer", "NoBox", "DecisionBased", "attack_rows"]


class ThreatSetting:
    """Base of the four settings; the runner calls these methods in this order."""

    model: ThreatModel
    handed: Any

    def craft(self, attack: Attack, clips: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
              attacked: torch.Tensor, progress: bool) -> Crafted:
        raise NotImplementedError

    def extra_metrics(self, crafted: Crafted, clips: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
                      attacked: torch.Tensor, success: torch.Tensor) -> tuple[dict[str, Any], dict[str, list]]:
        """Threat-model-specific metrics and per-sample columns for the record (default: none)."""
        return {}, {}

    def sanity(self, attack: Attack, clips: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None,
               attacked: torch.Tensor, success: torch.Tensor, subset_size: int) -> dict[str, Any] | None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"model": self.model.value}


@dataclass
class _Common:
    """What every setting needs from the run."""

    eval_model: nn.Module  # the (defended) victim the evaluator uses
    batch_size: int
    device: torch.device
    seed: int
    store: ArtefactStore
    victim_fingerprint: str  # victim checkpoint sha256 and defense, for cache keys
    data_fingerprint: dict[str, Any]  # dataset name, version, split, sample ids sha256
    checkpoint: BatchCheckpoint | None = None  # per-batch progress of the main crafting (resume after a kill)
    amp: bool = False  # bfloat16 autocast for the attack's forward and backward passes
    attack_model: nn.Module | None = None  # what a white-box attacker differentiates (BPDA variant), default eval_model
    eot_samples: int = 1  # draws per gradient against a randomized defense
    reference_success: bool = False  # transfer: also the TASAR reference's success over every crafted clip

    def white_box_model(self) -> nn.Module:
        return self.attack_model if self.attack_model is not None else self.eval_model


class WhiteBox(ThreatSetting):
    """The attack gets the (defended) victim; ``attack_model`` differs from the evaluated one under BPDA."""

    model = ThreatModel.WHITE_BOX

    def __init__(self, common: _Common, attack_model: nn.Module, adaptive: dict[str, Any] | None = None) -> None:
        self.common = common
        self.handed = attack_model
        self.adaptive = adaptive

    def craft(self, attack, clips, labels, targets, attacked, progress):
        c = self.common
        rows = attacked.nonzero().squeeze(1)
        return attack_rows(attack, self.handed, clips, labels, targets, rows, c.batch_size, c.device, c.seed,
                           progress=f"{attack.name}" if progress else None, checkpoint=c.checkpoint, amp=c.amp)

    def sanity(self, attack, clips, labels, targets, attacked, success, subset_size):
        sub = attacked.nonzero().squeeze(1)[:subset_size]
        if subset_size <= 0 or sub.numel() == 0:
            return None
        c = self.common
        x, y, t = clips[sub], labels[sub], None if targets is None else targets[sub]
        result = run_sanity_checks(attack, self.handed, x, y, t, success[sub], c.batch_size, c.device, c.seed,
                                   checkpoint=c.checkpoint, evaluated=c.eval_model)
        if attack.eot_samples > 1:
            result["checks"]["eot_not_below_single_draw"] = self._single_draw_check(attack, x, y, t, success[sub])
        return result

    def _single_draw_check(self, attack, x, y, t, success) -> dict[str, Any]:
        """Against a randomized defense, averaging gradients over draws (EOT) must not do worse than one draw."""
        c = self.common
        single = variant(attack)
        single.eot_samples = 1
        one = re_run_success(self.handed, c.eval_model, single, x, y, t, c.batch_size, c.device, c.seed,
                             c.checkpoint.sub("sanity-single-draw") if c.checkpoint else None,
                             progress=f"sanity re-run: one draw per gradient ({single.name})" if progress_enabled() else None)
        eot = float(success.float().mean())
        return {"passed": eot >= one, "success": eot, "reference": one, "eot_samples": attack.eot_samples,
                "expect": "EOT success >= single-draw success (else the EOT estimate is broken or too noisy)"}

    def describe(self):
        described = super().describe()
        if self.adaptive:
            described["adaptive"] = self.adaptive
        return described


def white_box_reference(attack: Attack) -> Attack:
    """The white-box attack a transfer or no-box result is compared with on the victim.

    A gradient attack that also runs white-box is compared with itself; an attack that only makes
    sense with surrogates (or without any model) with I-FGSM at the same budget and iterations.
    """
    if attack.threat_model is ThreatModel.WHITE_BOX:
        reference = variant(attack)
    else:
        params = attack.hyperparameters()
        kwargs = {"eps": attack.eps, "targeted": attack.targeted, "seed": attack.seed}
        if isinstance(params.get("steps"), int):
            kwargs["steps"] = params["steps"]
        reference = ATTACKS.get("ifgsm")(**kwargs)
    reference.early_stop = "adversarial"
    return reference


def _reference_check(common: _Common, attack: Attack, clips, labels, targets, attacked, success, subset_size) -> dict[str, Any] | None:
    """``not_above_white_box``: on the first attacked samples, success here <= the white-box reference's on the victim.

    The reference run is cached by victim, reference attack and samples, so it is computed once per
    victim however many surrogates or attacks are compared with it.
    """
    sub = attacked.nonzero().squeeze(1)[:subset_size]
    if subset_size <= 0 or sub.numel() == 0:
        return None
    reference = white_box_reference(attack)
    x, y = clips[sub], labels[sub]
    t = None if targets is None else targets[sub]

    reference.eot_samples = common.eot_samples  # adaptive against a randomized defense, like its white-box runs

    def build() -> dict[str, Any]:
        label = f"sanity re-run: white-box {reference.name} on the victim" if progress_enabled() else None
        crafted = attack_rows(reference, common.white_box_model(), x, y, t, torch.arange(x.shape[0]), common.batch_size,
                              common.device, common.seed, progress=label)
        pred = predict(common.eval_model, crafted.adv, common.batch_size, common.device)
        return {"fooled": is_adversarial_pred(pred, y, t)}

    spec = {"victim": common.victim_fingerprint, "data": common.data_fingerprint, "rows": sub.tolist(),
            "reference": reference.describe(), "seed": common.seed, "batch_size": common.batch_size}
    content, entry = common.store.load_or_build("white-box-reference", spec, build)
    ref_success = float(content["fooled"].float().mean())
    here = float(success[sub].float().mean())
    return {
        "passed": here <= ref_success, "success": here, "reference": ref_success, "reference_attack": reference.name,
        "subset_size": int(sub.numel()), "artefact": entry,
        "expect": f"success <= the white-box {reference.name} success on the victim (same samples and budget)",
    }


def is_adversarial_pred(pred: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    return pred.eq(targets) if targets is not None else pred.ne(labels)


class _CachedCraft(ThreatSetting):
    """Crafting that does not depend on the victim: every evaluated sample, once, content-addressed."""

    def __init__(self, common: _Common) -> None:
        self.common = common
        self.artefact: dict[str, Any] | None = None

    def _labels_for_attack(self, labels: torch.Tensor) -> torch.Tensor | None:
        return labels

    def _craft_spec(self, attack: Attack) -> dict[str, Any]:
        c = self.common
        return {"attack": attack.describe(), "data": c.data_fingerprint, "seed": c.seed, "batch_size": c.batch_size}

    def _after_craft(self, crafted: Crafted, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def craft(self, attack, clips, labels, targets, attacked, progress):
        c = self.common

        def build() -> dict[str, Any]:
            crafted = attack_rows(attack, self.handed, clips, self._labels_for_attack(labels), targets,
                                  torch.arange(clips.shape[0]), c.batch_size, c.device, c.seed,
                                  progress=f"{attack.name} (crafting once for every victim)" if progress else None,
                                  checkpoint=c.checkpoint, amp=c.amp)
            content: dict[str, Any] = {"adv": crafted.adv, "extra": crafted.extra, **self._after_craft(crafted, clips)}
            if crafted.iterations is not None:
                content["iterations"] = crafted.iterations
            if crafted.ever_adversarial is not None:
                content["ever_adversarial"] = crafted.ever_adversarial
            return content

        content, self.artefact = c.store.load_or_build("adversarial", self._craft_spec(attack), build)
        self.content = content
        adv = torch.where(attacked.view(-1, 1, 1, 1, 1), content["adv"], clips)
        # Visits of the handed model say nothing about the victim: no "lost success" accounting here.
        return Crafted(adv, content.get("iterations"), None, dict(content.get("extra", {})))

    def sanity(self, attack, clips, labels, targets, attacked, success, subset_size):
        check = _reference_check(self.common, attack, clips, labels, targets, attacked, success, subset_size)
        return {"subset_size": check["subset_size"], "checks": {"not_above_white_box": check}} if check else None


class Transfer(_CachedCraft):
    """The attack gets the surrogate ensemble; the record adds the surrogates' own success."""

    model = ThreatModel.TRANSFER

    def __init__(self, common: _Common, ensemble: SurrogateEnsemble) -> None:
        super().__init__(common)
        self.handed = ensemble
        self.diagnostic: dict[str, Any] | None = None  # a Bayesian attack's diagnostic (see craft)
        self.alignment: dict[str, Any] | None = None  # surrogate-victim gradient alignment (see extra_metrics)

    def _craft_spec(self, attack):
        return {**super()._craft_spec(attack), "surrogates": self.handed.fingerprint()}

    def craft(self, attack, clips, labels, targets, attacked, progress):
        crafted = super().craft(attack, clips, labels, targets, attacked, progress)
        diagnose = getattr(attack, "bayesian_diagnostic", None)  # TASAR, BA: robustbench_skel.learn.bayes_diagnostic
        rows = attacked.nonzero().squeeze(1)[:DIAGNOSTIC_CLIPS]
        if diagnose is not None and rows.numel():
            c = self.common
            generator = torch.Generator(device=c.device).manual_seed(c.seed)
            with torch.enable_grad():
                self.diagnostic = diagnose(self.handed, clips[rows].to(c.device), labels[rows].to(c.device),
                                           None if targets is None else targets[rows].to(c.device), generator)
        return crafted

    def _after_craft(self, crafted, clips):
        c = self.common
        return {
            "surrogate_clean_pred": predict(self.handed, clips, c.batch_size, c.device),
            "surrogate_adv_pred": predict(self.handed, crafted.adv, c.batch_size, c.device),
        }

    def extra_metrics(self, crafted, clips, labels, targets, attacked, success):
        clean, adv = self.content["surrogate_clean_pred"], self.content["surrogate_adv_pred"]
        eligible = attacked & clean.eq(labels)
        fooled = is_adversarial_pred(adv, labels, targets) & eligible
        metrics = {"surrogate_success_rate": proportion(int(fooled.sum()), int(eligible.sum()))}
        samples = {"surrogate_clean_pred": clean.tolist(), "surrogate_adv_pred": adv.tolist()}
        if self.common.reference_success:
            metric, samples["reference_fooled"] = self._reference_success(clips, labels, targets, attacked, success)
            metrics["reference_success_rate"] = metric
        if self.diagnostic is not None:
            metrics["bayesian_diagnostic"] = self.diagnostic
        rows = attacked.nonzero().squeeze(1)[:DIAGNOSTIC_CLIPS]
        if self.alignment is None and rows.numel():  # once per run: sanity() asks again
            c = self.common
            self.alignment = gradient_alignment(self.handed, c.white_box_model(), clips[rows].to(c.device),
                                                labels[rows].to(c.device),
                                                None if targets is None else targets[rows].to(c.device), c.batch_size)
        if self.alignment is not None:
            metrics["gradient_alignment"] = self.alignment
        return metrics, samples

    def _reference_success(self, clips, labels, targets, attacked, success) -> tuple[dict[str, Any], list]:
        """The TASAR reference's transfer success: over every clip it crafts (the test clips the surrogate
        classifies correctly), the victim misclassifying the crafted clip counts, whether or not the victim
        classified the clean clip correctly. Per sample: fooled or not, None outside that set."""
        c = self.common
        crafted_set = self.content["surrogate_clean_pred"].eq(labels)
        fooled = success.clone()  # on the attacked clips, the evaluator's verdict
        others = (~attacked).nonzero().squeeze(1)
        if others.numel():
            pred = predict(c.eval_model, self.content["adv"][others], c.batch_size, c.device)
            fooled[others] = is_adversarial_pred(pred, labels[others], None if targets is None else targets[others])
        metric = proportion(int((fooled & crafted_set).sum()), int(crafted_set.sum()))
        metric["definition"] = ("victim misclassification over every clip the reference crafts (the surrogate's "
                                "correctly classified clips), the victim's clean mistakes included")
        return metric, [bool(f) if s else None for f, s in zip(fooled.tolist(), crafted_set.tolist())]

    def sanity(self, attack, clips, labels, targets, attacked, success, subset_size):
        result = super().sanity(attack, clips, labels, targets, attacked, success, subset_size) or {"subset_size": 0, "checks": {}}
        metrics, _ = self.extra_metrics(None, clips, labels, targets, attacked, success)
        own = metrics["surrogate_success_rate"]["value"]
        n = int(attacked.sum())
        here = int((success & attacked).sum()) / n if n else float("nan")  # counts, not a float32 mean: exact ties
        # An attack that never fools its own surrogate is broken (e.g. NaN gradients), whatever the victim says.
        result["checks"]["fools_surrogate"] = {
            "passed": bool(own >= here and own > 0) if own == own and here == here else None, "success": own,
            "reference": here,
            "expect": "the attack fools its own surrogate(s) on some samples, and at least as often as it fools the victim",
        }
        if self.diagnostic is not None:
            result["checks"]["bayesian_term"] = degenerate_check(self.diagnostic)
        return result

    def describe(self):
        return {**super().describe(), "surrogates": self.handed.describe()}


class NoBox(_CachedCraft):
    """The attack gets an unlabelled pool and no labels: no model, no label, no query."""

    model = ThreatModel.NO_BOX

    def __init__(self, common: _Common, pool: UnlabelledPool) -> None:
        super().__init__(common)
        self.handed = pool

    def _labels_for_attack(self, labels):
        return None

    def _craft_spec(self, attack):
        return {**super()._craft_spec(attack), "pool": self.handed.describe()}

    def describe(self):
        return {**super().describe(), "pool": self.handed.describe()}


class DecisionBased(ThreatSetting):
    """The attack gets a label oracle per batch that counts every query; the record keeps the counts."""

    model = ThreatModel.DECISION_BASED

    def __init__(self, common: _Common, max_queries: int) -> None:
        self.common = common
        self.max_queries = int(max_queries)
        model, c = common.eval_model, common

        def classify(x: torch.Tensor) -> torch.Tensor:
            return predict(model, x, c.batch_size, c.device)

        self._classify = classify
        self.handed = self.oracle  # a factory: one fresh oracle (and fresh counts) per batch

    def oracle(self, num_samples: int, max_queries: int | None = None) -> LabelOracle:
        return LabelOracle(self._classify, num_samples, self.max_queries if max_queries is None else max_queries)

    def _craft(self, attack, clips, labels, targets, rows, max_queries, progress, checkpoint=None, label=None):
        c = self.common
        queries = torch.zeros(clips.shape[0], dtype=torch.long)

        def record(b: torch.Tensor, oracle: LabelOracle) -> dict[str, torch.Tensor]:
            return {"queries": oracle.counts}

        crafted = attack_rows(attack, lambda n: self.oracle(n, max_queries), clips, labels, targets, rows, c.batch_size,
                              c.device, c.seed, progress=(label or attack.name) if progress else None, after_batch=record,
                              checkpoint=checkpoint, amp=c.amp)
        counted = crafted.extra.pop("queries", None)
        if counted is not None:
            queries[rows] = counted[rows].long()
        crafted.extra["queries"] = queries
        return crafted

    def craft(self, attack, clips, labels, targets, attacked, progress):
        return self._craft(attack, clips, labels, targets, attacked.nonzero().squeeze(1), self.max_queries, progress,
                           self.common.checkpoint)

    def extra_metrics(self, crafted, clips, labels, targets, attacked, success):
        q = crafted.extra["queries"][attacked].float()
        metrics = {"queries": {"value": float(q.mean()) if q.numel() else float("nan"),
                               "median": float(q.median()) if q.numel() else float("nan"),
                               "max": float(q.max()) if q.numel() else float("nan"), "n": int(q.numel())}}
        if "perturbation_l2_rms_m" in crafted.extra:  # a minimum-norm attack: its median distance at the query budget
            d = crafted.extra["perturbation_l2_rms_m"][attacked].double()  # inf where no adversarial clip was found
            metrics["median_l2_rms_m"] = {"value": float(d.median()) if d.numel() else float("nan"), "n": int(d.numel())}
        return metrics, {}

    def sanity(self, attack, clips, labels, targets, attacked, success, subset_size):
        """``monotone_in_queries``: half the query budget does not succeed more often on the subset."""
        sub = attacked.nonzero().squeeze(1)[:subset_size]
        if subset_size <= 0 or sub.numel() == 0 or self.max_queries < 2:
            return None
        c = self.common
        x, y = clips[sub], labels[sub]
        t = None if targets is None else targets[sub]
        crafted = self._craft(attack, x, y, t, torch.arange(x.shape[0]), self.max_queries // 2, progress_enabled(),
                              label=f"sanity re-run: {attack.name} with half the queries")
        half = float(is_adversarial_pred(predict(c.eval_model, crafted.adv, c.batch_size, c.device), y, t).float().mean())
        full = float(success[sub].float().mean())
        return {"subset_size": int(sub.numel()), "checks": {"monotone_in_queries": {
            "passed": half <= full, "success": half, "reference": full, "queries": self.max_queries // 2,
            "expect": "success with half the query budget <= success with the full budget",
        }}}

    def describe(self):
        return {**super().describe(), "max_queries": self.max_queries}

