"""``mobiprox-lab``: the command line. Each subcommand parses flags and calls the package."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("har", "kws"), required=True,
                   help="which task's model: har (MobileNet on IMU windows) or kws (keyword CNN)")
    p.add_argument("--quick", action="store_true", help="shrunken data and budgets")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, an int >= 0")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text}")
    return value


def _out_dir(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder, got the file {text!r}")
    return path


def _scheduler(text: str) -> str:
    """A Dask scheduler address: ``tcp://host:port`` (or another Dask protocol)."""
    m = re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://([^:/\s]+|\[[0-9a-fA-F:]+\])(:(\d+))?",
                     text)
    if not m or (m.group(4) and not 0 < int(m.group(4)) < 65536):
        raise argparse.ArgumentTypeError(f"expected a Dask scheduler address like "
                                         f"tcp://host:8786, got {text!r}")
    return text


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got "
                                             f"{text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mobiprox-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("figures", help="reproduce every figure into figures/ (+ summary.md/csv)")
    p.add_argument("--out", type=_out_dir, default=None,
                   help="output folder (default: figures/)")
    p.add_argument("--quick", action="store_true", help="small data and budgets (minutes)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, an int >= 0")

    p = sub.add_parser("train", help="train (or load the cached) model and print its accuracy")
    _add_model(p)
    p.add_argument("--retrain", action="store_true",
                   help="train anew even when cached or shipped weights match")
    p.add_argument("--ship", action="store_true",
                   help="maintainers: copy the weights into the package (mobiprox_lab/weights)")

    for name, text in (("tune", "search configurations and write the configuration files"),
                       ("profile", "tune if needed, then profile the final configuration list")):
        p = sub.add_parser(name, help=text)
        _add_model(p)
        p.add_argument("--qos-model", choices=("p1", "p2", "empirical"), default="p1")
        p.add_argument("--tuner-threshold", type=_positive(float), default=3.0,
                       help="QoS loss the search may spend, percentage points (default 3.0)")
        p.add_argument("--keep-threshold", type=_positive(float), default=5.0,
                       help="QoS loss a kept configuration may have on the tune set, pp "
                            "(default 5.0)")
        p.add_argument("--keep-on-test", action="store_true",
                       help="also drop configurations over the keep threshold on the test "
                            "set, as the authors did (the test set then takes part in the "
                            "choice)")
        p.add_argument("--trials", type=_positive(int), default=None,
                       help="search budget in trials (default: the tuner's)")
        p.add_argument("--scheduler", type=_scheduler, default=None,
                       help="a Dask scheduler address (tcp://host:8786) to scale profiling out")

    p = sub.add_parser("simulate", help="run every controller on a trace and print the table")
    p.add_argument("--trace", choices=("har_sessions", "har_day", "kws_context"),
                   default="har_day")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, an int >= 0")
    return parser


def _executor(address: str | None):
    if not address:
        return None
    from dask.distributed import Client

    return Client(address)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; return its exit code (130 after Ctrl-C)."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"mobiprox-lab {args.command}: interrupted; finished work is cached, run the "
              f"same command again to resume", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "figures":
        from .orchestration.figures import make_figures

        return make_figures(out_dir=args.out, quick=args.quick, seed=args.seed)
    if args.command == "train":
        from .models import ship
        from .orchestration.tasks import prepare

        _, trained = prepare(args.model, quick=args.quick, seed=args.seed, retrain=args.retrain)
        for key, value in trained.info.items():
            print(f"{key}: {value}")
        if args.ship:
            print(f"shipped {ship(trained)}")
        return 0
    if args.command in ("tune", "profile"):
        from .orchestration.tasks import tune_task

        result = tune_task(args.model, qos_model=args.qos_model,
                           tuner_threshold=args.tuner_threshold,
                           keep_threshold=args.keep_threshold,
                           keep_on_test=args.keep_on_test, trials=args.trials,
                           seed=args.seed, quick=args.quick, executor=_executor(args.scheduler))
        print(result.configs.to_string(max_cols=12))
        for path in result.paths.values() if isinstance(result.paths, dict) else result.paths:
            print(f"wrote {path}")
        return 0
    if args.command == "simulate":
        from .orchestration import experiments

        setup = experiments.task_setup(experiments.TRACE_TASK[args.trace], quick=args.quick,
                                       seed=args.seed)
        table = experiments.aggregate(experiments.controller_runs(args.trace, setup,
                                                                  quick=args.quick))
        print(table.to_string())
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
