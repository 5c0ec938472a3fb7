"""The command line: `hare-tortoise run | show | sweep | list | report | data download`."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import traceback

from . import config_files, data, methods, presets
from .config import ConfigError
from .data import streams
from .errors import InvalidInput
from .nn import models
from .presets import resolve
from .rl.config import RLConfig

EXIT_BUG, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED = 1, 2, 3, 130


def resolved(args):
    """The config that `run` and `show` mean: a preset (or a settings file's `preset`) with the method, seed, place
    and overrides given; or with --from, a run directory's own config with them."""
    preset, overrides = args.preset, args.overrides
    if preset and "=" in preset:  # with no preset named, the first key=value lands in its place
        preset, overrides = None, [preset, *overrides]
    if args.config:
        settings = config_files.read_settings_file(args.config)
        named = settings.pop("preset", None)
        if preset and named and preset != named:
            raise ConfigError(f"the preset is {preset} on the command line and {named} in {args.config}: give one")
        preset = preset or named
        overrides = config_files.merged(config_files.as_overrides(settings, args.config), overrides)
    if getattr(args, "from_run", None):
        if preset:
            raise ConfigError(f"--from repeats the run in {args.from_run} with changes; a preset ({preset}) "
                              "cannot be given too: drop one")
        given = (("method", args.method), ("seed", args.seed), ("data_dir", args.data_dir), ("game", args.env))
        return config_files.from_run(args.from_run, config_files.merged(
            [f"{k}={v}" for k, v in given if v is not None], overrides))
    if not preset:
        raise ConfigError("give a preset (hare-tortoise list presets), a --config FILE that names one "
                          "(preset = \"...\"), or --from RUN_DIR")
    args.preset = preset
    return resolve(preset, args.method, args.seed, args.data_dir, overrides, args.env)


def cmd_show(args) -> int:
    print(config_files.describe(resolved(args)))
    return 0


def cmd_run(args) -> int:
    from .train import train

    config = resolved(args)
    if args.from_run and not args.out:
        raise ConfigError(f"--from {args.from_run}: give --out, the new run's directory")
    game = f"{config.game}/" if isinstance(config, RLConfig) else ""
    out = pathlib.Path(args.out or f"runs/{args.preset}/{game}{config.method}/seed{config.seed}")
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out}: {path} is a file, not a run directory; choose another --out")
    if args.resume and not (out / "config.json").exists():
        raise ConfigError(f"--resume: {out} holds no run to resume; drop --resume to start one")
    if isinstance(config, RLConfig):
        from .rl.loop import train_rl

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("RL runs use one process; run them without torchrun (a sweep runs many at once)")

        final = train_rl(config, out, progress=not args.no_progress)["final"]
        print(f"{out}: evaluation return {final['eval_return']:.2f} (online network {final['eval_return_online']:.2f}) "
              f"over {config.eval_episodes} episodes; {final['steps_per_second']:.0f} agent steps/s, "
              f"{final['update_share']:.0%} of the time in network updates")
        return 0
    summary = train(config, out, progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return 0
    final = summary["final"]
    shadow = f", EMA shadow {final['test_acc_shadow']:.4f}" if "test_acc_shadow" in final else ""
    print(f"{out}: test accuracy {final['test_acc']:.4f} (hare {final['test_acc_hare']:.4f}{shadow}), "
          f"train accuracy {final['train_acc']:.4f}, {summary['seconds']} s")
    return 0


def cmd_list(args) -> int:
    if args.what == "presets":
        for name in presets.available():
            preset = presets.get(name)
            cost = f"{presets.workload(preset)} per run" + (
                f"; measured {preset.measured}" if preset.measured else "")
            print(f"{name:30s} {preset.description} [{cost}]")
    elif args.what == "methods":
        for name in methods.available():
            print(f"{name:22s} {methods.describe(name)}")
    elif args.what == "datasets":
        print("\n".join(data.available()))
    elif args.what == "models":
        for name in models.available():
            print(f"{name:10s} {models.defaults(name)}")
    else:
        print("\n".join(sorted(streams.PROTOCOLS)))
    return 0


def cmd_report(args) -> int:
    from .report import report

    out = pathlib.Path(args.out or pathlib.Path(args.dirs[0]) / "report")
    text, figures = report(args.dirs, out)
    print(text)
    print(f"\nwrote {out / 'report.md'} and {len(figures)} plots")
    return 0


def cmd_sweep(args) -> int:
    from . import sweep

    seeds = sweep.parse_seeds(args.seeds)
    games = sweep.parse_games(args.env, args.preset)
    methods_ = [m.strip() for m in args.methods.split(",")]
    if args.dry_run:
        for spec in sweep.grid(args.preset, methods_, seeds, args.overrides, args.out, games, args.data_dir):
            print(f"{spec.name:50s} {'finished' if spec.finished() else 'to run'}")
        return 0
    outcome = sweep.sweep(args.preset, methods_, seeds, args.overrides, args.out, games, args.backend, args.workers,
                          args.threads_per_run, args.address, args.gpus_per_run, args.data_dir,
                          progress=lambda line: print(line, file=sys.stderr, flush=True), partition=args.partition,
                          minutes=args.time_minutes)
    print(sweep.summary_text(outcome, args.out))
    return 1 if outcome.failed else 0


def cmd_download(args) -> int:
    from .data.download import download

    print(f"downloaded and verified {download(args.name, args.data_dir, args.url)}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="hare-tortoise", description="Hare & Tortoise and plasticity experiments.")
    commands = top.add_subparsers(dest="command", required=True)

    def settings_arguments(command, what: str) -> None:
        command.add_argument("preset", nargs="?", help="a preset name (hare-tortoise list presets)")
        command.add_argument("--config", help="a settings file (TOML, YAML or JSON, laid out as a run's "
                             "config.json, with preset = NAME); command-line overrides win")
        command.add_argument("--method", help="a method name (hare-tortoise list methods); default base")
        command.add_argument("--seed", type=int, help="random seed (default 0)")
        command.add_argument("--data-dir", help="where data files are looked for first")
        command.add_argument("--env", help="the game of an RL preset (e.g. breakout for minatar-dqn; Pong or pong, "
                             "BankHeist or bank_heist for atari100k-drq)")
        command.add_argument("--from", dest="from_run", metavar="RUN_DIR",
                             help=f"{what} the run in RUN_DIR (its config.json) with the changes given")
        command.add_argument("overrides", nargs="*", metavar="key=value")

    run = commands.add_parser("run", help="run (or resume) one experiment", description=(
        "Run PRESET with a method and seed into a run directory; re-running into the same directory resumes it. "
        "Overrides are key=value (any config key) and method.NAME=VALUE; `hare-tortoise show PRESET` lists every "
        "key with its value and what it does."))
    settings_arguments(run, "repeat")
    run.add_argument("--out", help="run directory (default runs/PRESET/METHOD/seedN)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out (error if there is none)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=cmd_run)

    show = commands.add_parser("show", help="print the resolved config of a run, one line of help per key",
                               description="Print the config that `run` would use for the same arguments: every "
                               "key with its value and what it does, the method's and agent's settings after it.")
    settings_arguments(show, "show")
    show.set_defaults(handler=cmd_show)

    sweeping = commands.add_parser("sweep", help="run a grid of methods x seeds (x games x overrides)", description=(
        "Expand PRESET over --methods, --seeds, --env games and every override written key=v1,v2, and run the grid "
        "into OUT/[GAME/]METHOD/[KEY=VALUE,...]/seedN. Re-running skips finished runs and resumes unfinished ones; "
        "a failed run is retried once, then reported at the end."))
    sweeping.add_argument("preset", help="a preset name (hare-tortoise list presets)")
    sweeping.add_argument("--methods", default="base", help="comma-separated method names (default base)")
    sweeping.add_argument("--seeds", default="1-3", help="seeds as 1-5 or 1,3,7 (default 1-3)")
    sweeping.add_argument("--out", required=True, help="the sweep directory")
    sweeping.add_argument("--env", help="games of an RL preset, comma-separated, or 'all'")
    sweeping.add_argument("--backend", default="local", choices=["local", "ray", "slurm", "slurm-local"],
                          help="local processes (default), Ray tasks, SLURM jobs (through submitit), or "
                          "slurm-local: the SLURM path with the jobs as local processes (submitit's local executor)")
    sweeping.add_argument("--partition", help="the SLURM partition of the jobs (default: the cluster's)")
    sweeping.add_argument("--time-minutes", type=int, default=24 * 60,
                          help="the time limit of each SLURM job in minutes (default 1440); a run cut off by it "
                          "resumes from its checkpoint when the sweep runs again")
    sweeping.add_argument("--workers", type=int, help="runs at a time (default: CPU cores / threads per run)")
    sweeping.add_argument("--threads-per-run", type=int, help="CPU threads of each run (default: cores / workers)")
    sweeping.add_argument("--address", help="the Ray cluster to join (default: start a local Ray instance)")
    sweeping.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs each Ray task declares (default 0)")
    sweeping.add_argument("--data-dir", help="where data files are looked for first")
    sweeping.add_argument("--dry-run", action="store_true", help="list the runs and whether each is finished")
    sweeping.add_argument("overrides", nargs="*", metavar="key=value[,value...]")
    sweeping.set_defaults(handler=cmd_sweep)

    listing = commands.add_parser("list", help="list presets, methods, datasets, models or protocols")
    listing.add_argument("what", nargs="?", default="presets",
                         choices=["presets", "methods", "datasets", "models", "protocols"])
    listing.set_defaults(handler=cmd_list)

    rep = commands.add_parser("report", help="tables and plots over run directories")
    rep.add_argument("dirs", nargs="+", help="run directories, or folders holding them")
    rep.add_argument("--out", help="where report.md and the plots go (default FIRST_DIR/report)")
    rep.set_defaults(handler=cmd_report)

    data_cmd = commands.add_parser("data", help="data management").add_subparsers(dest="action", required=True)
    down = data_cmd.add_parser("download", help="download an archive (CIFAR, Tiny-ImageNet), checksum verified")
    down.add_argument("name", choices=["cifar10", "cifar100", "tiny_imagenet"])
    down.add_argument("--data-dir", required=True, help="folder to download into")
    down.add_argument("--url", help="a mirror to use instead of the official address")
    down.set_defaults(handler=cmd_download)
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, extra = top.parse_known_args(argv)
    # key=value overrides may stand anywhere after the preset, also after options such as --method
    takes = ("run", "show", "sweep")
    unknown = [e for e in extra if args.command not in takes or "=" not in e or e.startswith("-")]
    if unknown:
        top.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command in takes:
        args.overrides += extra
    try:
        return args.handler(args)
    except InvalidInput as error:  # the library's own checks: the user's input, told in one line
        print(f"hare-tortoise: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("hare-tortoise: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        from .runs import TrainingDiverged

        if isinstance(error, TrainingDiverged):
            print(f"hare-tortoise: error: {error}", file=sys.stderr)
            return EXIT_DIVERGED
        # anything else is a bug of this library, not the user's input: show all of it
        traceback.print_exc()
        print("hare-tortoise: this is a bug in hare-tortoise, not a problem with your input; please report it with "
              "the command you ran and the traceback above", file=sys.stderr)
        return EXIT_BUG
