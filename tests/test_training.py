"""Training: an interrupted run resumed with --resume gives the weights of an uninterrupted one."""

from __future__ import annotations

import pytest
import torch

from robustbench_skel.learn import training
from robustbench_skel.commands.cli import main
from robustbench_skel.learn.training import TrainConfig, resume_path, train_victim


def _config(out, **overrides) -> TrainConfig:
    settings = dict(victim="tiny-test-victim", epochs=3, lr=0.05, bf16=False, out=str(out), device="cpu", resume=True)
    return TrainConfig(**{**settings, **overrides})


def _interrupt_after_epochs(monkeypatch, epochs: int) -> None:
    """Make the run die (as a killed session would) right after the resume state of ``epochs`` is written."""
    real_save, saves = training.save_torch_atomic, []

    def save(state, path):
        real_save(state, path)
        saves.append(path)
        if len(saves) == epochs:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_torch_atomic", save)


def _train_until_interrupted(monkeypatch, config: TrainConfig, epochs_done: int) -> None:
    """Start ``config`` and kill it once the resume state of ``epochs_done`` epochs is written."""
    with monkeypatch.context() as mp:
        _interrupt_after_epochs(mp, epochs_done)
        with pytest.raises(KeyboardInterrupt):
            train_victim(config, progress=False)


def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch):
    straight = train_victim(_config(tmp_path / "straight.pt"), progress=False)
    assert not resume_path(straight.path).exists(), "a finished run leaves no resume state behind"

    out = tmp_path / "resumed.pt"
    _train_until_interrupted(monkeypatch, _config(out), epochs_done=1)
    assert not out.exists() and resume_path(out).is_file()
    assert torch.load(resume_path(out), weights_only=True)["epoch"] == 1

    resumed = train_victim(_config(out), progress=False)
    first = torch.load(straight.path, weights_only=True)
    second = torch.load(resumed.path, weights_only=True)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert resumed.sha256 == straight.sha256
    assert not resume_path(out).exists()


def test_without_resume_a_stale_state_is_ignored(tmp_path, monkeypatch):
    out = tmp_path / "w.pt"
    _train_until_interrupted(monkeypatch, _config(out, epochs=2), epochs_done=1)
    fresh = train_victim(_config(out, epochs=2, resume=False), progress=False)
    reference = train_victim(_config(tmp_path / "ref.pt", epochs=2, resume=False), progress=False)
    assert fresh.sha256 == reference.sha256


