"""DIM: input diversity for skeletons (after Xie et al., "Improving Transferability of Adversarial Examples
with Input Diversity", CVPR 2019), with MI-FGSM momentum (DI-MI-FGSM; ``decay=0`` gives DI-FGSM).

Every iteration each sample is, with probability ``prob`` (Xie et al.'s p = 0.5), replaced *inside
the graph* by a randomly transformed copy before the surrogate sees it; the transform is the
reference benchmark's skeleton version (``Augment.py``):

1. temporal crop-and-resize: a window of ``s * L`` frames (s ~ U(``crop_scale``, 1], L the clip's
   valid length, random start) linearly resampled back to L frames;
2. then, 50/50 per sample, either joint corruption (``corrupt_joints`` random joints, drawn with
   replacement, all zeroed or all mixed by one random 3x3 matrix in U[-1, 1], 50/50 per sample) or a
   random shear (unit diagonal, off-diagonals in U[-``shear``, ``shear``]).

Where we follow the paper against the reference:

- the reference transforms every sample every iteration (p = 1); we keep Xie et al.'s p = 0.5
  (``prob=1`` gives the reference's schedule);
- the reference takes the gradient w.r.t. the transformed *copy* and adds it to the original frames
  unmapped, which is wrong once frames are resampled (frame j of the copy is not frame j of the
  clip); we differentiate through the transform (a gather and a lerp), so each frame of the clip
  receives the gradient of the resampled frames it contributes to, with its interpolation weight;
- the reference resizes to a hard-coded 60 frames over the whole tensor, padding included; we
  resample only the valid frames [0, L) (NTU pads with zeros after the clip) and keep the padding
  and absent actors at zero;
- the reference's clips are normalised and body-centred; ours are camera-space metres (the actor ~3 m
  deep), where a shear or a 3x3 mix would mostly translate the skeleton and a zeroed joint would sit
  on the camera. We therefore shear, mix and "zero" joints relative to the sample's centre (the mean
  of its valid joints), which is what those operations do in the reference's frame.

Steps are MI-FGSM's (alpha = eps / T, sign of the momentum); the reference steps 0.01 * sign(g).
Cost: one forward and backward pass of the diversified batch per iteration. The evaluator never sees
the transformed copy; with the transfer default early-stop rule ``none`` the logits of the
diversified batch stand in for the bookkeeping of "ever adversarial" (which the transfer setting
discards, and which this attack then does not report); any other rule pays one extra no-grad
forward of the transformed samples to decide on the clip itself.
"""

from __future__ import annotations

import torch

from robustbench_skel.registry import ATTACKS

from ._transfer import SeededTransfer, check_float, check_int

__all__ = ["DIM", "crop_resize", "diversify"]


def _valid_length(mask: torch.Tensor) -> torch.Tensor:
    """Per-sample number of frames up to the last frame where any actor exists, ``(N,)`` long, >= 1."""
    frames = mask.amax(dim=(1, 3, 4)) > 0  # (N, T)
    t = frames.shape[1]
    last = torch.where(frames, torch.arange(1, t + 1, device=mask.device), torch.zeros((), dtype=torch.long, device=mask.device))
    return last.amax(dim=1).clamp_min(1)


