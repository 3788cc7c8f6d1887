"""Command line: ``python -m robustbench_skel {run,train,list,leaderboard}``.

Bad input ends with one line ``error: ...`` on stderr and exit status 2; Ctrl-C ends with status 130
and leaves no partial record.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import UserError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line rather than the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        words = self.prog.split()  # "robustbench_skel" for the program, "robustbench_skel run" for a command
        command = f" {words[-1]}" if len(words) > 1 else ""
        raise UserError(f"{message} (see `python -m robustbench_skel{command} --help`)")


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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--victim", default="stgcn", help="victim recognizer (see `list`); default stgcn")
    p.add_argument("--dataset", default=None, help="dataset name (see `list`); default synth, or npz with --data-path")
    p.add_argument("--data-path", default=None, help="your data file or folder")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, or cuda[:N]")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")


def _add_attack_args(p: argparse.ArgumentParser) -> None:
    """What configures an attack run, shared by ``run``, ``transfer`` and ``prepare``."""
    p.add_argument("--attack", default="pgd", help="attack name (see `list`); default pgd")
    p.add_argument("--defense", default=None, help="defense name (see `list`)")
    p.add_argument("--defense-checkpoint", default=None, help="your defended weights for a training-time --defense")
    p.add_argument("--split", default=None, help="dataset split (default test)")
    p.add_argument("--eps", type=_eps_values, default=None,
                   help="budget in metres (default: the attack's); a list 0.005,0.01,0.02 or range 0.005:0.02:4 sweeps")
    p.add_argument("--steps", type=_positive_int, default=None, help="iterations (default: the attack's)")
    p.add_argument("--step-size", type=_positive_float, default=None, help="step in metres (default 2.5*eps/steps)")
    p.add_argument("--targeted", action="store_true", help="aim at a random class other than the true one (seeded)")
    p.add_argument("--attack-opt", type=_attack_option, action="append", default=[], metavar="KEY=VALUE",
                   help="an attack-specific hyperparameter, e.g. --attack-opt decay=0.5 (repeatable; see `list`)")
    p.add_argument("--early-stop", default=None, metavar="RULE",
                   help="when a sample stops: adversarial (on the handed model; white-box default), none (transfer and "
                        "no-box default: every iteration runs), batch (the whole batch stops once the handed model "
                        "misclassifies all of it), or margin=K (a logit margin of K on the handed model)")
    # None = not given (the RunConfig default applies): an option given where it does not apply is refused.
    p.add_argument("--nobox-pool", default=None, choices=("train", "test"),
                   help="no-box: the split whose clips, labels removed, the attacker learns from (default train)")
    p.add_argument("--queries", type=_positive_int, default=None, help="decision-based: query budget per sample (default 1000)")
    p.add_argument("--eot-samples", type=_positive_int, default=None,
                   help="random draws averaged per gradient against a randomized defense (EOT; default 8)")
    p.add_argument("--n-samples", type=_positive_int_or("all"), default=64,
                   help="test samples to evaluate, or 'all' for every clip of the split (default 64)")
    p.add_argument("--batch-size", type=_positive_int_or("auto"), default=32,
                   help="clips per batch, or 'auto': the largest power of two that fits on the GPU, 32 on a CPU (default 32)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the last batch an interrupted identical run finished (default; its progress is "
                        "in RESULTS_DIR/.progress/ until the record is written); --no-resume starts afresh")
    p.add_argument("--preset", default=None, choices=("standard", "tasar-paper"),
                   help="a named, pinned evaluation: standard = autoattack (skel-aa-v1) on the full test split; "
                        "tasar-paper = the TASAR reference code's transfer protocol (200 mean-abs steps of eps, batch "
                        "early stop; see robustbench_skel/run/presets.py)")
    p.add_argument("--amp", action="store_true",
                   help="bfloat16 autocast for the attack's forward and backward passes (the evaluator stays float32)")
    p.add_argument("--results-dir", default="results", help="where records go (default results/)")
    p.add_argument("--sanity-samples", type=_non_negative_int, default=16,
                   help="attacked samples re-attacked for the sanity checks (default 16; 0 skips them)")
    p.add_argument("--save-adversarial", action="store_true",
                   help="store the attacked clips' perturbations in results/adversarial/ (for `show`)")
    p.add_argument("--unit", default="m", choices=("m", "cm", "mm"),
                   help="unit of the data file's coordinates (default m); cm and mm are converted to metres")


def _names(text: str | None) -> list[str] | None:
    return [n.strip() for n in text.split(",") if n.strip()] if text else None


def _given(value: object, default: object) -> object:
    return default if value is None else value


def _refuse_ignored_options(args: argparse.Namespace, surrogates: bool) -> None:
    """An option that the attack's threat model (or the defense) would ignore is an error, not a silent no-op."""
    from ..attack import ThreatModel
    from ..registry import ATTACKS, DEFENSES

    declared = ATTACKS.get(args.attack).threat_model
    threat = ThreatModel.TRANSFER if surrogates and declared is ThreatModel.WHITE_BOX else declared
    if args.queries is not None and threat is not ThreatModel.DECISION_BASED:
        raise UserError(f"--queries is a decision-based attack's query budget, but {args.attack!r} is {threat.value}: "
                        "it would be ignored; drop --queries")
    if args.nobox_pool is not None and threat is not ThreatModel.NO_BOX:
        raise UserError(f"--nobox-pool chooses a no-box attack's clips, but {args.attack!r} is {threat.value}: "
                        "it would be ignored; drop --nobox-pool")
    if args.eot_samples is not None:
        defense = DEFENSES.get(args.defense) if args.defense else None
        if defense is None or not defense.randomized or threat is not ThreatModel.WHITE_BOX:
            raise UserError("--eot-samples applies to white-box attacks on a randomized --defense (see `list`), which "
                            "this run is not: it would be ignored; drop --eot-samples")


