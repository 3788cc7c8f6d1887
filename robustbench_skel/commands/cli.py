"""Command line: ``python -m robustbench_skel {run,transfer,sweep,info,leaderboard,...}``.

Bad input ends with one line ``error: ...`` on stderr and exit status 2; Ctrl-C ends with status 130
and leaves no partial record.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import UserError

__all__ = ["main", "build_parser", "PROG"]

PROG = "python -m robustbench_skel"  # how users start the program: the name every usage line and message gives


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line rather than the usage block, and a flag must be spelt out
    (``transfer --victim`` would otherwise pass as an abbreviation of ``--victims``)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        # self.prog is PROG for the program and "PROG run" for a command (argparse builds it from the parent's)
        raise UserError(f"{message} (see `{self.prog} --help`)")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """Name the command in "unrecognized arguments" (the top-level parser reports them, not the command's)."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras and self.prog == PROG and getattr(parsed, "command", None):
            hint = ("; transfer evaluates every victim named by --victims NAME[,NAME...]"
                    if parsed.command == "transfer" and "--victim" in extras else "")
            raise UserError(f"unrecognized arguments: {' '.join(extras)}{hint} (see `{PROG} {parsed.command} --help`)")
        return parsed, extras


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def _eps_values(text: str) -> list[float]:
    """``0.01``, a list ``0.005,0.01,0.02``, or a linear range ``start:stop:count``."""
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            n = int(count)
            if n < 2:
                raise ValueError
            a, b = float(start), float(stop)
            values = [a + (b - a) * i / (n - 1) for i in range(n)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a budget like 0.01, a list 0.005,0.01,0.02 or a range start:stop:count, got {text!r}"
        ) from None
    if not values or any(not (v > 0) or v == float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"budgets must be positive finite numbers, got {text!r}")
    return sorted(set(values))


def _attack_option(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as a number, true/false/none, or else a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return key.strip().replace("-", "_"), lowered == "true"
    if lowered in ("none", "null"):
        return key.strip().replace("-", "_"), None
    for cast in (int, float):
        try:
            return key.strip().replace("-", "_"), cast(raw)
        except ValueError:
            pass
    return key.strip().replace("-", "_"), raw


def _positive_int_or(word: str):
    """A whole number of at least 1, or ``word`` (``all``, ``auto``)."""

    def parse(text: str) -> int | str:
        return word if text.strip().lower() == word else _positive_int(text)

    return parse


def _add_victim(p: argparse.ArgumentParser) -> None:
    p.add_argument("--victim", default="stgcn", help="victim recognizer (see `list`, `info NAME`); default stgcn")


def _add_data(p: argparse.ArgumentParser, split: bool = True, unit: bool = True) -> None:
    """Which clips: the dataset, the user's file, and (for attacks) the split and the file's unit."""
    group = p.add_argument_group("data")
    group.add_argument("--dataset", default=None,
                       help="dataset name (see `list`, `info NAME`); default synth, or npz with --data-path")
    group.add_argument("--data-path", default=None, help="your data file or folder")
    if split:
        group.add_argument("--split", default=None, help="dataset split (default test)")
    if unit:
        group.add_argument("--unit", default="m", choices=("m", "cm", "mm"),
                           help="unit of the data file's coordinates (default m); cm and mm are converted to metres")


def _add_machine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, or cuda[:N]")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")


def _add_common(p: argparse.ArgumentParser) -> None:
    """What ``train`` and ``defend`` share: the victim, its data, the device and the seed."""
    _add_victim(p)
    _add_data(p, split=False, unit=False)
    _add_machine(p)


def _add_attack_choice(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    group = p.add_argument_group("attack")
    group.add_argument("--attack", default="pgd", help="attack name (see `list`, `info NAME`); default pgd")
    group.add_argument("--attack-opt", type=_attack_option, action="append", default=[], metavar="KEY=VALUE",
                       help="an attack-specific hyperparameter, e.g. --attack-opt decay=0.5 (repeatable); "
                            "`python -m robustbench_skel info ATTACK` lists them with their defaults")
    return group


def _add_budget(group: argparse._ArgumentGroup) -> None:
    """The budget and the iterations: what an attack run and a transfer matrix share."""
    group.add_argument("--eps", type=_eps_values, default=None,
                       help="budget in the data's unit, metres for the built-in datasets (default: the attack's); "
                            "a list 0.005,0.01,0.02 or range 0.005:0.02:4 sweeps")
    group.add_argument("--steps", type=_positive_int, default=None, help="iterations (default: the attack's)")
    group.add_argument("--step-size", type=_positive_float, default=None,
                       help="step in the budget's unit (default 2.5*eps/steps)")
    group.add_argument("--targeted", action="store_true", help="aim at a random class other than the true one (seeded)")
    group.add_argument("--early-stop", default=None, metavar="RULE",
                       help="when a sample stops: adversarial (on the handed model; white-box default), none (transfer and "
                            "no-box default: every iteration runs), batch (the whole batch stops once the handed model "
                            "misclassifies all of it), or margin=K (a logit margin of K on the handed model)")


def _add_defense(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("defense")
    group.add_argument("--defense", default=None, help="defense name (see `list`, `info NAME`)")
    group.add_argument("--defense-checkpoint", default=None, help="your defended weights for a training-time --defense")


def _add_evaluation(p: argparse.ArgumentParser) -> None:
    """How a run evaluates and where its record goes: ``run`` and ``transfer``."""
    group = p.add_argument_group("evaluation and output")
    group.add_argument("--n-samples", type=_positive_int_or("all"), default=64,
                       help="test samples to evaluate, or 'all' for every clip of the split (default 64)")
    _add_batch_size(group)
    group.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                       help="continue from the last batch an interrupted identical run finished (default; its progress is "
                            "in RESULTS_DIR/.progress/ until the record is written); --no-resume starts afresh")
    group.add_argument("--preset", default=None, choices=("standard", "tasar-paper"),
                       help="a named, pinned evaluation: standard = autoattack (skel-aa-v1) on the full test split; "
                            "tasar-paper = the TASAR reference code's transfer protocol (200 mean-abs steps of eps, batch "
                            "early stop; see robustbench_skel/run/presets.py)")
    group.add_argument("--amp", action="store_true",
                       help="bfloat16 autocast for the attack's forward and backward passes (the evaluator stays float32)")
    group.add_argument("--sanity-samples", type=_non_negative_int, default=16,
                       help="attacked samples re-attacked for the sanity checks (default 16; 0 skips them)")
    group.add_argument("--save-adversarial", action="store_true",
                       help="store the attacked clips' perturbations in RESULTS_DIR/adversarial/ (for `show`)")
    _add_results_dir(group)


def _add_batch_size(p) -> None:
    p.add_argument("--batch-size", type=_positive_int_or("auto"), default=32,
                   help="clips per batch, or 'auto': the largest power of two that fits on the GPU, 32 on a CPU (default 32)")


def _add_results_dir(p, default: str | None = "results", help: str = "where records go (default results/)") -> None:
    p.add_argument("--results-dir", default=default, help=help)


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _given(value: object, default: object) -> object:
    return default if value is None else value


# The RunConfig field each flag sets, where the names differ (--surrogate sets surrogates, ...).
_FIELD_OF_FLAG = {"surrogate": "surrogates", "surrogate_checkpoint": "surrogate_checkpoints",
                  "attack_opt": "attack_options", "queries": "max_queries"}
# Options that apply to one threat model only; given elsewhere they are refused (see _refuse_ignored_options).
_THREAT_ONLY = ("max_queries", "nobox_pool", "eot_samples")


def _refuse_ignored_options(attack: str, defense: str | None, surrogates: bool, given: set[str]) -> None:
    """An option that the attack's threat model (or the defense) would ignore is an error, not a silent no-op.

    ``given`` holds the RunConfig fields the user set (on the command line or in the ``--config`` file)."""
    from ..attack import ThreatModel
    from ..registry import ATTACKS, DEFENSES

    declared = ATTACKS.get(attack).threat_model
    threat = ThreatModel.TRANSFER if surrogates and declared is ThreatModel.WHITE_BOX else declared
    if "max_queries" in given and threat is not ThreatModel.DECISION_BASED:
        raise UserError(f"--queries is a decision-based attack's query budget, but {attack!r} is {threat.value}: "
                        "it would be ignored; drop --queries (max_queries)")
    if "nobox_pool" in given and threat is not ThreatModel.NO_BOX:
        raise UserError(f"--nobox-pool chooses a no-box attack's clips, but {attack!r} is {threat.value}: "
                        "it would be ignored; drop --nobox-pool")
    if "eot_samples" in given:
        randomized = DEFENSES.get(defense) if defense else None
        if randomized is None or not randomized.randomized or threat is not ThreatModel.WHITE_BOX:
            raise UserError("--eot-samples applies to white-box attacks on a randomized --defense (see `list`), which "
                            "this run is not: it would be ignored; drop --eot-samples")


def _flag_values(args: argparse.Namespace) -> dict[str, object]:
    """Every RunConfig field (eps aside) as the command line sets it, a flag a command lacks taking the default."""
    from dataclasses import asdict

    from ..run.config import RunConfig

    defaults = asdict(RunConfig())
    data_path = getattr(args, "data_path", None)
    values = {
        **defaults,
        "victim": getattr(args, "victim", defaults["victim"]), "attack": args.attack,
        "dataset": args.dataset or ("npz" if data_path else "synth"), "data_path": data_path,
        "split": getattr(args, "split", None), "checkpoint": getattr(args, "checkpoint", None),
        "defense": getattr(args, "defense", None), "defense_checkpoint": getattr(args, "defense_checkpoint", None),
        "steps": getattr(args, "steps", None), "step_size": getattr(args, "step_size", None),
        "targeted": getattr(args, "targeted", False), "early_stop": getattr(args, "early_stop", None),
        "n_samples": getattr(args, "n_samples", defaults["n_samples"]), "seed": args.seed, "batch_size": args.batch_size,
        "device": args.device, "results_dir": getattr(args, "results_dir", None) or defaults["results_dir"],
        "sanity_samples": getattr(args, "sanity_samples", defaults["sanity_samples"]),
        "attack_options": dict(args.attack_opt), "surrogates": _names(getattr(args, "surrogate", None)),
        "surrogate_checkpoints": getattr(args, "surrogate_checkpoint", None),
        "nobox_pool": _given(getattr(args, "nobox_pool", None), defaults["nobox_pool"]),
        "max_queries": _given(getattr(args, "queries", None), defaults["max_queries"]),
        "eot_samples": _given(getattr(args, "eot_samples", None), defaults["eot_samples"]),
        "resume": getattr(args, "resume", defaults["resume"]), "preset": getattr(args, "preset", None),
        "amp": getattr(args, "amp", False), "save_adversarial": getattr(args, "save_adversarial", False),
        "unit": getattr(args, "unit", defaults["unit"]),
    }
    values.pop("eps")
    values.pop("sweep")
    return values


def run_config(args: argparse.Namespace, **changes: object) -> "RunConfig":
    """The :class:`RunConfig` of a ``run``-like command line (``changes`` override fields)."""
    from ..run.config import RunConfig

    return RunConfig(**{**_flag_values(args), "eps": None, **changes})


def _threat_options_given(args: argparse.Namespace) -> set[str]:
    flag_of = {field: flag for flag, field in _FIELD_OF_FLAG.items()}
    return {name for name in _THREAT_ONLY if getattr(args, flag_of.get(name, name), None) is not None}


def _explicit_flags(argv: Sequence[str]) -> set[str]:
    """The RunConfig fields that ``argv`` (a ``run`` command line) sets itself, rather than by default."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for action in commands.choices["run"]._actions:
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_args(list(argv)))) - {"command", "config"}
    return {_FIELD_OF_FLAG.get(dest, dest) for dest in given}


def _run_settings(args: argparse.Namespace, argv: Sequence[str]) -> tuple[dict[str, object], list, set[str]]:
    """``run``'s settings: the ``--config`` file's, overridden by the flags given; with the budgets to run
    (``[None]``: the attack's default) and the fields the user set (file or flags)."""
    values = _flag_values(args)
    budgets = args.eps or [None]
    if not args.config:
        return values, budgets, _threat_options_given(args)
    from ..run.config import read_config_file

    from_file = read_config_file(args.config)
    flags = _explicit_flags(argv)
    merged = {**values, **{k: v for k, v in from_file.items() if k != "eps"}}
    for name in flags - {"eps", "dataset"}:
        merged[name] = values[name]
    if "dataset" in flags:
        merged["dataset"] = args.dataset
    elif "dataset" not in from_file:  # a data file without a dataset name is an npz, as without --config
        merged["dataset"] = "npz" if merged["data_path"] else "synth"
    if "attack_options" in from_file and "attack_options" in flags:  # a flag overrides that option only
        merged["attack_options"] = {**from_file["attack_options"], **values["attack_options"]}
    if "eps" in from_file and "eps" not in flags:
        budgets = from_file["eps"]
    return merged, budgets, (set(from_file) | flags) & set(_THREAT_ONLY)


def run_configs(args: argparse.Namespace, write: bool = True) -> list["RunConfig"]:
    """The configuration of every budget of a ``run`` command line (one per ``--eps`` value, or the
    ``--config`` file's ``eps`` list), every one of them checked before the first runs; shared by ``run``
    and the Python API's ``benchmark``. ``args.argv`` (the words parsed) tells the flags given from the
    defaults when a ``--config`` file is read."""
    from ..run.config import RunConfig
    from ..run.record import new_run_id
    from ..run.run_checks import validate_run_config

    settings, budgets, given = _run_settings(args, getattr(args, "argv", None) or ["run"])
    sweep = {"id": new_run_id(), "eps": budgets} if len(budgets) > 1 else None
    configs = [RunConfig(**settings, eps=eps, sweep=sweep) for eps in budgets]
    try:
        for config in configs:  # every budget's configuration is checked before the first one runs
            validate_run_config(config, write=write)
        _refuse_ignored_options(settings["attack"], settings["defense"], bool(settings["surrogates"]), given)
    except UserError as exc:
        if not args.config:
            raise
        raise UserError(f"{exc} (the settings of --config {args.config}, with the flags given)") from None
    return configs


def config_from_command(record: dict) -> "RunConfig":
    """The :class:`RunConfig` of an old record that has no ``config``, read back from its ``run`` command."""
    import shlex

    command = record.get("command") or ""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UserError(f"the record's command {command!r} cannot be split into words ({exc}); it cannot be reproduced") from None
    while words and words[0] != "run" and words[0] not in ("transfer", "prepare"):
        words.pop(0)  # "python -m robustbench_skel"
    if not words or words[0] != "run":
        raise UserError(f"the record has no config and its command {command!r} is not a `run`; it cannot be reproduced")
    try:
        args = build_parser().parse_args(words)
    except UserError as exc:
        raise UserError(f"the record's command {command!r} no longer parses ({exc})") from None
    eps = record["attack"].get("eps") if args.eps and len(args.eps) > 1 else (args.eps[0] if args.eps else None)
    return run_config(args, eps=eps, sweep=record.get("sweep"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Adversarial robustness benchmark for skeleton action recognition.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="attack a victim and write a run record")
    run.add_argument("--config", default=None, metavar="FILE.toml",
                     help="read the run's settings from a TOML file with the keys of a sweep grid's shared settings "
                          "(victim, attack, eps, n_samples, ...); flags given here override the file")
    _add_victim(run)
    run.add_argument("--checkpoint", default=None, help="your weights (state_dict, {'state_dict': ...}, module. prefixes)")
    _add_machine(run)
    _add_data(run)
    attack = _add_attack_choice(run)
    _add_budget(attack)
    threat = run.add_argument_group("threat model")
    threat.add_argument("--surrogate", default=None, metavar="NAME[,NAME...]",
                        help="transfer: craft on these surrogate victims (a logit ensemble when several); the victim is never handed over")
    threat.add_argument("--surrogate-checkpoint", action="append", default=None, metavar="PATH",
                        help="your weights for each --surrogate, in order (repeat once per surrogate)")
    # None = not given (the RunConfig default applies): an option given where it does not apply is refused.
    threat.add_argument("--nobox-pool", default=None, choices=("train", "test"),
                        help="no-box: the split whose clips, labels removed, the attacker learns from (default train)")
    threat.add_argument("--queries", type=_positive_int, default=None,
                        help="decision-based: query budget per sample (default 1000)")
    threat.add_argument("--eot-samples", type=_positive_int, default=None,
                        help="random draws averaged per gradient against a randomized defense (EOT; default 8)")
    _add_defense(run)
    _add_evaluation(run)

    transfer = sub.add_parser("transfer", help="surrogate x victim matrix: craft once per surrogate, evaluate on every victim")
    matrix = transfer.add_argument_group("matrix")
    matrix.add_argument("--surrogates", required=True, metavar="S[,S+S2...]",
                        help="one matrix row per comma-separated entry; join names with + for an ensemble (stgcn+ctrgcn)")
    matrix.add_argument("--victims", default="all",
                        help="the matrix's columns: 'all' (every victim with shipped weights for the dataset) or names")
    matrix.add_argument("--heatmap", default=None,
                        help="PNG path of the heatmap (default RESULTS_DIR/transfer_<attack>_<dataset>.png)")
    _add_machine(transfer)
    _add_data(transfer)
    attack = _add_attack_choice(transfer)
    _add_budget(attack)
    _add_defense(transfer)
    _add_evaluation(transfer)

    prepare = sub.add_parser("prepare", help="build an attack's costly artefacts ahead of time (Bayesian heads, SWAG, manifolds) "
                                             "in the artefact cache")
    _add_attack_choice(prepare)
    prepare.add_argument("--surrogate", default=None, metavar="NAME[,NAME...]", help="the surrogate(s) of a transfer attack")
    prepare.add_argument("--nobox-pool", default=None, choices=("train", "test"),
                         help="no-box: the split whose clips, labels removed, the attacker learns from (default train)")
    _add_machine(prepare)
    _add_data(prepare)
    _add_batch_size(prepare)

    train = sub.add_parser("train", help="train a victim on a dataset's train split")
    _add_common(train)
    train.add_argument("--epochs", type=_positive_int, default=None, help="default: the victim's recipe (20)")
    train.add_argument("--batch-size", type=_positive_int, default=None, help="default: the victim's recipe (32)")
    train.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: the victim's recipe)")
    train.add_argument("--optimizer", choices=("sgd", "adamw"), default=None,
                       help="sgd (Nesterov) or adamw (default: the victim's recipe, sgd unless its official code uses AdamW)")
    train.add_argument("--out", default=None, help="output .pt (default: the user cache)")
    train.add_argument("--half", action="store_true", help="store float16 weights (half the size; a tensor beyond float16 range stays float32)")
    train.add_argument("--resume", action="store_true",
                       help="continue an interrupted run from OUT.resume (written after every epoch)")
    train.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                       help="bfloat16 autocast while training (default: the victim's recipe, on)")

    defend = sub.add_parser("defend", help="train a training-time defense's weights (pgd-at, trades, beat)")
    _add_common(defend)
    defend.add_argument("--defense", required=True, help="training-time defense (see `list`)")
    defend.add_argument("--checkpoint", default=None, help="the victim's starting weights (default: its shipped weights)")
    defend.add_argument("--epochs", type=_positive_int, default=None, help="default: the defense's")
    defend.add_argument("--batch-size", type=_positive_int, default=None, help="default: the defense's (32)")
    defend.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: the defense's)")
    defend.add_argument("--defense-opt", type=_attack_option, action="append", default=[], metavar="KEY=VALUE",
                        help="a defense hyperparameter, e.g. --defense-opt beta=6 (repeatable)")
    defend.add_argument("--out", default=None, help="output .pt (default: the user cache)")
    defend.add_argument("--half", action="store_true", help="store float16 weights")
    defend.add_argument("--resume", action="store_true", help="continue an interrupted run from OUT.resume")

    sub.add_parser("list", help="list victims, attacks, defenses and datasets")

    describe = sub.add_parser("describe", help="a dataset's card: classes, clips per split, sensor model, and a figure of every class")
    describe.add_argument("dataset", help="dataset name (see `list`), e.g. synth")
    describe.add_argument("--out", default=None, help="PNG of one still per class (default RESULTS_DIR/figures/<dataset>_classes.png)")
    _add_results_dir(describe, help="where the figure goes when --out is not given (default results/)")

    info = sub.add_parser("info", help="an attack's or defense's hyperparameters with their defaults and paper, a victim's "
                                       "card, or a dataset's description")
    info.add_argument("name", help="an attack, defense, victim or dataset name (see `list`), e.g. pgd, stgcn, synth")

    board = sub.add_parser("leaderboard", help="build results/leaderboard.{md,csv,tex,html} from the run records")
    board.add_argument("--results-dir", default="results", help="folder holding runs/*.json; the tables go next to it")
    board.add_argument("--ci-style", choices=("brackets", "pm"), default="brackets",
                       help="confidence intervals as 38.4 [27.6, 51.7] (default) or 38.4 ± 12.1 (half-width)")
    board.add_argument("--formats", default="md,csv,tex,html", help="comma-separated subset of md,csv,tex,html (default all)")
    board.add_argument("--mix-step-rules", action="store_true",
                       help="put transfer records of different step rules (rule, step, iterations) in one matrix, with a "
                            "step column; by default each matrix holds one rule")
    board.add_argument("--embed-plots", action="store_true",
                       help="inline the plots in leaderboard.html as data URIs, for a page that travels alone (about "
                            "4 MiB with 30 figures); by default it links the PNG files written beside it")
    board.add_argument("--skip-invalid", action="store_true",
                       help="leave out records that break the record schema, listing each on stderr (default: refuse them)")

    show = sub.add_parser("show", help="animate one sample's clean and adversarial skeletons side by side (GIF/MP4, PNG stills)")
    show.add_argument("record", help="a run record written with --save-adversarial")
    show.add_argument("--sample", required=True, help="the sample id (see the record's samples.id)")
    show.add_argument("--out", default=None,
                      help="FILE.gif or FILE.mp4 (default: RESULTS_DIR/figures/<record>_<sample>.gif)")
    _add_results_dir(show, default=None,
                     help="where the animation goes when --out is not given (default: the results folder the record is in)")
    show.add_argument("--frames", default=None, metavar="0,12,24", help="also write a PNG of these frames")

    compare = sub.add_parser("compare", help="paired test of two records on the same victim, clips and budget "
                                             "(exact McNemar, difference with its interval)")
    compare.add_argument("record_a", help="a run record (.json)")
    compare.add_argument("record_b", help="another run record on the same victim, clips and budget")

    reproduce = sub.add_parser("reproduce", help="re-run a record's configuration and compare every metric")
    reproduce.add_argument("record", help="the run record (.json) to reproduce")
    reproduce.add_argument("--results-dir", default=None, help="write the new record here (default: nothing is written)")
    reproduce.add_argument("--device", default=None, help="override the recorded device (cpu, cuda, auto)")

    sweep = sub.add_parser("sweep", help="run a TOML grid (victims x attacks x budgets x surrogates x defenses), skipping runs already recorded")
    sweep.add_argument("grid", help="the grid file (.toml); see robustbench_skel/commands/sweep.py for its keys")
    sweep.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local: one run after another in this process (default); ray: one Ray task per run")
    sweep.add_argument("--address", default=None, metavar="HOST:PORT", help="the Ray cluster to use (default: a new local one)")
    sweep.add_argument("--cpus-per-run", type=_positive_int, default=1, help="Ray: CPUs reserved per run (default 1)")
    sweep.add_argument("--only", action="append", default=[], metavar="AXIS=V1,V2",
                       help="run only the grid's runs with these values on an axis (victims, attacks, budgets, "
                            "surrogates, defenses), settings unchanged; repeat for several axes")
    sweep.add_argument("--status", action="store_true",
                       help="run nothing: list each run as recorded, to run, or blocked (and why)")
    _add_results_dir(sweep, default=None, help="where the records go, for every run of the grid (default: the grid's "
                                               "results_dir, else results/)")

    bench = sub.add_parser("bench", help="time victims (forward, forward+backward) or one attack iteration")
    bench.add_argument("--victims", default=None,
                       help="'all' or comma-separated victim names: per-clip forward and forward+backward timings")
    bench.add_argument("--victim", default="stgcn", help="victim for --attack (default stgcn)")
    bench.add_argument("--attack", default=None, help="attack to time against a bare forward+backward pass")
    bench.add_argument("--surrogate", default=None, metavar="NAME[,NAME...]",
                       help="transfer: time --attack on these surrogates (synth weights) and its preparation")
    bench.add_argument("--eps", type=_positive_float, default=None,
                       help="the --attack's budget in metres (default: the attack's)")
    bench.add_argument("--steps", type=_positive_int, default=None,
                       help="the --attack's iterations, for the per-iteration time (default: the attack's)")
    bench.add_argument("--batch-size", type=_positive_int, default=32, help="clips per timed batch (default 32)")
    bench.add_argument("--repeats", type=_positive_int, default=3,
                       help="timed repetitions after one warm-up; the median is reported (default 3)")
    bench.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, or cuda[:N]")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from ..board.report import format_run_summary, format_successful_samples, format_sweep_summary
    from ..run.runner import run_benchmark

    configs = run_configs(args)
    results = []
    for config in configs:
        result = run_benchmark(config, progress=True)
        print(format_run_summary(result.record))
        print(format_successful_samples(result.record, result.path))
        print()
        results.append(result)
    if len(configs) > 1:
        print(format_sweep_summary([r.record for r in results]))
    for result in results:
        print(result.path)
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from .transfer_matrix import run_transfer_matrix

    if args.eps and len(args.eps) > 1:
        raise UserError("transfer takes one --eps; run it once per budget")
    _refuse_ignored_options(args.attack, args.defense, True, _threat_options_given(args))
    config = run_config(args, eps=args.eps[0] if args.eps else None)
    rows = [r.split("+") for r in _names(args.surrogates) or []]
    matrix = run_transfer_matrix(config, rows, args.victims, heatmap=args.heatmap, progress=True)
    print(matrix.table)
    print()
    print(f"heatmap: {matrix.heatmap}")
    for path in matrix.paths:
        print(path)
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from ..run.runner import prepare_attack

    _refuse_ignored_options(args.attack, None, bool(args.surrogate), _threat_options_given(args))
    config = run_config(args)
    for entry in prepare_attack(config, progress=True):
        print(f"{entry['kind']}: sha256 {entry['sha256']} ({entry['file']})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ..learn.training import TrainConfig, train_victim

    config = TrainConfig(
        victim=args.victim, dataset=args.dataset or ("npz" if args.data_path else "synth"), data_path=args.data_path,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
        out=args.out, half=args.half, bf16=args.bf16, resume=args.resume, optimizer=args.optimizer,
    )
    result = train_victim(config)
    print(f"train accuracy (last epoch) {100 * result.train_accuracy:.1f}%, clean test accuracy {100 * result.test_accuracy:.1f}%")
    c = result.config
    print(f"recipe: {c.epochs} epochs, batch {c.batch_size}, lr {c.lr}, weight decay {c.weight_decay}, bf16 {c.bf16}, seed {c.seed}, "
          f"optimizer {c.optimizer}, grad clip {c.grad_clip}, label smoothing {c.label_smoothing}")
    print(f"{result.seconds:.0f} s; sha256 {result.sha256}")
    print(result.path)
    return 0


def _cmd_defend(args: argparse.Namespace) -> int:
    from ..learn.adversarial_training import DefendConfig, train_defense

    config = DefendConfig(
        victim=args.victim, defense=args.defense, dataset=args.dataset or ("npz" if args.data_path else "synth"),
        data_path=args.data_path, checkpoint=args.checkpoint, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, device=args.device, out=args.out, half=args.half, resume=args.resume,
        options=dict(args.defense_opt),
    )
    result = train_defense(config)
    c = result.config
    print(f"clean train accuracy (last epoch) {100 * result.train_accuracy:.1f}%, clean test accuracy {100 * result.test_accuracy:.1f}%")
    print(f"recipe: {c.epochs} epochs, batch {c.batch_size}, lr {c.lr}, seed {c.seed}; {result.defense.hyperparameters()}")
    print(f"{result.seconds:.0f} s; sha256 {result.sha256}")
    print(result.path)
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ..registry import ATTACKS, DATASETS, DEFENSES, VICTIMS
    from ..victim import model_card

    def show(title: str, registry, describe) -> None:
        print(f"{title}:")
        items = list(registry.items())
        if not items:
            print("  (none registered)")
        width = max((len(name) for name, _ in items), default=0)
        for name, obj in items:
            print(f"  {name:<{width}}  {describe(obj)}")
        print()

    def weights(name: str) -> str:
        shipped = sorted(model_card(name).get("pretrained", {}))
        return f"[weights: {', '.join(shipped)}]" if shipped else "[no shipped weights: --checkpoint]"

    show("victims", VICTIMS, lambda c: f"{weights(c.name)} {c.description}")
    show("attacks", ATTACKS, lambda c: f"[{c.threat_model.value}, {c.norm}] {c.description}")
    show("defenses", DEFENSES, lambda c: c.description)
    show("datasets", DATASETS, lambda c: c.description)
    return 0


def _cmd_describe(args: argparse.Namespace) -> int:
    from .describe import describe_dataset

    text, figure = describe_dataset(args.dataset, out=args.out, results_dir=args.results_dir)
    print(text)
    if figure is not None:
        print(figure)
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..board.leaderboard import build_leaderboard

    skipped: list = []
    written, rows = build_leaderboard(args.results_dir, ci_style=args.ci_style, formats=args.formats,
                                      mix_step_rules=args.mix_step_rules, skip_invalid=args.skip_invalid, skipped=skipped,
                                      embed_plots=args.embed_plots)
    for _, why in skipped:
        print(f"skipped invalid record: {why}", file=sys.stderr)
    print(f"{rows} rows" + (f" ({len(skipped)} invalid record(s) skipped)" if skipped else ""))
    for path in written:
        if path.name.startswith("leaderboard."):
            print(path)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .benchcli import bench_attack, bench_victims

    if bool(args.victims) == bool(args.attack):
        raise UserError("bench needs exactly one of --victims all|NAMES or --attack NAME")
    from ..errors import suggest
    from ..registry import VICTIMS

    for name in _names(args.surrogate) or []:
        if name not in VICTIMS:
            raise UserError(f"unknown surrogate {name!r}; {suggest(name, VICTIMS.names())}")
    if args.victims:
        print(bench_victims(args.victims, args.batch_size, args.device, args.repeats))
    else:
        print(bench_attack(args.attack, args.victim, args.batch_size, args.device, args.repeats, args.eps, args.steps,
                           _names(args.surrogate)))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from .show import show_sample

    for path in show_sample(args.record, args.sample, out=args.out, frames=args.frames, results_dir=args.results_dir):
        print(path)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .info import describe_name

    print(describe_name(args.name))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..board.paired import format_comparison
    from ..run.record import read_record

    a, b = read_record(args.record_a), read_record(args.record_b)
    print(format_comparison(a, b, Path(args.record_a).name, Path(args.record_b).name))
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce_record

    report = reproduce_record(args.record, results_dir=args.results_dir, device=args.device,
                              from_command=config_from_command, progress=True)
    print(report.table)
    if report.differing:
        print(f"error: not reproduced: {', '.join(report.differing)} differ", file=sys.stderr)
        return 1
    print("reproduced: every metric matches")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweep import grid_status, parse_only, run_sweep, status_lines

    if args.status:
        print("\n".join(status_lines(args.grid, grid_status(args.grid, results_dir=args.results_dir,
                                                              only=parse_only(args.only)))))
        return 0
    result = run_sweep(args.grid, executor=args.executor, address=args.address, cpus_per_run=args.cpus_per_run,
                       progress=True, results_dir=args.results_dir, only=parse_only(args.only))
    print(f"{len(result.paths)} run(s) written, {result.skipped} already recorded, {result.seconds:.1f} s")
    for path in result.paths:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv  # `run --config` tells the flags given from the defaults
        handlers = {"run": _cmd_run, "transfer": _cmd_transfer, "prepare": _cmd_prepare, "train": _cmd_train,
                    "list": _cmd_list, "describe": _cmd_describe, "info": _cmd_info, "leaderboard": _cmd_leaderboard,
                    "bench": _cmd_bench, "defend": _cmd_defend, "show": _cmd_show, "compare": _cmd_compare,
                    "reproduce": _cmd_reproduce, "sweep": _cmd_sweep}
        handler = handlers[args.command]
        return handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
