"""The threat models in the runner: what each attack is handed, cached transfer crafting, early stop, EOT."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
from torch import nn

from robustbench_skel.run import sanity, threats
from robustbench_skel.artefacts import ArtefactStore, artefact_key
from robustbench_skel.attack import Attack, ThreatModel, parse_early_stop
from robustbench_skel.errors import UserError
from robustbench_skel.handed import LabelOracle, QueryBudgetExceeded, SurrogateEnsemble, SurrogateInfo, UnlabelledPool
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.runner import RunConfig, run_benchmark

from conftest import make_clips, reachable


def _config(checkpoint, **changes) -> RunConfig:
    base = dict(victim="tiny-test-victim", checkpoint=str(checkpoint), attack="ifgsm", eps=0.02, steps=3, n_samples=12,
                batch_size=5, sanity_samples=0, device="cpu")
    return RunConfig(**{**base, **changes})


class _Spy:
    """Wraps an attack class's ``run`` to keep what the runner handed over."""

    def __init__(self, monkeypatch, name: str) -> None:
        self.handed: list[Any] = []
        self.labels: list[Any] = []
        cls = ATTACKS.get(name)
        original = cls.run
        spy = self

        def run(self_, model, x, labels, targets, mask, generator):
            spy.handed.append(model)
            spy.labels.append(labels)
            return original(self_, model, x, labels, targets, mask, generator)

        monkeypatch.setattr(cls, "run", run)


def test_transfer_attack_is_handed_the_surrogates_and_never_the_victim(monkeypatch, tmp_path, trained_tiny_checkpoint):
    spy = _Spy(monkeypatch, "ifgsm")
    victims: list[nn.Module] = []
    from robustbench_skel.run import runner

    original_load = runner.load_victim

    def load_victim(*args, **kwargs):
        loaded = original_load(*args, **kwargs)
        victims.append(loaded.model)
        return loaded

    monkeypatch.setattr(runner, "load_victim", load_victim)
    config = _config(trained_tiny_checkpoint, surrogates=["tiny-test-victim"], surrogate_checkpoints=[str(trained_tiny_checkpoint)],
                     results_dir=str(tmp_path))
    record = run_benchmark(config, write=False).record
    victim = victims[0]  # loaded first: the victim; then the surrogate, a separate copy
    assert spy.handed and all(isinstance(h, SurrogateEnsemble) for h in spy.handed)
    assert not any(reachable(h, victim) for h in spy.handed)
    assert record["threat"]["model"] == "transfer" and record["attack"]["threat_model"] == "transfer"
    assert record["threat"]["early_stop"] == "none" and record["attack"]["early_stop"] == "none"
    assert record["threat"]["surrogates"][0]["checkpoint_sha256"] == record["victim"]["checkpoint_sha256"]
    assert record["metrics"]["surrogate_success_rate"]["n"] >= 1
    assert record["threat"]["crafted"]["sha256"] and record["threat"]["crafted"]["kind"] == "adversarial"


def test_victim_as_its_own_surrogate_equals_the_white_box_run(tmp_path, trained_tiny_checkpoint):
    # The same step for both: transfer attacks share one step rule (eps/T), white-box I-FGSM steps 2.5 eps/T.
    step = dict(step_size=0.02 / 3)
    white = run_benchmark(_config(trained_tiny_checkpoint, results_dir=str(tmp_path), **step), write=False).record
    transfer = run_benchmark(_config(trained_tiny_checkpoint, results_dir=str(tmp_path), surrogates=["tiny-test-victim"],
                                     surrogate_checkpoints=[str(trained_tiny_checkpoint)], early_stop="adversarial", **step),
                             write=False).record
    for key in ("success", "adv_pred", "clean_pred"):
        assert transfer["samples"][key] == white["samples"][key]
    assert transfer["metrics"]["attack_success_rate"] == white["metrics"]["attack_success_rate"]
    assert transfer["metrics"]["mean_joint_displacement_cm"]["value"] == pytest.approx(
        white["metrics"]["mean_joint_displacement_cm"]["value"], rel=1e-5, nan_ok=True)
    # the surrogate is the victim: its own success is the transfer success
    assert transfer["metrics"]["surrogate_success_rate"]["count"] == transfer["metrics"]["attack_success_rate"]["count"]


