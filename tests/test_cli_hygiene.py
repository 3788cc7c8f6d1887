"""The command line as a user reads it (issue 27 items 4 and 7): the program's name, the flags each command
shows and their help, `info NAME`, units in the run summary, the successful samples' ids, and `run --config`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from robustbench_skel.commands.cli import PROG, build_parser, main
from robustbench_skel.run.record import read_record


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _flags(command: str) -> set[str]:
    return {s for a in _subparsers(build_parser())[command]._actions for s in a.option_strings}


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---- flags and help ---------------------------------------------------------------------------------------

def test_every_flag_of_every_command_has_help():
    parser = build_parser()
    commands = _subparsers(parser)
    assert {"run", "transfer", "prepare", "sweep", "bench", "info", "describe", "show"} <= set(commands)
    missing = [f"{name} {a.option_strings or a.dest}" for name, sub in commands.items() for a in sub._actions
               if not (a.help and a.help.strip() and a.help != argparse.SUPPRESS)]
    assert not missing, f"flags without help: {missing}"
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))._choices_actions
    assert all(c.help and c.help.strip() for c in choices), "every command has a one-line help in the overview"


def test_the_program_is_named_as_users_start_it(capsys):
    parser = build_parser()
    assert parser.prog == PROG == "python -m robustbench_skel"
    assert _subparsers(parser)["run"].prog == f"{PROG} run"
    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    assert capsys.readouterr().out.startswith(f"usage: {PROG} transfer ")
    for argv, command in ((["--bogus"], ""), (["run", "--steps", "x"], " run"), (["sweep", "g.toml", "--bogus"], " sweep")):
        code, _, err = _run(capsys, *argv)
        line = _one_line_error(code, err, f"(see `{PROG}{command} --help`)")
        assert "robustbench_skel robustbench_skel" not in line


def test_transfer_and_prepare_show_only_the_flags_they_use(tmp_path, capsys):
    transfer, prepare, run = _flags("transfer"), _flags("prepare"), _flags("run")
    assert "--victims" in transfer and "--victim" not in transfer
    for flag in ("--queries", "--nobox-pool", "--eot-samples", "--checkpoint", "--surrogate", "--config"):
        assert flag not in transfer, flag
    for flag in ("--victim", "--defense", "--eps", "--steps", "--n-samples", "--preset", "--sanity-samples",
                 "--save-adversarial", "--results-dir", "--resume", "--amp", "--queries", "--eot-samples"):
        assert flag not in prepare, flag
    assert {"--attack", "--attack-opt", "--surrogate", "--nobox-pool", "--dataset", "--data-path"} <= prepare
    assert len(prepare) < len(transfer) < len(run)
    # --victim is neither accepted nor read as an abbreviation of --victims
    code, _, err = _run(capsys, "transfer", "--victim", "sgn", "--surrogates", "stgcn", "--results-dir", tmp_path / "r")
    _one_line_error(code, err, "--victim", "--victims")
    assert not (tmp_path / "r").exists()


def test_every_command_that_writes_takes_results_dir():
    for command in ("run", "transfer", "sweep", "leaderboard", "reproduce", "describe", "show"):
        assert "--results-dir" in _flags(command), command


def test_attack_opt_help_points_to_info():
    action = next(a for a in _subparsers(build_parser())["run"]._actions if "--attack-opt" in a.option_strings)
    assert "info ATTACK" in action.help


# ---- info NAME --------------------------------------------------------------------------------------------

def test_info_pgd_lists_its_hyperparameters_with_defaults_and_paper(capsys):
    code, out, err = _run(capsys, "info", "pgd")
    assert code == 0, err
    assert out.startswith("pgd (attack):") and "Madry" in out and "white-box" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("    ")}
    assert rows["eps"][:2] == ["0.01", "--eps"] and rows["steps"][:2] == ["10", "--steps"]
    assert rows["step_size"][:3] == ["None", "->", "0.0025"]  # 2.5 * eps / steps, as a default run records
    assert rows["step_rule"] == ["'sign'", "--attack-opt", "step_rule=..."]


def test_info_stgcn_shows_its_card(capsys):
    code, out, err = _run(capsys, "info", "stgcn")
    assert code == 0, err
    card = json.loads((Path(__file__).resolve().parent.parent / "victims" / "stgcn.json").read_text())
    assert out.startswith("stgcn (victim):") and card["paper"]["title"] in out
    assert f"ntu60-xsub {card['published_accuracy'][0]['top1']:.1f}%" in out
    assert f"input convention: {card['input_convention']}" in out
    assert "checkpoint format: --checkpoint takes a state_dict" in out and card["official_checkpoints"] in out
    accuracy = card["pretrained"]["synth"]["clean_test_accuracy"]
    assert f"shipped weights for synth: clean test accuracy {100 * accuracy:.1f}%" in out


def test_info_synth_describes_the_dataset(capsys):
    code, out, err = _run(capsys, "info", "synth")
    assert code == 0, err
    assert out.startswith("synth (dataset): SYNTHETIC procedural benchmark 2.0")
    assert "splits: train, test, xsub-train, xsub-test, xview-train, xview-test (default test)" in out
    assert "read from your files" not in out  # synth is generated, not read


def test_info_a_defense_and_an_unknown_name(capsys):
    code, out, err = _run(capsys, "info", "trades")
    assert code == 0, err
    assert out.startswith("trades (defense):") and "beta" in out and "--defense-opt" in out and "Zhang" in out
    code, out, err = _run(capsys, "info", "nonexistent")
    _one_line_error(code, err, "'nonexistent'", "list")
    assert out == ""


def test_info_describes_every_registered_name():
    from robustbench_skel.commands.info import describe_name
    from robustbench_skel.registry import ATTACKS, DATASETS, DEFENSES, VICTIMS

    for registry, kind in ((ATTACKS, "attack"), (DEFENSES, "defense"), (VICTIMS, "victim"), (DATASETS, "dataset")):
        for name in registry.names():
            assert f"{name} ({kind}):" in describe_name(name)


# ---- units in summaries -----------------------------------------------------------------------------------

def _record(tmp_path: Path, capsys, checkpoint: Path, *extra: str) -> tuple[dict, str]:
    code, out, err = _run(capsys, "run", "--victim", "tiny-test-victim", "--checkpoint", checkpoint, "--n-samples", "12",
                          "--steps", "3", "--eps", "0.05", "--sanity-samples", "0", "--results-dir", tmp_path / "results",
                          *extra)
    assert code == 0, err
    return read_record(out.strip().splitlines()[-1]), out


def test_run_summary_units_and_sample_ids(tmp_path, capsys, trained_tiny_checkpoint):
    from robustbench_skel.board.report import format_run_summary, format_successful_samples

    record, out = _record(tmp_path, capsys, trained_tiny_checkpoint)
    path = out.strip().splitlines()[-1]
    assert record["attack"]["budget_unit"] == "m" and record["dataset"]["coordinate_unit"] == "m"
    assert "e+0" not in out and "e-0" not in out
    linf = next(line for line in out.splitlines() if line.strip().startswith("L-inf"))
    assert " cm" in linf and " m " not in linf + " "
    # sample ids of the successful examples, and where to find all of them
    ids = [i for i, ok in zip(record["samples"]["id"], record["samples"]["success"]) if ok]
    assert ids, "the tiny victim should be broken at 5 cm"
    assert f"successful examples ({len(ids)} of {sum(record['samples']['attacked'])} attacked): {ids[0]}" in out
    assert path in format_successful_samples(record, path) and f"in {path}" in out
    # a measure equal on every example gets no interval; a count's worst case is a whole number
    constant = {"value": 0.05, "ci95": [0.05, 0.05], "max": 0.05, "n": 3}
    changed = json.loads(json.dumps(record))
    changed["metrics"]["linf_m"] = constant
    line = next(li for li in format_run_summary(changed).splitlines() if li.strip().startswith("L-inf"))
    assert "5 cm" in line and "[" not in line and "every example" in line
    rounded = {"value": 0.010000039, "ci95": [0.010000012, 0.010000066], "max": 0.010000229, "n": 23}  # float32 noise
    changed["metrics"]["linf_m"] = rounded
    line = next(li for li in format_run_summary(changed).splitlines() if li.strip().startswith("L-inf"))
    assert "1 cm" in line and "[" not in line and "every example" in line
    changed["metrics"]["jerk_deviation"] = {"value": 1432.0, "ci95": [1200.0, 1700.0], "max": 2100.0, "n": 3}
    jerk = next(li for li in format_run_summary(changed).splitlines() if "jerk" in li)
    assert "1,432 m/s^3" in jerk and "e+03" not in jerk


def test_budget_unit_follows_the_data():
    from robustbench_skel.board.report import format_run_summary, threat_setting

    assert threat_setting({"norm": "linf", "eps": 0.01, "targeted": False, "budget_unit": "frame units"}) \
        == "L-inf eps=0.01 frame units, untargeted"
    measure = {"value": 0.5, "ci95": [0.4, 0.6], "max": 0.9, "n": 4}
    metrics = {key: dict(measure) for key in ("mean_joint_displacement_cm", "max_joint_displacement_cm", "linf_m",
                                              "l2_rms_m", "bone_length_deviation", "acceleration_deviation", "jerk_deviation")}
    proportion = {"value": 0.5, "ci95": [0.2, 0.8], "count": 2, "n": 4}
    metrics.update(clean_accuracy=proportion, attack_success_rate=proportion, robust_accuracy=proportion,
                   within_budget=proportion, finite=proportion)
    record = {"victim": {"name": "stgcn"}, "seed": 0, "environment": {"device": "cpu"}, "metrics": metrics,
              "timing": {"wall_time_s": 1.0, "attack_time_s": 0.5},
              "dataset": {"name": "kinetics-skeleton", "split": "test", "num_evaluated": 4, "coordinate_unit": "frame units"},
              "attack": {"name": "pgd", "norm": "linf", "eps": 0.01, "targeted": False, "budget_unit": "frame units"}}
    text = format_run_summary(record)
    assert "eps=0.01 frame units" in text and " cm" not in text and " m " not in text
    assert "0.005 frame units" in next(li for li in text.splitlines() if "mean joint displacement" in li)  # 0.5 cm-scaled


# ---- sweep --results-dir ----------------------------------------------------------------------------------

def test_sweep_results_dir_overrides_the_grid(tmp_path, capsys, trained_tiny_checkpoint):
    grid = tmp_path / "grid.toml"
    grid.write_text(f'victims = ["tiny-test-victim"]\nattacks = ["fgsm"]\ncheckpoint = "{trained_tiny_checkpoint}"\n'
                    f'n_samples = 4\nsanity_samples = 0\nresults_dir = "{tmp_path / "from-grid"}"\n')
    code, out, err = _run(capsys, "sweep", grid, "--results-dir", tmp_path / "from-flag")
    assert code == 0, err
    assert len(list((tmp_path / "from-flag" / "runs").glob("*.json"))) == 1
    assert not (tmp_path / "from-grid").exists()


# ---- run --config FILE.toml -------------------------------------------------------------------------------

def test_run_config_file_with_flags_overriding_it(tmp_path, capsys, trained_tiny_checkpoint):
    config = tmp_path / "run.toml"
    config.write_text(f'victim = "tiny-test-victim"\ncheckpoint = "{trained_tiny_checkpoint}"\nattack = "mifgsm"\n'
                      f'eps = 0.02\nsteps = 2\nn_samples = 6\nsanity_samples = 0\nattack_options = {{ decay = 0.5 }}\n'
                      f'results_dir = "{tmp_path / "from-file"}"\n')
    code, out, err = _run(capsys, "run", "--config", config, "--steps", "3", "--results-dir", tmp_path / "from-flag")
    assert code == 0, err
    record = read_record(out.strip().splitlines()[-1])
    assert Path(out.strip().splitlines()[-1]).parent.parent == tmp_path / "from-flag"
    c = record["config"]
    assert (c["victim"], c["attack"], c["eps"], c["n_samples"], c["steps"]) == ("tiny-test-victim", "mifgsm", 0.02, 6, 3)
    assert record["attack"]["hyperparameters"]["decay"] == 0.5 and record["attack"]["hyperparameters"]["steps"] == 3
    assert not (tmp_path / "from-file").exists()


@pytest.mark.parametrize("text,needles", [
    ('victim = "stgcn"\nvictim_count = 3\n', ["unknown key 'victim_count'", "allowed keys:", "n_samples"]),
    ('victim = "stgcn\n', ["not valid TOML"]),
    ('victims = ["stgcn", "sgn"]\n', ["'victims' belongs to a sweep grid", "sweep"]),
    ('n_samples = "many"\n', ["--n-samples", "--config"]),
    ('eps = -1\n', ["eps must be a positive number"]),
    ('attack_options = 3\n', ["attack_options must be a table"]),
    ('max_queries = 5\n', ["--queries", "decision-based"]),
])
def test_bad_config_files_get_one_line(tmp_path, capsys, text, needles):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    code, out, err = _run(capsys, "run", "--config", config, "--results-dir", tmp_path / "results")
    _one_line_error(code, err, *needles)
    assert not (tmp_path / "results").exists()


def test_a_missing_config_file_gets_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "run", "--config", tmp_path / "nope.toml")
    _one_line_error(code, err, "cannot read the run configuration", "nope.toml")


def test_config_keys_are_the_run_settings_of_a_grid():
    from dataclasses import fields

    from robustbench_skel.run.config import FILE_KEYS, RunConfig

    assert set(FILE_KEYS) == {f.name for f in fields(RunConfig)} - {"sweep"}


def test_config_file_and_flags_merge_field_by_field(tmp_path):
    from robustbench_skel.commands.cli import _run_settings

    def settings(text: str, *flags: str):
        config = tmp_path / "run.toml"
        config.write_text(text)
        argv = ["run", "--config", str(config), *flags]
        return _run_settings(build_parser().parse_args(argv), argv)

    values, budgets, _ = settings('dataset = "ntu60-xsub"\nsteps = 5\neps = [0.02, 0.01]\n'
                                  'attack_options = { decay = 0.5, kernel = 3 }\n',
                                  "--data-path", "x.npz", "--attack-opt", "decay=0.9")
    assert (values["dataset"], values["data_path"], values["steps"]) == ("ntu60-xsub", "x.npz", 5)
    assert budgets == [0.01, 0.02]  # a list of budgets in the file is a budget sweep, as --eps 0.01,0.02
    assert values["attack_options"] == {"decay": 0.9, "kernel": 3}  # a flag overrides that option only
    values, budgets, _ = settings('data_path = "x.npz"\neps = 0.02\n', "--eps", "0.03", "--dataset", "ntu60-xsub")
    assert (values["dataset"], budgets) == ("ntu60-xsub", [0.03])
    values, _, _ = settings('data_path = "x.npz"\n')
    assert values["dataset"] == "npz"  # a data file without a dataset name, as on the command line
    values, _, _ = settings('surrogates = "stgcn+ctrgcn"\nresume = false\n', "--seed", "3")
    assert (values["surrogates"], values["resume"], values["seed"]) == (["stgcn", "ctrgcn"], False, 3)
