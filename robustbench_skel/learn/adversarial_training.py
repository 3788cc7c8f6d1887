"""The ``defend`` command: train a training-time defense's weights, resumable per epoch.

Fine-tuning starts from the victim's shipped weights (or ``--checkpoint``): far cheaper than training
from scratch, and standard practice for adversarial fine-tuning. BatchNorm statistics stay those of the
victim (the model runs in eval mode while its weights move): the adversarial clips' statistics then
cannot drift the normalisation, and eval mode lets victims compute an empty person slot once, which
halves the cost on single-actor clips. Without BatchNorm's re-normalisation the adversarial loss's
gradients are large (norms of 40 per layer on ST-GCN), so they are clipped to a total norm of
``grad_clip`` (default 1). The loop mirrors :mod:`robustbench_skel.learn.training`: SGD with
Nesterov momentum (or Adam for small added heads) on a cosine schedule, the final epoch's weights
saved atomically, and after every epoch the whole state (weights, optimiser, schedule, generators and
the defense's own state) in ``<out>.resume`` for ``--resume``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import save_torch_atomic
from ..checkpoint import sha256_file
from .defended import TrainingDefense
from ..defense import DefenseContext
from ..errors import UserError
from ..registry import DEFENSES
from ..datasets.load import load_dataset
from ..device import resolve_device
from ..preflight import check_input_file
from ..progress_meter import progress as show_progress
from .training import (_RESUME_FORMAT, check_data_names, check_output, load_resume_state, resume_path,
                       storage_state)
from ..victim import load_victim, predict

__all__ = ["DefendConfig", "DefendResult", "build_training_defense", "train_defense"]

_RESUME_KEYS = ("victim", "defense", "dataset", "data_path", "checkpoint", "epochs", "batch_size", "lr", "seed", "options")


@dataclass
class DefendConfig:
    """``defend`` settings; ``None`` means the defense's default (its class attributes)."""

    victim: str = "stgcn"
    defense: str = "trades"
    dataset: str = "synth"
    data_path: str | None = None
    checkpoint: str | None = None  # the victim's starting weights (default: shipped for the dataset)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    half: bool = False
    resume: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # the defense's hyperparameters


@dataclass
class DefendResult:
    path: Path
    sha256: str
    test_accuracy: float
    train_accuracy: float
    seconds: float
    config: DefendConfig
    defense: TrainingDefense


def build_training_defense(name: str, options: dict[str, Any]) -> TrainingDefense:
    cls = DEFENSES.get(name)
    if getattr(cls, "kind", None) != "training":
        raise UserError(f"defense {name!r} is applied at inference time; `defend` trains only training-time defenses")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:  # an unknown option, or a text value where a number belongs
        raise UserError(f"defense {name!r}: bad --defense-opt ({exc})") from None


def default_output(victim: str, defense: str, dataset: str) -> Path:
    from ..datasets.synthetic import cache_dir

    return cache_dir() / "weights" / f"{victim}-{defense}-{dataset}.pt"


def _recipe(config: DefendConfig) -> dict:
    return {k: getattr(config, k) for k in _RESUME_KEYS}


def _load_resume(path: Path, config: DefendConfig) -> dict | None:
    return load_resume_state(path, _recipe(config), kind="defend")


def train_defense(config: DefendConfig, progress: bool = True) -> DefendResult:
    """Train ``config.defense`` on ``config.victim`` and save the defended weights; see the module docstring."""
    check_data_names(config.victim, config.dataset, config.data_path)
    defense = build_training_defense(config.defense, config.options)
    epochs = config.epochs or defense.default_epochs
    batch_size = config.batch_size or defense.default_batch_size
    lr = config.lr or defense.default_lr
    config = DefendConfig(**{**config.__dict__, "epochs": epochs, "batch_size": batch_size, "lr": lr})
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise UserError("--epochs and --batch-size must be at least 1 and --lr positive")
    device = resolve_device(config.device)
    if config.checkpoint is not None:
        check_input_file(config.checkpoint, "--checkpoint")
    check_output(Path(config.out) if config.out else default_output(config.victim, config.defense, config.dataset))
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    train = load_dataset(config.dataset, "train", config.data_path)
    test = load_dataset(config.dataset, "test", config.data_path)
    loaded = load_victim(config.victim, train.num_classes, train.layout, train.name, config.checkpoint, device)
    context = DefenseContext(victim=config.victim, dataset=train.name, layout=train.layout,
                             num_classes=loaded.model.num_classes, fps=getattr(train, "fps", 30.0), device=device,
                             victim_checkpoint_sha256=loaded.checkpoint_sha256)
    model = defense.build(loaded.model, context).to(device)
    model.eval()  # frozen BatchNorm statistics, see the module docstring
    part = defense.trainable(model)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in part.parameters():
        p.requires_grad_(True)
    params = [p for p in part.parameters() if p.requires_grad]
    if defense.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr)
    else:
        optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x_train, y_train = train.tensors()
    x_test, y_test = test.tensors()
    steps_per_epoch = int(np.ceil(len(train) / batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    path = Path(config.out) if config.out else default_output(config.victim, config.defense, train.name)
    checkpoint = resume_path(path)
    first_epoch, train_acc, seconds_before = 0, 0.0, 0.0
    saved = _load_resume(checkpoint, config) if config.resume else None
    if saved is not None:
        part.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        rng.bit_generator.state = saved["numpy_rng"]
        generator.set_state(saved["generator"].to(generator.get_state().device))
        defense.load_training_state(saved["defense_state"])
        first_epoch, train_acc, seconds_before = saved["epoch"], saved["train_accuracy"], saved["seconds"]
    started = time.perf_counter() - seconds_before
    bar = show_progress(total=epochs * steps_per_epoch, initial=first_epoch * steps_per_epoch,
                        desc=f"{config.defense} on {config.victim}", unit="batch", enabled=progress)
    if first_epoch:
        bar.write(f"resuming after epoch {first_epoch}/{epochs} from {checkpoint}")
    for epoch in range(first_epoch, epochs):
        order = rng.permutation(len(train))
        correct = 0
        for start in range(0, len(order), batch_size):
            batch = torch.from_numpy(order[start : start + batch_size])
            x, y = x_train[batch].to(device), y_train[batch].to(device)
            loss, logits = defense.training_loss(model, x, y, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if defense.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, defense.grad_clip)
            optimizer.step()
            scheduler.step()
            correct += int((logits.detach().argmax(1) == y).sum())
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        train_acc = correct / len(train)
        bar.write(f"epoch {epoch + 1}/{epochs}: clean train accuracy {100 * train_acc:.1f}%")
        save_torch_atomic({
            "format": _RESUME_FORMAT, "kind": "defend", "recipe": _recipe(config), "epoch": epoch + 1,
            "train_accuracy": train_acc, "seconds": time.perf_counter() - started, "model": part.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "numpy_rng": rng.bit_generator.state, "generator": generator.get_state(),
            "defense_state": defense.training_state(),
        }, checkpoint)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(False)
    state = storage_state(part.state_dict(), config.half)
    defense.load_weights(model, state, source="the trained weights")  # evaluate exactly what is saved
    test_acc = float((predict(model, x_test, 64, device) == y_test).float().mean())
    save_torch_atomic(state, path)
    checkpoint.unlink(missing_ok=True)
    return DefendResult(path=path, sha256=sha256_file(path), test_accuracy=test_acc, train_accuracy=train_acc,
                        seconds=time.perf_counter() - started, config=config, defense=defense)
