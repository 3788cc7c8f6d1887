"""Faithfulness tests of the skeleton-specific attacks: SMART, CIASA and the bone-length attack."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import robustbench_skel.attacks.bone_length as bone_length_module
import robustbench_skel.attacks.ciasa as ciasa_module
import robustbench_skel.attacks.smart  # noqa: F401  (registers "smart")
from robustbench_skel.attack import is_adversarial
from robustbench_skel.attacks import _perceptual as P
from robustbench_skel.budget import valid_mask
from robustbench_skel.datasets import synth2
from robustbench_skel.layout import HDM05_25, NTU25, get_layout
from robustbench_skel.metrics import imperceptibility
from robustbench_skel.registry import ATTACKS

from conftest import make_clips

rebuild = bone_length_module.rebuild_from_bone_scales
recover = bone_length_module.recover_bone_scales


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: intra-op threads only fight over the shared cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _labels(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def _synth(n: int) -> torch.Tensor:
    """Realistic NTU-25 clips: synth's motion before its sensor model (forward kinematics, so constant bone
    lengths), single-person classes, 64 frames with zero padding after each clip's valid length."""
    keys = [(s, a, 1, 1) for s in (1, 2) for a in range(12)]
    return torch.from_numpy(synth2.generate_clips(keys).clean[:n])


def _bone_lengths(x: torch.Tensor, layout=NTU25) -> torch.Tensor:
    return P.bone_vectors(x, layout).norm(dim=1)  # (N, T, B, M)


# --- shared perceptual machinery (SMART, CIASA) ----------------------------------------------------
def test_spine_weights_follow_the_layout_not_hdm05_indices():
    w = P.joint_weights(NTU25, 0.04, 0.02, torch.zeros(1))
    spine = {NTU25.index(n) for n in ("spine_base", "spine_mid", "neck", "head", "spine_shoulder")}
    assert {j for j in range(25) if w[j] == 0.04} == spine
    # the reference benchmark's bug weighted HDM05's spine indices 10-14 on NTU (right arm, left hip)
    assert all(w[j] == 0.02 for j in range(10, 15) if j not in spine)
    w_hdm = P.joint_weights(HDM05_25, 0.04, 0.02, torch.zeros(1))
    assert {j for j in range(25) if w_hdm[j] == 0.04} == {10, 11, 12, 13, 14}
    assert set(P.spine_joints(get_layout("nw-ucla20"))) == {0, 1, 2, 3}


def test_perceptual_loss_matches_a_hand_computation():
    """One joint moved by d in one frame: position d^2*w, acceleration 6*d^2*fps^4, two bones change."""
    x = make_clips(n=1, t=8, pad=0, seed=7)
    adv = x.clone()
    d, j, t = 0.01, NTU25.index("left_elbow"), 4
    adv[0, 0, t, j, 0] += d
    mask = valid_mask(x)
    smart = ATTACKS.get("smart")()
    pos = 0.02 * d * d
    acc = 6 * d * d * 30.0**4  # accelerations centred on t-1, t, t+1 get coefficients 1, -2, 1
    bone = 0.0
    for child, parent in ((j, NTU25.parents[j]), (NTU25.index("left_wrist"), j)):
        before = (x[0, :, t, child, 0] - x[0, :, t, parent, 0]).norm()
        after = (adv[0, :, t, child, 0] - adv[0, :, t, parent, 0]).norm()
        bone += float(after - before) ** 2
    expected = 0.4 * pos + 0.6 * (0.7 * bone + 0.3 * acc)  # the original repo's rw / blw weighting
    got = float(smart.perceptual_loss(adv, x, mask)[0])
    assert got == pytest.approx(expected, rel=1e-4)
    assert float(smart.perceptual_loss(x, x, mask)[0]) == pytest.approx(0.0, abs=1e-9)
    # CIASA's dynamics term is the adversarial clip's own squared acceleration, whatever the clean clip
    ciasa = ATTACKS.get("ciasa")()
    own = float((P.acceleration(adv, 30.0) ** 2).sum())
    assert float(ciasa.dynamics_loss(adv, torch.zeros_like(adv), mask)[0]) == pytest.approx(own, rel=1e-5)