def test_transfer_crafting_is_cached_and_shared_across_victims(monkeypatch, tmp_path, trained_tiny_checkpoint):
    calls = []
    original = threats.attack_rows

    def counting(attack, *args, **kwargs):
        calls.append(attack.name)
        return original(attack, *args, **kwargs)

    monkeypatch.setattr(threats, "attack_rows", counting)  # the threat settings craft
    monkeypatch.setattr(sanity, "attack_rows", counting)  # the sanity checks re-run (the white-box reference)
    config = _config(trained_tiny_checkpoint, results_dir=str(tmp_path), surrogates=["tiny-test-victim"],
                     surrogate_checkpoints=[str(trained_tiny_checkpoint)], sanity_samples=3)
    first = run_benchmark(config, write=False).record
    crafted_once = len(calls)
    second = run_benchmark(dataclasses.replace(config, seed=0), write=False).record
    # the second run re-crafts nothing: neither the adversarial clips nor the white-box reference of the sanity check
    assert len(calls) == crafted_once
    assert first["threat"]["crafted"] == second["threat"]["crafted"]
    assert first["samples"]["adv_pred"] == second["samples"]["adv_pred"]
    checks = second["sanity"]["checks"]
    assert set(checks) == {"not_above_white_box", "fools_surrogate"}
    assert checks["not_above_white_box"]["reference_attack"] == "ifgsm"


def test_crafting_covers_every_evaluated_sample_whatever_the_victim_gets_right(tmp_path, trained_tiny_checkpoint):
    store = ArtefactStore()
    record = run_benchmark(_config(trained_tiny_checkpoint, results_dir=str(tmp_path), surrogates=["tiny-test-victim"],
                                   surrogate_checkpoints=[str(trained_tiny_checkpoint)]), write=False).record
    content = torch.load(store.root / record["threat"]["crafted"]["file"], weights_only=True)
    assert content["adv"].shape[0] == record["dataset"]["num_evaluated"]
    # clips the victim got wrong are evaluated on the clean clip (they are not in the attack set)
    wrong = [i for i, a in enumerate(record["samples"]["attacked"]) if not a]
    assert all(record["samples"]["adv_pred"][i] == record["samples"]["clean_pred"][i] for i in wrong)


@ATTACKS.register("test-transfer-only")
class _TransferOnly(Attack):
    description = "test-only transfer attack that returns the clean clip"
    threat_model = ThreatModel.TRANSFER

    def run(self, model, x, labels, targets, mask, generator):
        return x


@ATTACKS.register("test-nobox-noop")
class _NoBoxNoop(Attack):
    description = "test-only no-box attack that returns the clean clip"
    threat_model = ThreatModel.NO_BOX

    def run(self, model, x, labels, targets, mask, generator):
        assert labels is None
        return x


def test_transfer_only_attack_needs_a_surrogate_and_no_box_refuses_one(tmp_path, trained_tiny_checkpoint):
    with pytest.raises(UserError, match="--surrogate"):
        run_benchmark(_config(trained_tiny_checkpoint, attack="test-transfer-only", steps=None, results_dir=str(tmp_path)),
                      write=False)
    with pytest.raises(UserError, match="drop --surrogate"):
        run_benchmark(_config(trained_tiny_checkpoint, attack="test-nobox-noop", steps=None, surrogates=["stgcn"],
                              results_dir=str(tmp_path)), write=False)


def test_no_box_attack_gets_a_pool_and_no_labels(monkeypatch, tmp_path, trained_tiny_checkpoint):
    spy = _Spy(monkeypatch, "test-nobox-noop")
    record = run_benchmark(_config(trained_tiny_checkpoint, attack="test-nobox-noop", steps=None, results_dir=str(tmp_path),
                                   nobox_pool="test"), write=False).record
    assert all(labels is None for labels in spy.labels)
    assert spy.handed and all(isinstance(h, UnlabelledPool) for h in spy.handed)
    assert not any(isinstance(getattr(h, f.name), nn.Module) for h in spy.handed for f in dataclasses.fields(h))
    assert record["threat"]["model"] == "no-box" and record["threat"]["pool"]["split"] == "test"
    assert record["metrics"]["attack_success_rate"]["count"] == 0


def test_label_oracle_counts_every_query_and_keeps_its_budget():
    model = nn.Linear(4, 3)
    oracle = LabelOracle(lambda x: model(x).argmax(1), num_samples=3, max_queries=2)
    oracle.labels(torch.randn(3, 4))
    oracle.labels(torch.randn(1, 4), rows=torch.tensor([0]))
    assert oracle.counts.tolist() == [2, 1, 1] and oracle.remaining().tolist() == [0, 1, 1]
    with pytest.raises(QueryBudgetExceeded):
        oracle.labels(torch.randn(1, 4), rows=torch.tensor([0]))
    assert oracle.counts.tolist() == [2, 1, 1]  # a refused query is not charged
    assert not reachable(oracle, model)