def run_config(args: argparse.Namespace, **changes: object) -> "RunConfig":
    """The :class:`RunConfig` of a ``run``-like command line (``changes`` override fields)."""
    from ..run.config import RunConfig

    defaults = RunConfig()
    values = dict(
        victim=args.victim, attack=args.attack, dataset=args.dataset or ("npz" if args.data_path else "synth"),
        data_path=args.data_path, split=args.split, checkpoint=getattr(args, "checkpoint", None), defense=args.defense,
        eps=None, steps=args.steps, step_size=args.step_size, targeted=args.targeted, n_samples=args.n_samples,
        seed=args.seed, batch_size=args.batch_size, device=args.device, results_dir=args.results_dir,
        sanity_samples=args.sanity_samples, attack_options=dict(args.attack_opt),
        surrogates=_names(getattr(args, "surrogate", None)), surrogate_checkpoints=getattr(args, "surrogate_checkpoint", None),
        early_stop=args.early_stop, nobox_pool=_given(args.nobox_pool, defaults.nobox_pool),
        max_queries=_given(args.queries, defaults.max_queries),
        defense_checkpoint=args.defense_checkpoint, eot_samples=_given(args.eot_samples, defaults.eot_samples),
        resume=args.resume, preset=args.preset, amp=args.amp,
        save_adversarial=getattr(args, "save_adversarial", False), unit=getattr(args, "unit", "m"),
    )
    values.update(changes)
    return RunConfig(**values)


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
    parser = _Parser(prog="robustbench_skel", description="Adversarial robustness benchmark for skeleton action recognition.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="attack a victim and write a run record")
    _add_common(run)
    _add_attack_args(run)
    run.add_argument("--checkpoint", default=None, help="your weights (state_dict, {'state_dict': ...}, module. prefixes)")
    run.add_argument("--surrogate", default=None, metavar="NAME[,NAME...]",
                     help="transfer: craft on these surrogate victims (a logit ensemble when several); the victim is never handed over")
    run.add_argument("--surrogate-checkpoint", action="append", default=None, metavar="PATH",
                     help="your weights for each --surrogate, in order (repeat once per surrogate)")

    transfer = sub.add_parser("transfer", help="surrogate x victim matrix: craft once per surrogate, evaluate on every victim")
    _add_common(transfer)
    _add_attack_args(transfer)
    transfer.add_argument("--surrogates", required=True, metavar="S[,S+S2...]",
                          help="one matrix row per comma-separated entry; join names with + for an ensemble (stgcn+ctrgcn)")
    transfer.add_argument("--victims", default="all", help="'all' (every victim with shipped weights for the dataset) or names")
    transfer.add_argument("--heatmap", default=None, help="PNG path of the heatmap (default results/transfer_<attack>_<dataset>.png)")

    prepare = sub.add_parser("prepare", help="build an attack's costly artefacts ahead of time (Bayesian heads, SWAG, manifolds)")
    _add_common(prepare)
    _add_attack_args(prepare)
    prepare.add_argument("--surrogate", default=None, metavar="NAME[,NAME...]", help="the surrogate(s) of a transfer attack")

    train = sub.add_parser("train", help="train a victim on a dataset's train split")
    _add_common(train)
    train.add_argument("--epochs", type=_positive_int, default=None, help="default: the victim's recipe (20)")
    train.add_argument("--batch-size", type=_positive_int, default=None, help="default: the victim's recipe (32)")
    train.add_argument("--lr", type=_positive_float, default=None, help="peak learning rate (default: the victim's recipe)")
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
    describe.add_argument("dataset", help="dataset name (see `list`), e.g. synth2")
    describe.add_argument("--out", default=None, help="PNG of one still per class (default results/figures/<dataset>_classes.png)")

    board = sub.add_parser("leaderboard", help="build results/leaderboard.{md,csv,tex,html} from the run records")
    board.add_argument("--results-dir", default="results", help="folder holding runs/*.json; the tables go next to it")
    board.add_argument("--ci-style", choices=("brackets", "pm"), default="brackets",
                       help="confidence intervals as 38.4 [27.6, 51.7] (default) or 38.4 ± 12.1 (half-width)")
    board.add_argument("--formats", default="md,csv,tex,html", help="comma-separated subset of md,csv,tex,html (default all)")
    board.add_argument("--mix-step-rules", action="store_true",
                       help="put transfer records of different step rules (rule, step, iterations) in one matrix, with a "
                            "step column; by default each matrix holds one rule")
    board.add_argument("--skip-invalid", action="store_true",
                       help="leave out records that break the record schema, listing each on stderr (default: refuse them)")

    show = sub.add_parser("show", help="animate one sample's clean and adversarial skeletons side by side (GIF/MP4, PNG stills)")
    show.add_argument("record", help="a run record written with --save-adversarial")
    show.add_argument("--sample", required=True, help="the sample id (see the record's samples.id)")
    show.add_argument("--out", default=None, help="FILE.gif or FILE.mp4 (default results/figures/<record>_<sample>.gif)")
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

    bench = sub.add_parser("bench", help="time victims (forward, forward+backward) or one attack iteration")
    bench.add_argument("--victims", default=None, help="'all' or comma-separated victim names: per-clip timings")
    bench.add_argument("--victim", default="stgcn", help="victim for --attack (default stgcn)")
    bench.add_argument("--attack", default=None, help="attack to time against a bare forward+backward pass")
    bench.add_argument("--surrogate", default=None, metavar="NAME[,NAME...]",
                       help="transfer: time --attack on these surrogates (synth weights) and its preparation")
    bench.add_argument("--eps", type=_positive_float, default=None)
    bench.add_argument("--steps", type=_positive_int, default=None)
    bench.add_argument("--batch-size", type=_positive_int, default=32)
    bench.add_argument("--repeats", type=_positive_int, default=3)
    bench.add_argument("--device", default="auto")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from ..board.report import format_run_summary
    from ..run.runner import run_benchmark

    from ..run.record import new_run_id
    from ..board.report import format_sweep_summary

    from ..run.run_checks import validate_run_config

    _refuse_ignored_options(args, bool(args.surrogate))
    budgets = args.eps or [None]
    sweep = {"id": new_run_id(), "eps": budgets} if len(budgets) > 1 else None
    for eps in budgets:  # every budget's configuration is checked before the first one runs
        validate_run_config(run_config(args, eps=eps, sweep=sweep))
    results = []
    for eps in budgets:
        config = run_config(args, eps=eps, sweep=sweep)
        result = run_benchmark(config, progress=True)
        print(format_run_summary(result.record))
        print()
        results.append(result)
    if sweep:
        print(format_sweep_summary([r.record for r in results]))
    for result in results:
        print(result.path)
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from .transfer_matrix import run_transfer_matrix

    if args.eps and len(args.eps) > 1:
        raise UserError("transfer takes one --eps; run it once per budget")
    _refuse_ignored_options(args, True)
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

    _refuse_ignored_options(args, bool(args.surrogate))
    config = run_config(args, eps=args.eps[0] if args.eps else None)
    for entry in prepare_attack(config, progress=True):
        print(f"{entry['kind']}: sha256 {entry['sha256']} ({entry['file']})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from ..learn.training import TrainConfig, train_victim

    config = TrainConfig(
        victim=args.victim, dataset=args.dataset or ("npz" if args.data_path else "synth"), data_path=args.data_path,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
        out=args.out, half=args.half, bf16=args.bf16, resume=args.resume,
    )
    result = train_victim(config)
    print(f"train accuracy (last epoch) {100 * result.train_accuracy:.1f}%, clean test accuracy {100 * result.test_accuracy:.1f}%")
    c = result.config
    print(f"recipe: {c.epochs} epochs, batch {c.batch_size}, lr {c.lr}, weight decay {c.weight_decay}, bf16 {c.bf16}, seed {c.seed}")
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

    text, figure = describe_dataset(args.dataset, out=args.out)
    print(text)
    if figure is not None:
        print(figure)
    return 0


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from ..board.leaderboard import build_leaderboard

    skipped: list = []
    written, rows = build_leaderboard(args.results_dir, ci_style=args.ci_style, formats=args.formats,
                                      mix_step_rules=args.mix_step_rules, skip_invalid=args.skip_invalid, skipped=skipped)
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

    for path in show_sample(args.record, args.sample, out=args.out, frames=args.frames):
        print(path)
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
    from .sweep import run_sweep

    result = run_sweep(args.grid, executor=args.executor, address=args.address, cpus_per_run=args.cpus_per_run,
                       progress=True)
    print(f"{len(result.paths)} run(s) written, {result.skipped} already recorded, {result.seconds:.1f} s")
    for path in result.paths:
        print(path)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handlers = {"run": _cmd_run, "transfer": _cmd_transfer, "prepare": _cmd_prepare, "train": _cmd_train, "list": _cmd_list, "describe": _cmd_describe, "leaderboard": _cmd_leaderboard, "bench": _cmd_bench, "defend": _cmd_defend, "show": _cmd_show, "compare": _cmd_compare, "reproduce": _cmd_reproduce, "sweep": _cmd_sweep}
        handler = handlers[args.command]
        return handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
