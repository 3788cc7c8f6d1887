"""Decision-based attacks: an oracle is all they hold, it counts queries exactly, and BASAR's projection is right."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn

from robustbench_skel.handed import LabelOracle, QueryBudgetExceeded
from robustbench_skel.layout import NTU25
from robustbench_skel.registry import ATTACKS
from robustbench_skel.run.runner import RunConfig, run_benchmark

from conftest import make_clips, reachable




@pytest.mark.parametrize("name", ["basar", "boundary"])
def test_decision_attack_holds_only_an_oracle(name, tmp_path, monkeypatch, trained_tiny_checkpoint):
    seen = {}
    cls = ATTACKS.get(name)
    original_run = cls.run

    def run(self, model, x, labels, targets, mask, generator):
        seen["handed"] = model
        out = original_run(self, model, x, labels, targets, mask, generator)
        seen["attack"] = self
        return out

    monkeypatch.setattr(cls, "run", run)
    victims = []
    from robustbench_skel.run import runner

    original_load = runner.load_victim
    monkeypatch.setattr(runner, "load_victim", lambda *a, **k: victims.append(original_load(*a, **k)) or victims[-1])
    result = run_benchmark(RunConfig(victim="tiny-test-victim", checkpoint=str(trained_tiny_checkpoint), attack=name,
                                     n_samples=6, sanity_samples=0, max_queries=40, device="cpu",
                                     results_dir=str(tmp_path)), write=False)
    victim = victims[0].model
    assert isinstance(seen["handed"], LabelOracle)
    assert not reachable(seen["handed"], victim)
    assert not reachable(seen["attack"], victim)
    record = result.record
    assert record["threat"]["model"] == "decision-based"
    assert max(record["samples"]["queries"]) <= 40
    assert "median_l2_rms_m" in record["metrics"] and len(record["samples"]["perturbation_l2_rms_m"]) == 6


def test_oracle_counts_queries_exactly_and_refuses_past_the_budget():
    calls = []
    oracle = LabelOracle(lambda x: calls.append(x.shape[0]) or torch.zeros(x.shape[0], dtype=torch.long), 3, 4)
    clips = torch.zeros(5, 3, 4, 25, 1)
    oracle.labels(clips[:3], torch.tensor([0, 1, 1]))
    oracle.labels(clips[:2], torch.tensor([1, 2]))
    assert oracle.counts.tolist() == [1, 3, 1] and oracle.remaining().tolist() == [3, 1, 3]
    with pytest.raises(QueryBudgetExceeded):
        oracle.labels(clips[:2], torch.tensor([1, 1]))
    assert oracle.counts.tolist() == [1, 3, 1] and sum(calls) == 5  # a refused query is neither charged nor asked


def _skeleton(n: int = 2, t: int = 10) -> torch.Tensor:
    """Clips whose bones have constant, plausible lengths (a random walk of unit bone directions)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.zeros(n, 3, t, 25, 2, dtype=torch.float64)
    lengths = torch.rand(25, generator=gen, dtype=torch.float64) * 0.2 + 0.05
    for j in NTU25.topological_order:
        p = NTU25.parents[j]
        if p == j:
            x[:, :, :, j, 0] = torch.randn(n, 3, 1, generator=gen, dtype=torch.float64) + torch.tensor([0, 0, 3.0])[:, None]
            continue
        d = torch.randn(n, 3, t, generator=gen, dtype=torch.float64) * 0.1 + torch.randn(n, 3, 1, generator=gen, dtype=torch.float64)
        x[:, :, :, j, 0] = x[:, :, :, p, 0] + lengths[j] * d / d.norm(dim=1, keepdim=True)
    x[:, :, t - 2 :] = 0  # padding
    return x


def test_basar_projection_keeps_bone_lengths():
    from robustbench_skel.attacks.basar import project_to_manifold
    from robustbench_skel.budget import valid_mask

    clean = _skeleton()
    mask = valid_mask(clean)
    gen = torch.Generator().manual_seed(2)
    adv = (clean + torch.randn(clean.shape, generator=gen, dtype=torch.float64) * 0.03) * mask
    out = project_to_manifold(adv, clean, mask, NTU25, 1.0)
    for child, parent in NTU25.bones:
        ref = (clean[:, :, :8, child, 0] - clean[:, :, :8, parent, 0]).norm(dim=1)
        got = (out[:, :, :8, child, 0] - out[:, :, :8, parent, 0]).norm(dim=1)
        assert torch.allclose(got, ref, rtol=1e-6, atol=0)
    assert torch.equal(out[clean.eq(0)], clean[clean.eq(0)])  # padding and the absent actor stay zero


def test_acceleration_smoothing_solves_its_normal_equations():
    from robustbench_skel.attacks.basar import smooth_accelerations

    rng = np.random.default_rng(0)
    length, w = 9, 2.5
    adv, clean = rng.normal(size=(length, 4)), rng.normal(size=(length, 4))
    d2 = np.zeros((length - 2, length))
    for i in range(length - 2):
        d2[i, i : i + 3] = (1, -2, 1)
    dense = np.linalg.solve(np.eye(length) + w * d2.T @ d2, adv + w * d2.T @ d2 @ clean)
    assert np.allclose(smooth_accelerations(adv, clean, w), dense, atol=1e-10)


def _linear_oracle(budget: int, n: int = 1) -> LabelOracle:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 12 * 25 * 2, 4))

    def classify(x):
        return model(x.float()).argmax(1)

    return LabelOracle(classify, n, budget)


@pytest.mark.parametrize("name", ["basar", "boundary"])
def test_distance_is_monotone_in_the_query_budget(name):
    x = make_clips(n=1, t=12, seed=4)
    oracle = _linear_oracle(1)
    label = oracle._classify(x)
    distances = []
    for budget in (5, 10, 40):  # the linear boundary of this toy oracle is reached within ~40 queries
        attack = ATTACKS.get(name)(init="noise", **({"project_every": 0} if name == "basar" else {}))
        oracle = _linear_oracle(budget)
        attack(oracle, x, label)
        assert int(oracle.counts[0]) <= budget
        distances.append(float(attack.last_extra["perturbation_l2_rms_m"][0]))
    assert np.isfinite(distances[0])
    assert distances[0] >= distances[1] >= distances[2] and distances[2] < distances[0]


def test_basar_respects_the_budget_with_projection_and_finds_adversarial_clips():
    x = make_clips(n=3, t=12, seed=7)
    oracle = _linear_oracle(1, 3)
    labels = oracle._classify(x)
    oracle = _linear_oracle(50, 3)
    attack = ATTACKS.get("basar")(project_every=2, interp_tries=3, layout="ntu25", eps=10.0)
    out = attack(oracle, x, labels)
    assert (oracle.counts <= 50).all()
    fresh = _linear_oracle(10, 3)
    assert fresh.labels(out).ne(labels).all()  # eps = 10 m: the min-norm clips are returned as they are


def test_bad_decision_option_is_a_user_error():
    from robustbench_skel.errors import UserError

    with pytest.raises(UserError, match="init"):
        ATTACKS.get("basar")(init="zeros")
    with pytest.raises(UserError, match="epsilon"):
        ATTACKS.get("boundary")(epsilon=1.5)
