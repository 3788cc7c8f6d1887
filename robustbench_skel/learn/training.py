"""Training a victim from scratch on a dataset's train split (the shipped ``synth`` weights come from here).

Plain supervised training: SGD with Nesterov momentum (or AdamW where the victim's official recipe uses it, as
SkateFormer's does), a one-cycle schedule (10% warm-up, cosine decay), cross-entropy (label-smoothed where the
official recipe smooths), optional gradient-norm clipping.
The final epoch's weights are saved (the test split is only reported, never used to pick weights).
A victim whose method trains with extra, training-only heads (``Victim.auxiliary_heads``, e.g. FR-Head's
feature refinement) gets their losses added to the cross-entropy and their parameters optimised; the
saved weights are the victim's own state_dict, without the heads.

Long runs (the transformer victims take hours on a CPU) survive interruption: after every epoch the whole
training state (weights, training heads, optimiser, schedule, both random generators) goes to ``<out>.resume`` and
``--resume`` continues from it, giving the same weights as an uninterrupted run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import save_torch_atomic
from ..checkpoint import sha256_file
from ..errors import UserError
from ..datasets.load import load_dataset
from ..device import resolve_device
from ..progress_meter import progress as show_progress
from ..victim import AuxiliaryHeads, Victim, create_victim, model_card, predict

__all__ = ["TrainConfig", "TrainResult", "make_optimizer", "resume_path", "train_victim", "training_loss", "check_output",
           "check_data_names"]


# The recipe of the shipped synth weights unless a victim's card names its own ("train_recipe"), and a
# dataset's own where the card has one ("train_recipes": {"ntu60-xsub": {...}}: other data may need more epochs).
DEFAULT_RECIPE = {"epochs": 20, "batch_size": 32, "lr": 0.05, "weight_decay": 5e-4, "bf16": True,
                  "optimizer": "sgd", "grad_clip": 0.0, "label_smoothing": 0.0}
OPTIMIZERS = ("sgd", "adamw")


@dataclass
class TrainConfig:
    """Training settings; ``None`` means: from the victim card's recipe for this dataset (``train_recipes``),
    else its ``train_recipe``, else ``DEFAULT_RECIPE``."""

    victim: str = "stgcn"
    dataset: str = "synth"
    data_path: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    half: bool = False
    bf16: bool | None = None
    resume: bool = False
    optimizer: str | None = None  # "sgd" (Nesterov) or "adamw"
    grad_clip: float | None = None  # max gradient norm; 0 = no clipping
    label_smoothing: float | None = None

    def resolved(self) -> "TrainConfig":
        card = model_card(self.victim)
        recipe = {**DEFAULT_RECIPE, **card.get("train_recipe", {}), **card.get("train_recipes", {}).get(self.dataset, {})}
        values = {k: (getattr(self, k) if getattr(self, k) is not None else recipe[k]) for k in DEFAULT_RECIPE}
        return replace(self, **values)


@dataclass
class TrainResult:
    path: Path
    sha256: str
    test_accuracy: float
    train_accuracy: float
    seconds: float
    config: TrainConfig


# What must match for a resume state to continue this run (the rest, e.g. the device, may change).
_RESUME_KEYS = ("victim", "dataset", "data_path", "epochs", "batch_size", "lr", "weight_decay", "seed", "bf16",
                "optimizer", "grad_clip", "label_smoothing")
_RESUME_FORMAT = 1


def resume_path(out: Path) -> Path:
    """Where the per-epoch training state of a run writing ``out`` lives."""
    return out.with_name(out.name + ".resume")


def _recipe_of(config: TrainConfig) -> dict:
    return {k: getattr(config, k) for k in _RESUME_KEYS}


def load_resume_state(path: Path, recipe: dict, kind: str | None = None, defaults: dict | None = None) -> dict | None:
    """The resume state at ``path`` if it continues a run of ``recipe`` (and ``kind``), ``None`` if absent.

    A state of another format, kind or recipe is refused with one line rather than silently mixed in. ``defaults``:
    the values of recipe keys added after a state was written (an older state lacks them and ran with these).
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read the resume state {path} ({type(exc).__name__}); delete it to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != _RESUME_FORMAT or state.get("kind") != kind:
        raise UserError(f"{path} is not a {kind + ' ' if kind else ''}resume state of this version; delete it to start afresh")
    saved = {**(defaults or {}), **state["recipe"]}
    differ = [f"{k} {saved.get(k)!r} vs {v!r}" for k, v in recipe.items() if saved.get(k) != v]
    if differ:
        raise UserError(f"{path} belongs to a different run ({'; '.join(differ)}); "
                        "use the same settings, or delete it to start afresh")
    return state