def test_early_stop_rules(tiny_victim):
    assert parse_early_stop("margin=2") == "margin=2" and parse_early_stop("none") == "none"
    for bad in ("sometimes", "margin=-1", "margin=x"):
        with pytest.raises(UserError, match="--early-stop"):
            parse_early_stop(bad)
    x = make_clips(n=6, t=10, seed=3)
    y = tiny_victim(x).argmax(1)
    attack = ATTACKS.get("ifgsm")(eps=0.5, steps=6)
    attack(tiny_victim, x, y)
    stopped = attack.last_iterations.clone()
    attack.early_stop = "none"
    attack(tiny_victim, x, y)
    assert stopped.min() < 6 and bool((attack.last_iterations == 6).all())


class _NoisyVictim(nn.Module):
    """A randomized model: the tiny victim on a noisy copy of its input, noise from the global generator."""

    def __init__(self, victim: nn.Module, sigma: float) -> None:
        super().__init__()
        self.victim, self.sigma = victim, sigma

    def forward(self, x):
        return self.victim(x + self.sigma * torch.randn_like(x) * x.ne(0))


def test_eot_with_one_draw_is_the_plain_attack_and_averages_otherwise(tiny_victim):
    x = make_clips(n=4, t=10, seed=5)
    y = tiny_victim(x).argmax(1)
    plain = ATTACKS.get("pgd")(eps=0.05, steps=3)(tiny_victim, x, y)
    one = ATTACKS.get("pgd")(eps=0.05, steps=3)
    one.eot_samples = 1
    assert torch.equal(one(tiny_victim, x, y), plain)
    assert "eot_samples" not in one.describe()
    noisy = _NoisyVictim(tiny_victim, 0.05)
    attack = ATTACKS.get("ifgsm")(eps=0.05, steps=1)
    attack.eot_samples = 4
    torch.manual_seed(1)
    grad, _, _ = attack._averaged_gradient(noisy, x, torch.zeros_like(x), torch.ones_like(x[:, :1, :, :1]), y, None, {})
    torch.manual_seed(1)
    grads = [attack.gradient(noisy, x, torch.zeros_like(x), torch.ones_like(x[:, :1, :, :1]), y, None, {})[0] for _ in range(4)]
    assert torch.allclose(grad, torch.stack(grads).mean(0), atol=1e-7)
    assert attack.describe()["eot_samples"] == 4


class _Counting(nn.Module):
    """Counts the forward passes of a (deterministic) victim."""

    def __init__(self, victim: nn.Module) -> None:
        super().__init__()
        self.victim, self.calls = victim, 0

    def forward(self, x):
        self.calls += 1
        return self.victim(x)


def test_apgd_averages_its_loss_and_gradient_over_eot_draws(tiny_victim):
    x = make_clips(n=4, t=10, seed=5)
    y = tiny_victim(x).argmax(1)
    noisy = _NoisyVictim(tiny_victim, 0.05)
    apgd = ATTACKS.get("apgd-ce")(eps=0.05, steps=4)
    apgd.eot_samples = 3
    torch.manual_seed(2)
    logits, loss, grad = apgd._evaluate(noisy, x, y, None, need_grad=True)
    torch.manual_seed(2)
    draws = [apgd.eot_evaluate.__func__(ATTACKS.get("apgd-ce")(eps=0.05, steps=4), noisy, x,
                                        lambda lg, _: apgd.loss(lg, y, None)) for _ in range(3)]
    assert torch.allclose(grad, torch.stack([g for *_, g in draws]).mean(0), atol=1e-7)
    assert torch.allclose(loss, torch.stack([l for _, l, _ in draws]).mean(0), atol=1e-6)
    assert torch.allclose(logits, torch.stack([lg for lg, *_ in draws]).mean(0), atol=1e-6)


@pytest.mark.parametrize("name, options", [("apgd-ce", {"eps": 0.002, "steps": 4}),
                                           ("cw", {"eps": 0.002, "steps": 4, "binary_search_steps": 1}),
                                           ("autoattack", {"eps": 0.002})])
