"""--amp and --batch-size auto; the CUDA checks run only where a GPU is."""

from __future__ import annotations

import pytest
import torch

from conftest import make_clips
from robustbench_skel.run.autobatch import resolve_batch_size
from robustbench_skel.errors import UserError
from robustbench_skel.run.runner import RunConfig, run_benchmark

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _config(checkpoint, tmp_path, **changes) -> RunConfig:
    values = dict(victim="tiny-test-victim", checkpoint=str(checkpoint), attack="pgd", steps=3, n_samples=16,
                  batch_size=8, device="cpu", sanity_samples=0, results_dir=str(tmp_path / "r"))
    return RunConfig(**{**values, **changes})


def test_auto_batch_size_is_32_on_a_cpu(tiny_victim):
    assert resolve_batch_size("auto", tiny_victim, make_clips(n=2), torch.device("cpu")) == 32
    assert resolve_batch_size(8, tiny_victim, make_clips(n=2), torch.device("cpu")) == 8
    with pytest.raises(UserError, match="--batch-size"):
        resolve_batch_size(0, tiny_victim, make_clips(n=2), torch.device("cpu"))


def test_amp_is_recorded_and_keeps_the_budget(tmp_path, trained_tiny_checkpoint):
    record = run_benchmark(_config(trained_tiny_checkpoint, tmp_path, amp=True, batch_size="auto"), write=False).record
    assert record["attack"]["amp"] == "bf16"
    assert record["batch_size"] == 32 and record["config"]["batch_size"] == "auto"
    assert all(record["samples"]["within_budget"]) if "within_budget" in record["samples"] else True
    assert all(v is not False for k, v in record["flags"].items() if k in ("all_within_budget", "all_finite"))


@needs_cuda
def test_cuda_gives_the_cpu_verdicts(tmp_path, trained_tiny_checkpoint):
    cpu = run_benchmark(_config(trained_tiny_checkpoint, tmp_path, attack="fgsm", steps=None), write=False).record
    gpu = run_benchmark(_config(trained_tiny_checkpoint, tmp_path, attack="fgsm", steps=None, device="cuda"), write=False).record
    assert gpu["environment"]["device"].startswith("cuda")
    assert gpu["samples"]["clean_pred"] == cpu["samples"]["clean_pred"]
    assert gpu["samples"]["success"] == cpu["samples"]["success"]


@needs_cuda
def test_auto_batch_size_probes_the_gpu(tmp_path, trained_tiny_checkpoint):
    record = run_benchmark(_config(trained_tiny_checkpoint, tmp_path, device="cuda", batch_size="auto", amp=True),
                           write=False).record
    size = record["batch_size"]
    assert size & (size - 1) == 0 and 1 <= size <= 16  # a power of two, no larger than the clips need
    assert record["attack"]["amp"] == "bf16"