def _load_resume_state(path: Path, config: TrainConfig) -> dict | None:
    return load_resume_state(path, _recipe_of(config), defaults=DEFAULT_RECIPE)


def default_output(victim: str, dataset: str) -> Path:
    from ..datasets.synthetic import cache_dir

    return cache_dir() / "weights" / f"{victim}-{dataset}.pt"


def storage_state(state: dict[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    """The state_dict as saved: on the CPU, floating tensors in float16 when ``half`` is set.

    A tensor with a value beyond float16's range stays float32: rounding it would store ``inf``. This
    happens to BatchNorm running variances of networks without a softmax (STTFormer's reach about 1e6 on synth),
    and an ``inf`` variance silently zeroes that channel at test time.
    """
    limit = torch.finfo(torch.float16).max

    def stored(v: torch.Tensor) -> torch.Tensor:
        if half and v.is_floating_point() and not (v.numel() and bool(v.abs().max() > limit)):
            return v.half().cpu()
        return v.cpu()

    return {k: stored(v) for k, v in state.items()}


def check_output(path: Path, flag: str = "--out") -> None:
    """Before training: the weights file and its per-epoch resume state can be written (nothing is created)."""
    from ..preflight import check_writable_file

    check_writable_file(path, flag)
    check_writable_file(resume_path(path), f"{flag}'s resume state")


def check_data_names(victim: str, dataset: str, data_path: str | None) -> None:
    """Unknown victim or dataset names, or a missing data file, refused before anything is loaded."""
    from ..registry import DATASETS, VICTIMS

    VICTIMS.get(victim)
    DATASETS.get(dataset)
    if data_path is not None and not Path(data_path).exists():
        raise UserError(f"--data-path {str(data_path)!r} does not exist")


def training_loss(
    model: Victim, heads: AuxiliaryHeads | None, x: torch.Tensor, y: torch.Tensor, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One training pass: logits, the loss to minimise (cross-entropy plus the heads' losses) and those losses."""
    if heads is None:
        logits, extra = model(x), {}
    else:
        logits, extra = heads(model, x, y)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
    for value in extra.values():
        loss = loss + value.float()
    return logits, loss, extra


def _heads_state(heads: AuxiliaryHeads | None) -> dict | None:
    """The heads' state for a resume, with the non-persistent buffers (e.g. FR-Head's class prototypes)."""
    if heads is None:
        return None
    state = heads.state_dict()
    return {"state": state, "buffers": {k: v for k, v in heads.named_buffers() if k not in state}}


def _restore_heads(heads: AuxiliaryHeads | None, saved: dict | None, path: Path) -> None:
    if heads is None:
        return
    if saved is None:
        raise UserError(f"{path} was written without this victim's training heads; delete it to start afresh")
    heads.load_state_dict(saved["state"])
    for name, value in saved["buffers"].items():
        heads.get_buffer(name).copy_(value)


def make_optimizer(config: TrainConfig, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The recipe's optimiser: SGD with Nesterov momentum 0.9, or AdamW (decoupled weight decay on every parameter;
    SkateFormer's official recipe: AdamW, weight decay 0.1)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(parameters, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)


def train_victim(config: TrainConfig, progress: bool = True) -> TrainResult:
    check_data_names(config.victim, config.dataset, config.data_path)
    config = config.resolved()
    if config.epochs < 1 or config.batch_size < 1 or not config.lr > 0:
        raise UserError("--epochs and --batch-size must be at least 1 and --lr positive")
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"optimizer {config.optimizer!r} is not one of {', '.join(OPTIMIZERS)} (--optimizer, or the card's recipe)")
    if config.grad_clip < 0 or not 0 <= config.label_smoothing < 1:
        raise UserError("the recipe's grad_clip must be >= 0 (0: off) and its label_smoothing in [0, 1)")
    device = resolve_device(config.device)
    check_output(Path(config.out) if config.out else default_output(config.victim, config.dataset))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train = load_dataset(config.dataset, "train", config.data_path)
    test = load_dataset(config.dataset, "test", config.data_path)
    model = create_victim(config.victim, train.num_classes, train.layout).to(device)
    heads = model.auxiliary_heads()
    parameters = list(model.parameters())
    if heads is not None:
        heads.to(device)
        parameters += list(heads.parameters())
    x_train, y_train = train.tensors()
    x_test, y_test = test.tensors()
    optimizer = make_optimizer(config, parameters)
    steps_per_epoch = int(np.ceil(len(train) / config.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1, anneal_strategy="cos"
    )
    path = Path(config.out) if config.out else default_output(config.victim, config.dataset)
    checkpoint = resume_path(path)
    first_epoch, train_acc, seconds_before = 0, 0.0, 0.0
    saved = _load_resume_state(checkpoint, config) if config.resume else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        _restore_heads(heads, saved.get("heads"), checkpoint)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"])
        if device.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        first_epoch, train_acc, seconds_before = saved["epoch"], saved["train_accuracy"], saved["seconds"]
    started = time.perf_counter() - seconds_before
    bar = show_progress(total=config.epochs * steps_per_epoch, initial=first_epoch * steps_per_epoch,
                        desc=f"train {config.victim} on {config.dataset}", unit="batch", enabled=progress)
    if first_epoch:
        bar.write(f"resuming after epoch {first_epoch}/{config.epochs} from {checkpoint}")
    for epoch in range(first_epoch, config.epochs):
        model.train()
        if heads is not None:
            heads.train()
        order = rng.permutation(len(train))
        correct = 0
        for start in range(0, len(order), config.batch_size):
            batch = torch.from_numpy(order[start : start + config.batch_size])
            x, y = x_train[batch].to(device), y_train[batch].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(config.bf16)):
                logits, loss, extra = training_loss(model, heads, x, y, config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
            optimizer.step()
            scheduler.step()
            correct += int((logits.argmax(1) == y).sum())
            bar.update(1)
            shown = {"aux": f"{sum(v.item() for v in extra.values()):.3f}"} if extra else {}
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", **shown)
        train_acc = correct / len(train)
        bar.write(f"epoch {epoch + 1}/{config.epochs}: train accuracy {100 * train_acc:.1f}%")
        save_torch_atomic({
            "format": _RESUME_FORMAT, "recipe": _recipe_of(config), "epoch": epoch + 1, "train_accuracy": train_acc,
            "seconds": time.perf_counter() - started, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "heads": _heads_state(heads), "scheduler": scheduler.state_dict(), "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        }, checkpoint)
    bar.close()
    model.eval()
    state = storage_state(model.state_dict(), config.half)  # the victim alone: training heads are not saved
    model.load_state_dict(state)  # evaluate exactly the weights that are saved (fp16-rounded with --half)
    test_acc = float((predict(model, x_test, 64, device) == y_test).float().mean())
    save_torch_atomic(state, path)
    checkpoint.unlink(missing_ok=True)
    return TrainResult(path=path, sha256=sha256_file(path), test_accuracy=test_acc, train_accuracy=train_acc,
                       seconds=time.perf_counter() - started, config=config)