def test_custom_loop_attacks_pay_one_pass_per_eot_draw(tiny_victim, name, options):
    """On a deterministic victim EOT changes nothing but the cost: n draws are n forward passes each time."""
    x = make_clips(n=3, t=10, seed=6)
    y = tiny_victim(x).argmax(1)
    results, calls = [], []
    for draws in (1, 3):
        attack = ATTACKS.get(name)(**options)
        attack.eot_samples = draws
        counted = _Counting(tiny_victim)
        results.append(attack(counted, x, y))
        calls.append(counted.calls)
    assert calls[1] == 3 * calls[0] > 0
    assert torch.allclose(results[0], results[1], atol=1e-6)


def test_autoattack_components_and_sanity_variants_keep_the_run_settings():
    from robustbench_skel.run.sanity import doubled_iterations, variant

    cascade = ATTACKS.get("autoattack")(eps=0.01)
    pgd = ATTACKS.get("pgd")(eps=0.01)
    for attack in (cascade, pgd):
        attack.eot_samples, attack.early_stop = 5, "margin=1"
    for _, name, params, _ in cascade._plan():
        component = cascade._build(name, params, False)
        assert (component.eot_samples, component.early_stop) == (5, "margin=1"), name
    for attack in (cascade, pgd):
        for copy in (variant(attack), variant(attack, eps=0.02), doubled_iterations(attack)[0]):
            assert (copy.eot_samples, copy.early_stop) == (5, "margin=1"), attack.name


def test_eot_is_used_for_white_box_runs_against_a_randomized_defense_only(trained_tiny_checkpoint, tmp_path, monkeypatch):
    config = _config(trained_tiny_checkpoint, results_dir=str(tmp_path), defense="randomized-smoothing", eot_samples=2,
                     n_samples=6, steps=2)
    white = run_benchmark(config, write=False).record
    assert white["attack"]["eot_samples"] == 2 and white["threat"]["adaptive"]["eot_samples"] == 2
    transfer = run_benchmark(dataclasses.replace(config, surrogates=["tiny-test-victim"],
                                                 surrogate_checkpoints=[str(trained_tiny_checkpoint)]), write=False).record
    assert "eot_samples" not in transfer["attack"]  # the surrogate is not randomized: one pass per gradient
    monkeypatch.setattr(ATTACKS.get("ifgsm"), "supports_eot", False)
    with pytest.raises(UserError, match="cannot average its gradients .* randomized defense 'randomized-smoothing'"):
        run_benchmark(config, write=False)
    assert run_benchmark(dataclasses.replace(config, defense=None), write=False).record["attack"].get("eot_samples") is None


def test_surrogate_ensemble_averages_member_logits(tiny_victim):
    other = type(tiny_victim)(num_classes=5).eval()
    info = SurrogateInfo("a", "a", "0" * 64, None)
    ensemble = SurrogateEnsemble([tiny_victim, other], [info, info])
    x = make_clips(n=2, t=8)
    assert torch.allclose(ensemble(x), (tiny_victim(x) + other(x)) / 2, atol=1e-6)
    with pytest.raises(RuntimeError, match="training data"):
        ensemble.train_data()


def test_artefact_store_builds_once_and_rebuilds_a_corrupt_file(tmp_path):
    store = ArtefactStore(tmp_path)
    builds = []

    def build():
        builds.append(1)
        return {"w": torch.arange(3.0)}

    content, entry = store.load_or_build("heads", {"a": 1}, build, "python -m robustbench_skel prepare ...")
    again, entry2 = store.load_or_build("heads", {"a": 1}, build)
    assert len(builds) == 1 and torch.equal(again["w"], content["w"]) and entry["sha256"] == entry2["sha256"]
    assert entry["key"] == artefact_key("heads", {"a": 1}) and entry["command"].startswith("python -m")
    (tmp_path / entry["file"]).write_bytes(b"truncated")
    store.load_or_build("heads", {"a": 1}, build)
    assert len(builds) == 2
    store.load_or_build("heads", {"a": 2}, build)
    assert len(builds) == 3


def test_a_randomized_defense_record_checks_eot_against_a_single_draw(trained_tiny_checkpoint, tmp_path):
    config = _config(trained_tiny_checkpoint, results_dir=str(tmp_path), defense="randomized-smoothing", eot_samples=2,
                     n_samples=6, steps=2, sanity_samples=2)
    record = run_benchmark(config, write=False).record
    check = record["sanity"]["checks"]["eot_not_below_single_draw"]
    assert check["eot_samples"] == 2 and 0.0 <= check["reference"] <= 1.0
    assert check["passed"] == (check["success"] >= check["reference"])
    assert record["flags"]["sanity_eot_not_below_single_draw"] is check["passed"]