def test_gradients_are_normalised_per_person_frame_or_per_sample():
    x = make_clips(n=3, t=8)
    mask = valid_mask(x)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    per_frame = P.normalize_gradient(g, mask, "frame")
    norms = per_frame.pow(2).sum(dim=(1, 3), keepdim=True).sqrt()
    assert torch.allclose(norms[mask.bool()], torch.ones(()), atol=1e-5)
    assert torch.all(per_frame * (1 - mask) == 0)
    per_sample = P.normalize_gradient(g, mask, "sample")
    assert torch.allclose(per_sample.flatten(1).norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.all(P.normalize_gradient(torch.zeros_like(g), mask, "frame") == 0)


def test_update_clip_rescales_down_only():
    u = torch.zeros(2, 3, 4, 25, 2)
    u[0, 0, 0, 0, 0], u[1, 0, 0, 0, 0] = 0.5, 2.0
    clipped = P.clip_update(u, 1.0)
    assert torch.equal(clipped[0], u[0])  # shorter than the threshold: untouched (the benchmark scaled it UP to 5x)
    assert float(clipped[1].norm()) == pytest.approx(1.0) and float(clipped[1, 0, 0, 0, 0]) > 0
    assert torch.equal(P.clip_update(u, None), u)


def test_perceptual_direction_lowers_the_perceptual_loss():
    x = _synth(4)
    mask = valid_mask(x)
    adv = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).clamp(-1, 1) * mask
    smart = ATTACKS.get("smart")()
    before = smart.perceptual_loss(adv, x, mask)
    after = smart.perceptual_loss(adv - 1e-4 * smart.perceptual_direction(adv, x, mask, {}), x, mask)
    assert torch.all(after < before)


# --- SMART -----------------------------------------------------------------------------------
def test_smart_matches_pgd_success_with_lower_bone_and_acceleration_deviation(tiny_victim):
    x = make_clips(n=16, t=12, seed=1)
    y = _labels(tiny_victim, x)
    eps = 0.1
    pgd_adv = ATTACKS.get("pgd")(eps=eps)(tiny_victim, x, y)
    smart_adv = ATTACKS.get("smart")(eps=eps, steps=100)(tiny_victim, x, y)
    with torch.no_grad():
        pgd_ok = is_adversarial(tiny_victim(pgd_adv), y, None)
        smart_ok = is_adversarial(tiny_victim(smart_adv), y, None)
    assert smart_ok.sum() >= pgd_ok.sum() > 0
    both = (pgd_ok & smart_ok).numpy()
    pgd_imp = imperceptibility(x, pgd_adv, NTU25, 30.0)
    smart_imp = imperceptibility(x, smart_adv, NTU25, 30.0)
    assert smart_imp["bone_length_deviation"][both].mean() < pgd_imp["bone_length_deviation"][both].mean()
    assert smart_imp["acceleration_deviation"][both].mean() < 0.5 * pgd_imp["acceleration_deviation"][both].mean()


def test_smart_perceptual_term_smooths_the_result(tiny_victim):
    """The same loop without the perceptual gradient (cw = 1) leaves far rougher motion."""
    x = make_clips(n=8, t=12, seed=1)
    y = _labels(tiny_victim, x)
    with_term = ATTACKS.get("smart")(eps=0.1, steps=100)(tiny_victim, x, y)
    without = ATTACKS.get("smart")(eps=0.1, steps=100, class_weight=1.0)(tiny_victim, x, y)
    acc_with = imperceptibility(x, with_term, NTU25, 30.0)["acceleration_deviation"].mean()
    acc_without = imperceptibility(x, without, NTU25, 30.0)["acceleration_deviation"].mean()
    assert acc_with < 0.5 * acc_without


def test_smart_freezes_each_sample_at_its_first_fooled_iterate(tiny_victim):
    x = make_clips(n=6, t=10, seed=4)
    y = _labels(tiny_victim, x)
    attack = ATTACKS.get("smart")(eps=0.1, steps=100)
    together = attack(tiny_victim, x, y)
    iters = attack.last_iterations.clone()
    with torch.no_grad():
        fooled = is_adversarial(tiny_victim(together), y, None)
    assert fooled.any() and torch.all(fooled[iters < 100]) and iters.min() < 100
    ever = attack.last_ever_adversarial
    assert not (ever & ~fooled).any(), "every adversarial point found is returned"
    assert torch.equal(ever | (fooled & (iters == attack.steps)), fooled)  # unseen ones: the last iterate only
    for i in range(6):  # no coupling between samples: each one alone gives the same result
        alone = attack(tiny_victim, x[i : i + 1], y[i : i + 1])
        # Batched and single-clip kernels round differently (float32, ~1e-6 after 70 steps on some CPUs);
        # coupling between samples would show at the scale of a step (2.5e-3 here).
        assert torch.allclose(alone[0], together[i], atol=1e-4)
        assert int(attack.last_iterations[0]) == int(iters[i])


