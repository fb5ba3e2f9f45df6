#!/usr/bin/env python3
"""Side-by-side optimizer-step times: Burn (the peer `burn-bench`) against this crate.

Runs the benchmark cases of issue 11 with both programs, interleaved (Burn, ours, Burn,
ours, ... for each case in each round), for several rounds, and prints a markdown table of
the median `ms_per_step` of each program per case with the ratio Burn / ours (> 1: we are
faster). Both programs print one result line in the same format (`burn optim=.. n=..
tensors=.. steps=.. ms_per_step=.. elems_per_s=..` and `ours ...`) and a `check ... ok=..`
self-check line; a check that fails is flagged in the table.

Build both first:

    cargo build --release --example step_time          # ours, in this crate
    (cd ../shared/peers/burn-bench && \
     CARGO_TARGET_DIR=/tmp/burn-target cargo build --release)   # the peer (about 11 min)

Usage:

    python3 tools/side_by_side.py [--rounds 3] [--cases 1m,16m,...] [--csv raw.csv]
        [--burn PATH] [--ours PATH] [--timeout 900] [--dry-run] [--list]

    --burn PATH   the peer binary (default: $BURN_BENCH, else /tmp/burn-target/release/burn-bench)
    --ours PATH   ours (default: target/release/examples/step_time)
    --cases       comma-separated case keys or 1-based numbers (see --list); default: the
                  five cases of issue 11
    --rounds R    rounds (default 3); each round runs every case once with each program
    --csv FILE    also write every run's numbers (one row per round, case and program)
    --dry-run     print the commands instead of running them

Progress goes to stderr; the report (uptime before and after, CPU model, each program's
adapter and `info` line, the table, warnings) to stdout at the end. Exit status 1 when one of
our runs failed or failed its self-check (the peer's failures are only reported).

Both children get WGPU_BACKEND=vulkan unless the environment sets it (the peer pins Vulkan
itself). Ours clips by the global norm, Burn each tensor by its own: they coincide at one
tensor. Python 3 standard library only.
"""

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import time

DEFAULT_BURN = "/tmp/burn-target/release/burn-bench"
DEFAULT_OURS = "target/release/examples/step_time"

# key: (label, optim, n, tensors, steps, clip_norm or None, our layout)
CASES = {
    "1m": ("adamw 1M x1", "adamw", "1M", 1, 100, None, "arena"),
    "16m": ("adamw 16M x1", "adamw", "16M", 1, 20, None, "arena"),
    "1m-x100": ("adamw 1M x100 arena", "adamw", "1M", 100, 50, None, "arena"),
    "1m-x1000": ("adamw 1M x1000 arena", "adamw", "1M", 1000, 20, None, "arena"),
    "clip-1m-x1000": (
        "adamw + clip-norm 1.0 1M x1000 arena", "adamw", "1M", 1000, 20, "1.0", "arena"),
    # Not run by default: select with --cases.
    "1m-x100-separate": ("adamw 1M x100 separate", "adamw", "1M", 100, 50, None, "separate"),
    "1m-x1000-separate": (
        "adamw 1M x1000 separate", "adamw", "1M", 1000, 20, None, "separate"),
    "clip-1m-x1": ("adamw + clip-norm 1.0 1M x1", "adamw", "1M", 1, 100, "1.0", "arena"),
    "clip-16m-x1": ("adamw + clip-norm 1.0 16M x1", "adamw", "16M", 1, 20, "1.0", "arena"),
}
DEFAULT_CASES = ["1m", "16m", "1m-x100", "1m-x1000", "clip-1m-x1000"]

RESULT_LINE = re.compile(r"^(burn|ours)\s+(.*)$")
PAIR = re.compile(r'(\w+)=("[^"]*"|\S+)')


def fields(text):
    """key=value pairs of one output line (quoted values unquoted)."""
    return {k: v.strip('"') for k, v in PAIR.findall(text)}


