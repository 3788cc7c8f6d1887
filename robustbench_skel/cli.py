"""Command line: ``python -m robustbench_skel {run,train,list,leaderboard}``.

Bad input ends with one line ``error: ...`` on stderr and exit status 2; Ctrl-C ends with status 130
and leaves no partial record.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import UserError

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line rather than the usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{message} (see `python -m robustbench_skel {self.prog.split()[-1]} --help`)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--victim", default="stgcn", help="victim recognizer (see `list`); default stgcn")
    p.add_argument("--dataset", default=None, help="dataset name (see `list`); default synth, or npz with --data-path")
    p.add_argument("--data-path", default=None, help="your data file or folder")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, or cuda[:N]")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="robustbench_skel", description="Adversarial robustness benchmark for skeleton action recognition.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="attack a victim and write a run record")
    _add_common(run)
    run.add_argument("--attack", default="pgd", help="attack name (see `list`); default pgd")
    run.add_argument("--checkpoint", default=None, help="your weights (state_dict, {'state_dict': ...}, module. prefixes)")
    run.add_argument("--defense", default=None, help="defense name (see `list`)")
    run.add_argument("--split", default=None, help="dataset split (default test)")
    run.add_argument("--eps", type=_eps_values, default=None,
                     help="budget in metres (default: the attack's); a list 0.005,0.01,0.02 or range 0.005:0.02:4 sweeps")
    run.add_argument("--steps", type=_positive_int, default=None, help="iterations (default: the attack's)")
    run.add_argument("--step-size", type=_positive_float, default=None, help="step in metres (default 2.5*eps/steps)")
    run.add_argument("--targeted", action="store_true", help="aim at a random class other than the true one (seeded)")
    run.add_argument("--attack-opt", type=_attack_option, action="append", default=[], metavar="KEY=VALUE",
                     help="an attack-specific hyperparameter, e.g. --attack-opt decay=0.5 (repeatable; see `list`)")
    run.add_argument("--n-samples", type=_positive_int, default=64, help="test samples to evaluate (default 64)")
    run.add_argument("--batch-size", type=_positive_int, default=32, help="clips per batch (default 32)")
    run.add_argument("--results-dir", default="results", help="where records go (default results/)")
    run.add_argument("--sanity-samples", type=int, default=16,
                     help="attacked samples re-attacked for the sanity checks (default 16; 0 skips them)")

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

    sub.add_parser("list", help="list victims, attacks, defenses and datasets")

    board = sub.add_parser("leaderboard", help="build results/leaderboard.{md,csv} from the run records")
    board.add_argument("--results-dir", default="results")

    bench = sub.add_parser("bench", help="time victims (forward, forward+backward) or one attack iteration")
    bench.add_argument("--victims", default=None, help="'all' or comma-separated victim names: per-clip timings")
    bench.add_argument("--victim", default="stgcn", help="victim for --attack (default stgcn)")
    bench.add_argument("--attack", default=None, help="attack to time against a bare forward+backward pass")
    bench.add_argument("--eps", type=_positive_float, default=None)
    bench.add_argument("--steps", type=_positive_int, default=None)
    bench.add_argument("--batch-size", type=_positive_int, default=32)
    bench.add_argument("--repeats", type=_positive_int, default=3)
    bench.add_argument("--device", default="auto")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from .report import format_run_summary
    from .runner import RunConfig, run_benchmark

    from .record import new_run_id
    from .report import format_sweep_summary

    dataset = args.dataset or ("npz" if args.data_path else "synth")
    budgets = args.eps or [None]
    sweep = {"id": new_run_id(), "eps": budgets} if len(budgets) > 1 else None
    results = []
    for eps in budgets:
        config = RunConfig(
            victim=args.victim, attack=args.attack, dataset=dataset, data_path=args.data_path, split=args.split,
            checkpoint=args.checkpoint, defense=args.defense, eps=eps, steps=args.steps, step_size=args.step_size,
            targeted=args.targeted, n_samples=args.n_samples, seed=args.seed, batch_size=args.batch_size,
            device=args.device, results_dir=args.results_dir, sanity_samples=args.sanity_samples, sweep=sweep,
            attack_options=dict(args.attack_opt),
        )
        result = run_benchmark(config, progress=sys.stderr.isatty())
        print(format_run_summary(result.record))
        print()
        results.append(result)
    if sweep:
        print(format_sweep_summary([r.record for r in results]))
    for result in results:
        print(result.path)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train_victim

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


def _cmd_list(args: argparse.Namespace) -> int:
    from .registry import ATTACKS, DATASETS, DEFENSES, VICTIMS
    from .victim import model_card

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


def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from .leaderboard import build_leaderboard

    md, csv, rows = build_leaderboard(args.results_dir)
    print(f"{rows} rows")
    print(md)
    print(csv)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .benchcli import bench_attack, bench_victims

    if bool(args.victims) == bool(args.attack):
        raise UserError("bench needs exactly one of --victims all|NAMES or --attack NAME")
    if args.victims:
        print(bench_victims(args.victims, args.batch_size, args.device, args.repeats))
    else:
        print(bench_attack(args.attack, args.victim, args.batch_size, args.device, args.repeats, args.eps, args.steps))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handlers = {"run": _cmd_run, "train": _cmd_train, "list": _cmd_list, "leaderboard": _cmd_leaderboard, "bench": _cmd_bench}
        handler = handlers[args.command]
        return handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
