"""`make bench`: run the benchmarks (all, or those named on the command line), print each figure against its target,
and write benchmarks/results/latest.json. Every figure is a ratio of two timings taken in the same run."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pathlib
import platform
import sys
import time

import torch

HERE = pathlib.Path(__file__).resolve().parent
SUITES = ["tortoise", "engine", "evaluation_batch", "sequence_eval", "data_path", "protocol", "rl", "stacked_seeds",
          "atari_env", "memory"]


def markdown(figures: list[dict]) -> str:
    """The figures as the Markdown table of benchmarks/README.md."""
    lines = ["| figure | value | target | met | measured |", "|---|---|---|---|---|"]
    for f in figures:
        bound = ">=" if f["target_is"] == "min" else "<="
        lines.append(f"| `{f['name']}` | {f['value']:.4g} {f['unit']} | {bound} {f['target']} | "
                     f"{'yes' if f['met'] else '**no**'} | {f['note']} |")
    return "\n".join(lines)


def default_out(names: list[str]) -> pathlib.Path:
    """results/latest.json for the whole suite (what benchmarks/README.md records); results/NAME+NAME.json for a
    part of it, which would otherwise overwrite the whole suite's figures with a few."""
    part = [n for n in SUITES if n in names]
    return HERE / "results" / (f"{'+'.join(part)}.json" if part and part != SUITES else "latest.json")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks; every figure is a ratio measured in one run.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default all: {', '.join(SUITES)})")
    parser.add_argument("--out", help="where the JSON results go (default: results/latest.json for the whole suite, "
                                      "results/NAME+NAME.json for some of it, so that the suite's record stays whole)")
    args = parser.parse_args(argv)
    names = args.names
    sys.path.insert(0, str(HERE))
    unknown = sorted(set(names) - set(SUITES))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    figures, began = [], time.perf_counter()
    for name in names or SUITES:
        started = time.perf_counter()
        results = importlib.import_module(name).run()
        for f in results:
            verdict = "met" if f["met"] else "NOT MET"
            bound = ">=" if f["target_is"] == "min" else "<="
            print(f"{f['name']:48s} {f['value']:10.4g} {f['unit']} (target {bound} {f['target']}): {verdict}\n"
                  f"{'':48s} {f['note']}", flush=True)
        print(f"[{name}: {time.perf_counter() - started:.0f} s]", flush=True)
        figures += results
    machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
               "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    out = pathlib.Path(args.out) if args.out else default_out(names)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine,
                               "seconds": round(time.perf_counter() - began), "figures": figures}, indent=2) + "\n")
    print(f"{sum(f['met'] for f in figures)}/{len(figures)} targets met; wrote {out}\n")
    print(markdown(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