def command(program, binary, case):
    _, optim, n, tensors, steps, clip, layout = CASES[case]
    cmd = [binary, "--optim", optim, "--n", n, "--tensors", str(tensors),
           "--steps", str(steps)]
    if clip is not None:
        cmd += ["--clip-norm", clip]
    if program == "ours":
        cmd += ["--layout", layout]
    return cmd


def run_one(program, binary, case, timeout, env):
    """Runs one program on one case; returns a dict of what it printed."""
    cmd = command(program, binary, case)
    out = {"program": program, "case": case, "cmd": " ".join(cmd), "rc": None,
           "ms_per_step": float("nan"), "median_ms": float("nan"), "min_ms": float("nan"),
           "elems_per_s": float("nan"), "ok": "", "info": "", "error": ""}
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        out["error"] = f"timed out after {timeout} s"
        return out
    except OSError as e:
        out["error"] = str(e)
        return out
    out["wall_s"] = time.monotonic() - started
    out["rc"] = proc.returncode
    found = False
    for line in proc.stdout.splitlines():
        if line.startswith("info "):
            out["info"] = line
        m = RESULT_LINE.match(line)
        if m and m.group(1) == program:
            f = fields(m.group(2))
            for key in ("ms_per_step", "median_ms", "min_ms", "elems_per_s"):
                try:
                    out[key] = float(f[key])
                except (KeyError, ValueError):
                    pass
            found = "ms_per_step" in f
        if line.startswith("check "):
            out["ok"] = fields(line).get("ok", "")
    if not found:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        out["error"] = f"no `{program} ...` line (rc {proc.returncode}): {tail}"
    elif proc.returncode != 0:
        out["error"] = f"exit status {proc.returncode}"
    return out