def crop_resize(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Resample the window [start, start + length - 1] (frames, per sample, real-valued) onto ``valid`` frames.

    Output frame j < valid reads the source position p_j = start + j (length - 1) / (valid - 1) by
    linear interpolation between frames floor(p_j) and floor(p_j) + 1; frames j >= valid are zero.
    A gather and a lerp: differentiable in ``x``.
    """
    n, c, t, v, m = x.shape
    j = torch.arange(t, device=x.device, dtype=x.dtype).view(1, t)
    span = ((length - 1) / (valid - 1).clamp_min(1)).view(n, 1).to(x.dtype)
    pos = start.view(n, 1).to(x.dtype) + j * span
    last = (valid - 1).view(n, 1)
    lo = pos.floor().long().clamp(min=0).minimum(last)
    hi = (lo + 1).minimum(last)
    w = (pos - lo.to(x.dtype)).clamp(0, 1)
    inside = j < valid.view(n, 1)

    def take(idx: torch.Tensor) -> torch.Tensor:
        return x.gather(2, idx.view(n, 1, t, 1, 1).expand(n, c, t, v, m))

    w = w.view(n, 1, t, 1, 1)
    out = take(lo) * (1 - w) + take(hi) * w
    return out * inside.view(n, 1, t, 1, 1).to(x.dtype)


def diversify(x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None, crop_scale: float,
              shear: float, corrupt_joints: int) -> torch.Tensor:
    """One random skeleton transform per sample (crop-resize, then joint corruption or shear); differentiable in ``x``."""
    n, c, t, v, m = x.shape
    dev, dt = x.device, x.dtype
    gdev = generator.device if generator is not None else dev

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=gdev).to(device=dev, dtype=dt)

    valid = _valid_length(mask)
    scale = crop_scale + (1 - crop_scale) * (1 - rand(n))  # U(crop_scale, 1]
    length = (scale * valid.to(dt)).clamp_min(1)
    start = rand(n) * (valid.to(dt) - length)
    out = crop_resize(x, start, length, valid)
    out_mask = mask * (torch.arange(t, device=dev).view(1, 1, t, 1, 1) < valid.view(n, 1, 1, 1, 1)).to(dt)

    count = (out_mask.sum(dim=(2, 4)) * v).clamp_min(1)  # (N, 1, 1)
    centre = ((out * out_mask).sum(dim=(2, 3, 4)) / count.view(n, 1)).view(n, c, 1, 1, 1)
    rel = out - centre

    corrupt = rand(n) < 0.5
    # Shear: unit diagonal, off-diagonals U[-shear, shear].
    off = (2 * rand(n, 3, 3) - 1) * shear
    shear_mat = off * (1 - torch.eye(3, device=dev, dtype=dt)) + torch.eye(3, device=dev, dtype=dt)
    # Joint corruption: the chosen joints zeroed (placed at the centre) or mixed by a random 3x3 matrix.
    mix = 2 * rand(n, 3, 3) - 1
    zero = rand(n) < 0.5
    mix = torch.where(zero.view(n, 1, 1), torch.zeros_like(mix), mix)
    joints = (rand(n, corrupt_joints) * v).long().clamp(max=v - 1)
    chosen = torch.zeros(n, v, device=dev, dtype=torch.bool).scatter_(1, joints, True)
    eye = torch.eye(3, device=dev, dtype=dt).expand(n, 3, 3)
    per_joint = torch.where(chosen.view(n, 1, 1, v), mix.unsqueeze(-1), eye.unsqueeze(-1))  # (N, 3, 3, V)
    corrupted = torch.einsum("ncdv,ndtvm->nctvm", per_joint, rel)
    sheared = torch.einsum("ncd,ndtvm->nctvm", shear_mat, rel)
    rel = torch.where(corrupt.view(n, 1, 1, 1, 1), corrupted, sheared)
    return (rel + centre) * out_mask


@ATTACKS.register("dim")
class DIM(SeededTransfer):
    """DI-MI-FGSM on the surrogate(s): momentum sign steps on gradients taken through random skeleton transforms."""

    description = "DIM: MI-FGSM through random temporal crop-resize plus joint corruption or shear (Xie et al. 2019)"

    def __init__(
        self,
        eps: float = 0.01,
        steps: int = 10,
        step_size: float | None = None,
        decay: float = 1.0,
        prob: float = 0.5,
        crop_scale: float = 0.95,
        shear: float = 1.0,
        corrupt_joints: int = 15,
        targeted: bool = False,
        seed: int = 0,
        step_rule: str = "sign",
    ) -> None:
        super().__init__(eps=eps, steps=steps, step_size=step_size, decay=decay, targeted=targeted, seed=seed,
                         step_rule=step_rule)
        self.prob = check_float("prob", prob, 0.0, 1.0)
        self.crop_scale = check_float("crop_scale", crop_scale, 0.0, 1.0, low_open=True)
        self.shear = check_float("shear", shear, 0.0)
        self.corrupt_joints = check_int("corrupt_joints", corrupt_joints, 0)

    def run(self, model, x, labels, targets, mask, generator):
        result = super().run(model, x, labels, targets, mask, generator)
        if self.early_stop == "none" and self.prob > 0:
            self.last_ever_adversarial = None  # judged on diversified copies, not on the clips themselves
        return result

    def gradient(self, model, x, variable, mask, labels, targets, state):
        v = variable.detach().requires_grad_(True)
        clips = self.clips(x, v, mask)
        inputs, chosen = clips, None
        if self.prob > 0:
            gen = self._generator
            gdev = gen.device if gen is not None else x.device
            chosen = (torch.rand(x.shape[0], generator=gen, device=gdev) < self.prob).to(x.device)
            if bool(chosen.any()):
                transformed = diversify(clips, mask, gen, self.crop_scale, self.shear, self.corrupt_joints)
                inputs = torch.where(chosen.view(-1, 1, 1, 1, 1), transformed, clips)
            else:
                chosen = None
        logits = model(inputs)
        (grad,) = torch.autograd.grad(self.loss(logits, labels, targets).sum(), v)
        logits = logits.detach()
        if chosen is not None and self.early_stop != "none":
            with torch.no_grad():
                logits[chosen] = model(clips.detach()[chosen])
        return grad, logits, clips.detach()