def test_smart_targeted_reaches_the_target(tiny_victim):
    x = make_clips(n=8, t=10, seed=2)
    y = _labels(tiny_victim, x)
    targets = (y + 2) % 5
    adv = ATTACKS.get("smart")(eps=1.0, steps=50, step_size=0.1, targeted=True)(tiny_victim, x, y, targets)
    with torch.no_grad():
        assert tiny_victim(adv).argmax(1).eq(targets).all()


# --- CIASA -----------------------------------------------------------------------------------
def test_ciasa_gan_term_reaches_the_input():
    x = make_clips(n=2, t=6)
    mask = valid_mask(x)
    ciasa = ATTACKS.get("ciasa")()
    context = ciasa.begin(x, mask, torch.Generator().manual_seed(0))
    adv = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * mask
    grad = ciasa.gan_gradient(adv, mask, context)
    assert torch.isfinite(grad).all()
    assert grad.abs().flatten(1).amax(dim=1).min() > 0, "the generator term must have a gradient w.r.t. every sample"
    assert torch.all(grad * (1 - mask) == 0)
    # it changes the update: the perceptual direction with and without the GAN share differ
    with_gan = ciasa.perceptual_direction(adv, x, mask, ciasa.begin(x, mask, torch.Generator().manual_seed(0)))
    no_gan = ATTACKS.get("ciasa")(gan_weight=0.0).perceptual_direction(adv, x, mask, {})
    assert not torch.allclose(with_gan, no_gan)


def test_ciasa_discriminator_learns_clean_from_adversarial_online():
    x = make_clips(n=2, t=6)
    mask = valid_mask(x)
    adv = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2)) * mask
    ciasa = ATTACKS.get("ciasa")(disc_lr=1e-3)
    context = ciasa.begin(x, mask, torch.Generator().manual_seed(0))
    losses = [ciasa.train_discriminator(adv, x, mask, context) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    disc = context["disc"]
    with torch.no_grad():
        real = disc(ciasa_module.bone_gram_features(x, NTU25, mask)).mean()
        fake = disc(ciasa_module.bone_gram_features(adv, NTU25, mask)).mean()
    assert real > fake


def test_realignment_restores_clean_bone_lengths_from_the_root():
    x = _synth(2)
    mask = valid_mask(x)
    adv = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3)) * mask
    out = ciasa_module.realign_bone_lengths(adv, x, mask, NTU25)
    valid = mask[:, 0].bool().expand(-1, -1, len(NTU25.bones), -1)  # (N, T, B, M)
    assert torch.allclose(_bone_lengths(out)[valid], _bone_lengths(x)[valid], atol=1e-5)
    root = NTU25.root
    assert torch.equal(out[:, :, :, root], adv[:, :, :, root])
    assert torch.all((out - x) * (1 - mask) == 0)
    # each joint lies on the ray from its realigned parent towards its perturbed position
    j, p = NTU25.index("left_hand"), NTU25.parents[NTU25.index("left_hand")]
    cos = F.cosine_similarity(out[:, :, :, j] - out[:, :, :, p], adv[:, :, :, j] - out[:, :, :, p], dim=1)
    assert torch.all(cos[mask[:, 0, :, 0].bool()] > 1 - 1e-5)


def test_ciasa_realignment_preserves_bone_lengths_better_than_without(tiny_victim):
    x = _synth(3)[:, :, :16]
    y = _labels(tiny_victim, x)
    on = ATTACKS.get("ciasa")(eps=0.02, steps=8)(tiny_victim, x, y)
    off = ATTACKS.get("ciasa")(eps=0.02, steps=8, realign=False)(tiny_victim, x, y)
    dev_on = imperceptibility(x, on, NTU25, 30.0)["bone_length_deviation"].mean()
    dev_off = imperceptibility(x, off, NTU25, 30.0)["bone_length_deviation"].mean()
    assert dev_off > 0 and dev_on < 0.25 * dev_off