def shell(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def cpu_model():
    for line in shell(["lscpu"]).splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def fmt_ms(x):
    if x != x:  # NaN
        return "n/a"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def summary(runs):
    """Median, low and high of the runs' ms_per_step, and warnings."""
    values = [r["ms_per_step"] for r in runs if r["ms_per_step"] == r["ms_per_step"]]
    warnings = sorted({w for r in runs for w in warn(r)})
    if not values:
        return float("nan"), "n/a", warnings
    med = statistics.median(values)
    cell = f"**{fmt_ms(med)}**"
    if len(values) > 1:
        cell += f" ({fmt_ms(min(values))}–{fmt_ms(max(values))})"
    return med, cell, warnings


def warn(run):
    out = []
    if run["ok"] == "false":
        out.append("check ok=false")
    elif run["ok"] == "" and not run["error"]:
        out.append("no check line")
    if run["error"]:
        out.append(run["error"])
    return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Cases: " + ", ".join(f"{i + 1}={k}" for i, k in enumerate(CASES)))
    ap.add_argument("--burn", default=os.environ.get("BURN_BENCH", DEFAULT_BURN),
                    help="peer binary (default $BURN_BENCH or %(default)s)")
    ap.add_argument("--ours", default=DEFAULT_OURS, help="ours (default %(default)s)")
    ap.add_argument("--cases", default=",".join(DEFAULT_CASES),
                    help="comma-separated case keys or numbers (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--csv", metavar="FILE", help="write the raw per-round numbers here")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per run (default 900)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args()

    keys = list(CASES)
    if args.list:
        for i, k in enumerate(keys):
            default = " (default)" if k in DEFAULT_CASES else ""
            print(f"{i + 1:2} {k:20} {CASES[k][0]}, steps {CASES[k][4]}{default}")
        return 0
    cases = []
    for c in filter(None, (c.strip() for c in args.cases.split(","))):
        if c.isdigit() and 1 <= int(c) <= len(keys):
            c = keys[int(c) - 1]
        if c not in CASES:
            ap.error(f"unknown case {c!r}; known: {', '.join(keys)}")
        cases.append(c)
    if not cases:
        ap.error("no cases selected")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")

    programs = [("burn", args.burn), ("ours", args.ours)]
    if args.dry_run:
        for r in range(args.rounds):
            for case in cases:
                for program, binary in programs:
                    print(f"round {r + 1} {program}: {' '.join(command(program, binary, case))}")
        return 0
    missing = False
    if not (os.path.isfile(args.burn) and os.access(args.burn, os.X_OK)):
        print(f"error: peer binary not found: {args.burn}\n  build it: cd ../shared/peers/"
              "burn-bench && CARGO_TARGET_DIR=/tmp/burn-target cargo build --release\n"
              "  or pass --burn PATH / set BURN_BENCH", file=sys.stderr)
        missing = True
    if not (os.path.isfile(args.ours) and os.access(args.ours, os.X_OK)):
        print(f"error: our binary not found: {args.ours}\n"
              "  build it: cargo build --release --example step_time (or pass --ours PATH)",
              file=sys.stderr)
        missing = True
    if missing:
        return 2

    env = dict(os.environ)
    env.setdefault("WGPU_BACKEND", "vulkan")

    uptime_before = shell(["uptime"])

    runs = []
    infos = {}
    for r in range(args.rounds):
        for case in cases:
            for program, binary in programs:
                print(f"[round {r + 1}/{args.rounds}] {program} {CASES[case][0]} ...",
                      end=" ", file=sys.stderr, flush=True)
                run = run_one(program, binary, case, args.timeout, env)
                run["round"] = r + 1
                runs.append(run)
                if run["info"] and program not in infos:
                    infos[program] = run["info"]
                note = "; ".join(warn(run))
                print(f"{fmt_ms(run['ms_per_step'])} ms/step" + (f" [{note}]" if note else ""),
                      file=sys.stderr, flush=True)

    print(f"uptime before: {uptime_before}")
    print(f"uptime after:  {shell(['uptime'])}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} logical CPUs")
    for program, _ in programs:
        info = infos.get(program, "")
        adapter = fields(info).get("adapter", "unknown")
        print(f"adapter ({program}): {adapter}  [{info or 'no info line'}]")
    print(f"rounds: {args.rounds}, each case run Burn then ours in every round; "
          f"WGPU_BACKEND={env['WGPU_BACKEND']}")
    print()
    print("| case | Burn | ours | Burn / ours |")
    print("|---|---|---|---|")
    notes = []
    for case in cases:
        cells = []
        medians = []
        for program, _ in programs:
            med, cell, warnings = summary(
                [x for x in runs if x["case"] == case and x["program"] == program])
            if warnings:
                cell += " ⚠ " + "; ".join(warnings)
                notes.append(f"{CASES[case][0]}, {program}: " + "; ".join(warnings))
            cells.append(cell)
            medians.append(med)
        burn, ours = medians
        ratio = f"{burn / ours:.2f}" if burn == burn and ours == ours and ours > 0 else "n/a"
        label = f"{CASES[case][0]} (S={CASES[case][4]})"
        print(f"| {label} | {cells[0]} | {cells[1]} | {ratio} |")
    print()
    print(f"ms/step: median of {args.rounds} round(s) (range in brackets); "
          "ratio > 1: ours is faster. Clip: ours by global norm, Burn per tensor.")
    for n in notes:
        print(f"warning: {n}")

    if args.csv:
        columns = ["round", "case", "program", "ms_per_step", "median_ms", "min_ms",
                   "elems_per_s", "ok", "rc", "error", "cmd"]
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(runs)
        print(f"raw numbers: {args.csv}")
    # Exit status 1 when one of our runs failed or failed its check; the peer's warnings
    # (e.g. its known wrong norm at one tensor of more than 2^18 elements) are only reported.
    return 1 if any(warn(r) for r in runs if r["program"] == "ours") else 0


if __name__ == "__main__":
    sys.exit(main())
