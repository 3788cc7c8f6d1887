"""Progress of long work: a bar on a terminal, plain flushed lines without one (nohup, batch schedulers)."""

from __future__ import annotations

import io
import re

import pytest
import torch
from tqdm import tqdm

from robustbench_skel.progress_meter import PROGRESS_ENV, LineProgress, progress, progress_enabled, showing_progress

from conftest import make_clips


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Log(io.StringIO):
    """A non-terminal stream that counts its flushes."""

    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


LINE = re.compile(r"^(?P<label>.+): (?P<n>\d+)/(?P<total>\d+) (?P<unit>\w+) \((?P<pct>\d+)%\), "
                  r"elapsed (?P<elapsed>[\d:]+), ETA (?P<eta>[\d:]+|\?)")


@pytest.fixture(autouse=True)
def _no_forced_form(monkeypatch):
    monkeypatch.delenv(PROGRESS_ENV, raising=False)


def _lines(stream: io.StringIO) -> list[re.Match]:
    text = stream.getvalue()
    assert "\r" not in text, "a log gets no carriage returns"
    matches = [LINE.match(line) for line in text.splitlines()]
    assert all(matches), text
    return matches


@pytest.mark.parametrize("total,expected_counts", [
    (25, [0, 3, 5, 8, 10, 13, 15, 18, 20, 23, 25]),  # one line per 10%, after the first
    (100, [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
    (4, [0, 1, 2, 3, 4]),  # fewer units than tenths: one line per unit
    (1, [0, 1]),
])
def test_without_a_terminal_one_line_per_unit_or_per_tenth_whichever_is_fewer(total, expected_counts):
    log = Log()
    assert list(progress(range(total), desc="attack pgd", unit="batch", enabled=True, stream=log)) == list(range(total))
    lines = _lines(log)
    assert [int(m["n"]) for m in lines] == expected_counts
    assert {m["label"] for m in lines} == {"attack pgd"}
    assert {int(m["total"]) for m in lines} == {total} and {m["unit"] for m in lines} == {"batch"}
    assert lines[-1]["pct"] == "100" and lines[-1]["eta"] == "00:00"
    assert log.flushes >= len(lines), "every line is flushed at once, so a log shows it while the work goes on"


def test_elapsed_time_and_eta_come_from_the_rate_so_far():
    now = [0.0]
    log = io.StringIO()
    meter = LineProgress(total=4, desc="CERTIFY", unit="draw", stream=log, clock=lambda: now[0])
    now[0] = 30.0
    meter.update(1)  # 30 s per unit, 3 units left
    now[0] = 125.0
    meter.update(1)  # 62.5 s per unit, 2 left
    meter.close()
    first, one, two = _lines(log)
    assert first["eta"] == "?" and first["elapsed"] == "00:00"
    assert one["elapsed"] == "00:30" and one["eta"] == "01:30"
    assert two["elapsed"] == "02:05" and two["eta"] == "02:05"
    assert len(_lines(log)) == 3, "close adds no line when the last one is current"


def test_an_interrupted_loop_leaves_its_last_count_and_postfix():
    log = io.StringIO()
    meter = progress(total=50, desc="train", unit="batch", enabled=True, stream=log)
    meter.update(2)
    meter.set_postfix(epoch=1, loss="0.500")
    meter.close()
    last = _lines(log)[-1]
    assert (last["n"], last["total"]) == ("2", "50")
    assert log.getvalue().splitlines()[-1].endswith("epoch=1, loss=0.500")


def test_a_resumed_meter_counts_its_eta_from_the_work_done_here():
    now = [0.0]
    log = io.StringIO()
    meter = LineProgress(total=10, initial=8, desc="train", unit="batch", stream=log, clock=lambda: now[0])
    now[0] = 10.0
    meter.update(1)  # 10 s for the one batch done in this process, 1 left
    assert _lines(log)[-1]["eta"] == "00:10"


def test_without_a_total_it_writes_at_most_one_line_per_interval():
    now = [0.0]
    log = io.StringIO()
    meter = LineProgress((i for i in range(100)), desc="queries", unit="query", stream=log, clock=lambda: now[0])
    for i in meter:
        now[0] = i * 0.5  # half a second per item: a line each 10 s, the last one at close
    counts = [int(line.split()[1]) for line in log.getvalue().splitlines()]
    assert counts == [0, 21, 41, 61, 81, 100]
    assert log.getvalue().splitlines()[-1] == "queries: 100 query, elapsed 00:50"


def test_on_a_terminal_it_is_a_tqdm_bar_that_stays():
    term = Terminal()
    bar = progress(range(3), desc="sanity re-run", unit="batch", enabled=True, stream=term)
    assert isinstance(bar, tqdm) and not bar.disable
    assert list(bar) == [0, 1, 2]
    assert "sanity re-run" in term.getvalue() and "3/3" in term.getvalue()
    assert bar.leave is None, "a top-level bar stays on screen, a nested one goes"


def test_off_means_silent_and_the_loop_still_runs():
    log = io.StringIO()
    assert list(progress(range(5), desc="x", enabled=False, stream=log)) == list(range(5))
    meter = progress(total=5, desc="x", enabled=False, stream=log)
    meter.update(5)
    meter.close()
    assert log.getvalue() == ""


def test_without_a_flag_it_follows_the_run(monkeypatch):
    log = io.StringIO()
    assert not progress_enabled()
    list(progress(range(2), desc="outside a run", stream=log))
    assert log.getvalue() == ""
    with showing_progress(True):
        assert progress_enabled()
        list(progress(range(2), desc="inside a run", stream=log))
        with showing_progress(False):
            list(progress(range(2), desc="quiet part", stream=log))
    assert not progress_enabled()
    assert {m["label"] for m in _lines(log)} == {"inside a run"}


def test_the_environment_can_silence_or_force_a_form(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "off")
    log = Terminal()
    list(progress(range(2), desc="x", enabled=True, stream=log))
    with showing_progress(True):
        assert not progress_enabled()
    assert log.getvalue() == ""
    monkeypatch.setenv(PROGRESS_ENV, "lines")
    list(progress(range(2), desc="forced", enabled=True, stream=log))
    assert [int(m["n"]) for m in _lines(log)] == [0, 1, 2]


def test_a_message_goes_out_as_its_own_flushed_line(capsys):
    meter = progress(total=2, desc="train", enabled=True, stream=io.StringIO())
    meter.write("epoch 1/2: train accuracy 50.0%")
    assert capsys.readouterr().out == "epoch 1/2: train accuracy 50.0%\n"


# --- the long steps of a run report through it --------------------------------------------------


def test_sanity_re_runs_report_their_progress(tiny_victim, capsys):
    from robustbench_skel.registry import ATTACKS
    from robustbench_skel.run.sanity import run_sanity_checks

    x = make_clips(n=3, t=8, seed=1)
    with torch.no_grad():
        y = tiny_victim(x).argmax(1)
    attack = ATTACKS.get("pgd")(eps=0.02, steps=2)
    success = torch.zeros(3, dtype=torch.bool)
    run_sanity_checks(attack, tiny_victim, x, y, None, success, batch_size=2, device=torch.device("cpu"), seed=0,
                      progress=True)
    lines = _lines_of(capsys.readouterr().err)
    checks = ("unbounded", "monotone_in_budget", "stronger_than_fgsm", "converged")
    for i, check in enumerate(checks, 1):
        label = f"sanity re-run {i}/4: {check}"
        counts = [(m["n"], m["total"]) for m in lines if m["label"].startswith(label)]
        assert counts == [("0", "2"), ("1", "2"), ("2", "2")], (check, counts)  # 3 clips in batches of 2
    with showing_progress(False):  # quiet by default outside a run that shows progress
        run_sanity_checks(attack, tiny_victim, x, y, None, success, batch_size=2, device=torch.device("cpu"), seed=0)
    assert capsys.readouterr().err == ""


def _lines_of(text: str) -> list[re.Match]:
    assert "\r" not in text
    return [m for m in (LINE.match(line) for line in text.splitlines()) if m]


def test_certify_reports_its_noisy_draws(tiny_victim, capsys):
    from robustbench_skel.defenses.randomized_smoothing import certify_clips

    x = make_clips(n=3, t=8, seed=2)
    certify_clips(tiny_victim, x, sigma=0.01, n0=4, n=6, num_classes=tiny_victim.num_classes, batch_size=2, progress=True)
    lines = [m for m in _lines_of(capsys.readouterr().err) if m["label"].startswith("CERTIFY")]
    assert lines[0]["n"] == "0" and lines[-1]["n"] == lines[-1]["total"] == str(2 * (4 + 6))  # 2 clip batches
    certify_clips(tiny_victim, x, sigma=0.01, n0=4, n=6, num_classes=tiny_victim.num_classes, batch_size=2)
    assert capsys.readouterr().err == "", "outside a run that shows progress, CERTIFY is quiet"


def test_a_transfer_matrix_reports_its_cells_and_each_victims_evaluation(tmp_path, capsys, monkeypatch):
    from robustbench_skel.commands.transfer_matrix import run_transfer_matrix
    from robustbench_skel.run.config import RunConfig

    # a cache of its own: clean predictions cached by an earlier test would skip the clean evaluation
    monkeypatch.setenv("ROBUSTBENCH_SKEL_CACHE", str(tmp_path / "cache"))
    config = RunConfig(attack="ifgsm", n_samples=2, steps=1, sanity_samples=1, device="cpu", results_dir=str(tmp_path))
    run_transfer_matrix(config, [["sgn"]], "sgn", progress=True)
    err = capsys.readouterr().err
    assert "transfer matrix cell 1/1: ifgsm crafted on sgn, evaluated on sgn" in err
    labels = {m["label"] for m in _lines_of(err)}
    assert {"transfer matrix", "evaluation: classifying the clean clips", "evaluation: re-classifying the returned clips",
            "ifgsm (crafting once for every victim)", "sanity re-run: white-box ifgsm on the victim"} <= labels, labels
    done = [m for m in _lines_of(err) if m["label"] == "transfer matrix"]
    assert [(m["n"], m["total"]) for m in done] == [("0", "1"), ("1", "1")]


def test_a_real_terminal_gets_a_bar_unless_it_reports_no_width():
    pty = pytest.importorskip("pty")
    import fcntl
    import os
    import struct
    import termios

    master, slave = pty.openpty()
    try:
        with os.fdopen(os.dup(slave), "w") as term:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 0, 0, 0, 0))
            assert isinstance(progress(total=2, desc="x", enabled=True, stream=term), LineProgress)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
            bar = progress(total=2, desc="x", enabled=True, stream=term)
            assert isinstance(bar, tqdm) and not bar.disable
            bar.close()
            os.read(master, 65536)  # drain what the meters drew
    finally:
        os.close(master)
        os.close(slave)