# --- bone-length attack ----------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["ntu25", "hdm05"])
def test_bone_length_attack_changes_bone_lengths_only(tiny_victim, layout):
    lay = get_layout(layout)
    x = _synth(8) if layout == "ntu25" else make_clips(n=8, t=12, seed=3)
    y = _labels(tiny_victim, x)
    attack = ATTACKS.get("bone-length")(eps=0.1, layout=layout)
    adv = attack(tiny_victim, x, y)
    mask = valid_mask(x)
    assert torch.all((adv - x) * (1 - mask) == 0), "absent person-frames never move"
    assert torch.equal(adv[:, :, :, lay.root], x[:, :, :, lay.root]), "the root stays put"
    b_clean, b_adv = P.bone_vectors(x, lay), P.bone_vectors(adv, lay)
    valid = mask[:, 0].bool().expand(-1, -1, len(lay.bones), -1)  # (N, T, B, M)
    cos = F.cosine_similarity(b_adv, b_clean, dim=1)
    assert torch.all(cos[valid] > 1 - 1e-5), "bone directions (joint angles) never change"
    ratio = b_adv.norm(dim=1) / b_clean.norm(dim=1)
    for n in range(x.shape[0]):
        for m in range(x.shape[4]):
            frames = mask[n, 0, :, 0, m].bool()
            if frames.any():
                r = ratio[n, frames, :, m]  # (T_valid, B)
                assert torch.all((r.amax(0) - r.amin(0)) < 1e-4), "one scale per bone, shared by all frames"
                assert torch.all((r > 0.9 - 1e-4) & (r < 1.1 + 1e-4))
    assert float((ratio[valid] - 1).abs().max()) > 0.005, "the attack moved something"
    assert torch.all(attack.budget_size(x, adv, mask) <= 0.1 + 1e-6)


def test_bone_length_constrain_clips_scales_and_is_idempotent():
    x = _synth(3)
    mask = valid_mask(x)
    attack = ATTACKS.get("bone-length")(eps=0.1)
    beta = 0.6 + 0.8 * torch.rand(3, 2, 24, generator=torch.Generator().manual_seed(0))
    far = rebuild(x, beta, mask, NTU25)
    present = mask.amax(dim=2).view(3, 2).bool()  # (N, M): persons that exist
    assert torch.allclose(recover(x, far, mask, NTU25)[present], beta.double()[present], atol=1e-4)
    assert torch.all(attack.budget_size(x, far, mask) > 0.2)
    once = attack.constrain(x, far, mask)
    assert torch.allclose(recover(x, once, mask, NTU25)[present], beta.clamp(0.9, 1.1).double()[present], atol=1e-4)
    assert torch.all(attack.budget_size(x, once, mask) <= 0.1 + 1e-6)
    assert torch.equal(attack.constrain(x, once, mask), once), "constrain must be idempotent"
    # a perturbation that is not a bone rescaling is outside the budget; constrain turns it into one
    noisy = x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * mask
    assert torch.all(torch.isinf(attack.budget_size(x, noisy, mask)))
    fixed = attack.constrain(x, noisy, mask)
    assert torch.all(attack.budget_size(x, fixed, mask) <= 0.1 + 1e-6)
    assert torch.equal(attack.constrain(x, fixed, mask), fixed)


def test_bone_length_pgd_takes_sign_steps_on_beta(tiny_victim):
    x = _synth(6)
    y = _labels(tiny_victim, x)
    attack = ATTACKS.get("bone-length")(eps=0.1, steps=1)
    adv = attack(tiny_victim, x, y)
    mask = valid_mask(x)
    stepped = attack.last_iterations == 1
    assert stepped.any()
    beta = recover(x, adv, mask, NTU25)[stepped]
    person = mask.amax(dim=2).view(6, 2).bool()[stepped]
    moved = (beta[person] - 1).abs()
    assert torch.all((moved - 0.01).abs() < 1e-4), "one step of alpha * sign(grad) from beta = 1"


def test_bone_length_attack_beats_random_bone_scales(tiny_victim):
    x = _synth(16)
    y = _labels(tiny_victim, x)
    eps = 0.3
    attack = ATTACKS.get("bone-length")(eps=eps)
    adv = attack(tiny_victim, x, y)
    mask = valid_mask(x)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        success = int(is_adversarial(tiny_victim(adv), y, None).sum())
        random_best = max(
            int(is_adversarial(tiny_victim(rebuild(x, 1 + (2 * torch.rand(16, 2, 24, generator=gen) - 1) * eps, mask, NTU25)), y, None).sum())
            for _ in range(5)
        )
    assert success > random_best
    assert attack.last_iterations.max() <= 50 and attack.last_iterations.min() < 50  # early stopping


def test_skeletal_attacks_reject_bad_settings():
    from robustbench_skel.errors import UserError

    with pytest.raises(UserError):
        ATTACKS.get("smart")(normalization="layer")
    with pytest.raises(UserError):
        ATTACKS.get("ciasa")(gan_weight=1.5)
    with pytest.raises(UserError):
        ATTACKS.get("bone-length")(layout="no-such-layout")
    assert math.isfinite(ATTACKS.get("bone-length")().unbounded_eps)
