"""The one atomic writer: a writer that fails leaves the old file (or none) and no temporary file."""

from __future__ import annotations

import pytest
import torch

from robustbench_skel.atomic import save_figure_atomic, save_torch_atomic, write_atomic, write_text_atomic
from robustbench_skel.run.config import RunConfig, config_from_record
from robustbench_skel.errors import UserError


def test_a_failing_writer_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "table.md"
    write_text_atomic(path, "old\n")

    def half_then_fail(handle):
        handle.write(b"ne")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_text_replaces_whole_and_public_files_are_readable_by_all(tmp_path):
    path = tmp_path / "board.html"
    write_text_atomic(path, "first ±\n", public=True)
    write_text_atomic(path, "second\n", public=True, sync=True)
    assert path.read_text(encoding="utf-8") == "second\n"
    assert path.stat().st_mode & 0o777 == 0o644


def test_torch_states_are_byte_identical_whatever_the_temporary_name(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "epoch": 3}
    save_torch_atomic(state, tmp_path / "a" / "x.pt")  # creates the folder
    save_torch_atomic(state, tmp_path / "b" / "x.pt")
    assert (tmp_path / "a" / "x.pt").read_bytes() == (tmp_path / "b" / "x.pt").read_bytes()
    assert torch.equal(torch.load(tmp_path / "a" / "x.pt", weights_only=True)["w"], state["w"])


def test_a_figure_is_written_in_the_format_its_suffix_names(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    save_figure_atomic(fig, tmp_path / "f.png", dpi=20)
    save_figure_atomic(fig, tmp_path / "f.svg")
    plt.close(fig)
    assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "f.svg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]


def test_a_run_configuration_is_rebuilt_from_the_record_alone():
    config = RunConfig(victim="sgn", attack="tasar", eps=0.02, surrogates=["stgcn"], attack_options={"heads": 3})
    record = {"config": {**config.__dict__, "a_field_from_a_newer_version": 1}}
    assert config_from_record(record) == config
    older = {"config": {"victim": "sgn", "attack": "pgd"}}  # fields an older record lacks take their defaults
    assert config_from_record(older) == RunConfig(victim="sgn", attack="pgd")


def test_a_record_without_config_is_refused_in_one_line_unless_told_how_to_read_its_command():
    with pytest.raises(UserError, match="no 'config'"):
        config_from_record({"command": "python -m robustbench_skel run --victim sgn"})
    assert config_from_record({"command": "x"}, from_command=lambda record: RunConfig(victim="sgn")).victim == "sgn"