def test_resume_with_other_settings_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "w.pt"
    _train_until_interrupted(monkeypatch, _config(out), epochs_done=1)
    code = main(["train", "--victim", "tiny-test-victim", "--epochs", "4", "--lr", "0.05", "--no-bf16",
                 "--device", "cpu", "--out", str(out), "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "epochs 3 vs 4" in err and "delete it" in err
    assert not out.exists() and resume_path(out).is_file(), "a refused resume must not touch the state"


def test_unreadable_resume_state_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "w.pt"
    resume_path(out).write_bytes(b"not a torch file")
    code = main(["train", "--victim", "tiny-test-victim", "--epochs", "1", "--device", "cpu", "--out", str(out), "--resume"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "resume state" in err and "Traceback" not in err
    assert not out.exists()


def test_half_storage_keeps_tensors_beyond_float16_range_in_float32():
    """A BatchNorm variance of 1e5 stored as float16 would be inf and zero its channel at test time."""
    bn = torch.nn.BatchNorm1d(3)
    bn.running_var.copy_(torch.tensor([1.0, 7e4, 2.0]))
    bn.running_mean.copy_(torch.tensor([0.5, -3.0, 60000.0]))
    stored = training.storage_state(bn.state_dict(), half=True)
    assert stored["running_var"].dtype == torch.float32 and torch.equal(stored["running_var"], bn.running_var)
    assert stored["running_mean"].dtype == torch.float16 and stored["weight"].dtype == torch.float16
    assert stored["num_batches_tracked"].dtype == torch.int64
    assert all(torch.isfinite(v).all() for v in stored.values())
    assert all(v.dtype != torch.float16 for v in training.storage_state(bn.state_dict(), half=False).values())


def test_a_dataset_recipe_in_the_card_overrides_the_general_one(monkeypatch):
    card = {"train_recipe": {"epochs": 20, "lr": 0.05}, "train_recipes": {"ntu60-xsub": {"epochs": 60}}}
    monkeypatch.setattr(training, "model_card", lambda name: card)
    assert TrainConfig(victim="stgcn", dataset="ntu60-xsub").resolved().epochs == 60
    assert TrainConfig(victim="stgcn", dataset="ntu60-xsub").resolved().lr == 0.05  # the rest from train_recipe
    assert TrainConfig(victim="stgcn", dataset="synth").resolved().epochs == 20
    assert TrainConfig(victim="stgcn", dataset="ntu60-xsub", epochs=5).resolved().epochs == 5  # a flag wins


def test_the_shipped_cards_recipes_name_known_fields():
    from robustbench_skel.registry import VICTIMS
    from robustbench_skel.victim import model_card
    import robustbench_skel.victims  # noqa: F401

    for name in VICTIMS.names():
        card = model_card(name)
        for dataset, recipe in card.get("train_recipes", {}).items():
            assert set(recipe) <= set(training.DEFAULT_RECIPE), (name, dataset, recipe)


def test_the_recipe_picks_the_optimiser_and_adamw_trains(tmp_path, monkeypatch):
    card = {"train_recipe": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.1, "grad_clip": 1.0,
                             "label_smoothing": 0.1}}
    monkeypatch.setattr(training, "model_card", lambda name: card)
    config = TrainConfig(victim="stgcn").resolved()
    assert (config.optimizer, config.grad_clip, config.label_smoothing) == ("adamw", 1.0, 0.1)
    weights = [torch.nn.Parameter(torch.ones(3))]
    optimizer = training.make_optimizer(config, weights)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["weight_decay"] == 0.1
    sgd = training.make_optimizer(TrainConfig(victim="stgcn", optimizer="sgd").resolved(), weights)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]


def test_adamw_clipping_and_smoothing_train_the_tiny_victim_and_resume_exactly(tmp_path, monkeypatch):
    extra = dict(optimizer="adamw", lr=1e-2, weight_decay=0.1, grad_clip=0.5, label_smoothing=0.1)
    straight = train_victim(_config(tmp_path / "straight.pt", epochs=2, **extra), progress=False)
    plain = train_victim(_config(tmp_path / "plain.pt", epochs=2), progress=False)
    assert straight.sha256 != plain.sha256  # the settings reach the loop
    out = tmp_path / "resumed.pt"
    _train_until_interrupted(monkeypatch, _config(out, epochs=2, **extra), epochs_done=1)
    with pytest.raises(training.UserError, match="optimizer 'adamw' vs 'sgd'"):
        train_victim(_config(out, epochs=2, **{**extra, "optimizer": "sgd"}), progress=False)
    assert train_victim(_config(out, epochs=2, **extra), progress=False).sha256 == straight.sha256


def test_label_smoothing_and_clipping_do_what_they_say():
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    _, plain, _ = training.training_loss(model, None, x, y)
    _, smooth, _ = training.training_loss(model, None, x, y, label_smoothing=0.2)
    logp = model(x).log_softmax(1)
    expected = -(0.8 * logp.gather(1, y[:, None]).squeeze(1) + 0.2 * logp.mean(1)).mean()
    assert torch.allclose(smooth, expected, atol=1e-6) and not torch.allclose(smooth, plain)


def test_a_resume_state_written_before_the_optimiser_setting_still_resumes(tmp_path, monkeypatch):
    out = tmp_path / "w.pt"
    _train_until_interrupted(monkeypatch, _config(out, epochs=2), epochs_done=1)
    state = torch.load(resume_path(out), weights_only=True)
    for key in ("optimizer", "grad_clip", "label_smoothing"):
        del state["recipe"][key]  # as an older version wrote it
    torch.save(state, resume_path(out))
    reference = train_victim(_config(tmp_path / "ref.pt", epochs=2), progress=False)
    assert train_victim(_config(out, epochs=2), progress=False).sha256 == reference.sha256
    with pytest.raises(training.UserError, match="not one of sgd, adamw"):
        train_victim(_config(tmp_path / "x.pt", optimizer="adam"), progress=False)
