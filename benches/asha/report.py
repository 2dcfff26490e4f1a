#!/usr/bin/env python3
"""The table of benches/asha/run.sh, from the run records (`backprop --json list`) of the
full grid and of the ASHA search (standard library only).

    report.py --grid grid-runs.json [--asha asha-runs.json] --max-steps 2700 [--metric val_loss]

- best final metric: the full grid's best run vs ASHA's winner (the best of the runs that
  reached --max-steps); the claim is a ratio of at most 1.01.
- training steps: over every attempt of every run, its last reported step minus the step of
  the checkpoint it resumed from (0 for a first attempt). With exact resumes this is the sum
  over runs of the last step each reached. Claim: ASHA's total is at most 1/3 of the grid's.
- active time: the sum of the runs' activeMs (paused and queued time excluded).
"""
import argparse
import json
import math
import re
import sys

CHECKPOINT_STEP = re.compile(r"ckpt-(\d+)\.pkl$")
VALUE_CLAIM = 1.01
STEPS_CLAIM = 1 / 3


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--grid", required=True, help="records of the full grid (JSON list)")
    p.add_argument("--asha", help="records of the ASHA search (JSON list)")
    p.add_argument("--asha-missing", default="", help="why there is no ASHA column")
    p.add_argument("--max-steps", type=int, required=True, help="maxBudget in steps")
    p.add_argument("--metric", default="val_loss")
    p.add_argument("--quick", action="store_true",
                   help="a cut-down run: too few configurations for the claims to apply")
    return p.parse_args()


def load(path):
    with open(path) as f:
        records = json.load(f)
    if isinstance(records, dict):  # keyed by id, as in experiments.json
        records = list(records.values())
    return records


def trained_steps(record):
    """Steps trained over all attempts: each attempt from its resume point to its last step."""
    total, previous_last = 0, 0
    for attempt in record.get("attempts") or []:
        last = attempt.get("lastStep")
        resumed = attempt.get("resumedFrom")
        if resumed is None:
            start = 0
        else:
            found = CHECKPOINT_STEP.search(resumed)
            start = int(found.group(1)) if found else previous_last
        if last is not None:
            total += max(0, last - start)
            previous_last = last
    return total


def final_metric(record, metric):
    value = (record.get("metrics") or {}).get(metric)
    return value if isinstance(value, (int, float)) and not math.isnan(value) else None


def summarize(records, max_steps, metric):
    finished = [r for r in records if (r.get("lastStep") or 0) >= max_steps]
    scored = [r for r in finished if final_metric(r, metric) is not None]
    best = min(scored, key=lambda r: final_metric(r, metric)) if scored else None
    return {
        "runs": len(records),
        "finished": len(finished),
        "best": best,
        "value": final_metric(best, metric) if best else None,
        "steps": sum(trained_steps(r) for r in records),
        "active_ms": sum(r.get("activeMs") or 0 for r in records),
        "statuses": sorted({r.get("status", "?") for r in records}),
    }


def duration(ms):
    seconds = round(ms / 1000)
    return "%dm %02ds" % divmod(seconds, 60) if seconds >= 60 else "%ds" % seconds


def number(x, digits=4):
    return "-" if x is None else ("%.*f" % (digits, x))


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def verdict(value, limit, quick=False):
    if value is None:
        return "-"
    if quick:
        return "n/a (--quick)"
    return "pass" if value <= limit else "MISS"


def main():
    args = parse_args()
    grid = summarize(load(args.grid), args.max_steps, args.metric)
    asha = summarize(load(args.asha), args.max_steps, args.metric) if args.asha else None
    name = lambda s: (s["best"] or {}).get("name", "-") if s else "-"  # noqa: E731

    value_ratio = ratio(asha["value"], grid["value"]) if asha else None
    steps_ratio = ratio(asha["steps"], grid["steps"]) if asha else None
    time_ratio = ratio(asha["active_ms"], grid["active_ms"]) if asha else None
    rows = [
        ("", "full grid", "ASHA", "ratio", "claim", ""),
        ("configurations", grid["runs"], asha["runs"] if asha else "-", "", "", ""),
        ("runs at maxBudget", grid["finished"], asha["finished"] if asha else "-", "", "", ""),
        ("best final " + args.metric, number(grid["value"]),
         number(asha["value"]) if asha else "-", number(value_ratio, 3),
         "<= %.2f" % VALUE_CLAIM, verdict(value_ratio, VALUE_CLAIM, args.quick)),
        ("  that run", name(grid), name(asha), "", "", ""),
        ("training steps", "{:,}".format(grid["steps"]),
         "{:,}".format(asha["steps"]) if asha else "-", number(steps_ratio, 3),
         "<= 0.333", verdict(steps_ratio, STEPS_CLAIM, args.quick)),
        ("active time", duration(grid["active_ms"]),
         duration(asha["active_ms"]) if asha else "-", number(time_ratio, 3), "", ""),
        ("statuses", ",".join(grid["statuses"]),
         ",".join(asha["statuses"]) if asha else "-", "", "", ""),
    ]
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())

    if asha and asha["best"] is not None:
        grid_records = sorted(
            (r for r in load(args.grid) if final_metric(r, args.metric) is not None),
            key=lambda r: final_metric(r, args.metric))
        names = [r.get("name") for r in grid_records]
        winner = asha["best"].get("name")
        if winner in names:
            print("ASHA's winner %s ranks %d of %d in the full grid"
                  % (winner, names.index(winner) + 1, len(names)))
    if not asha:
        print("ASHA: not run%s" % (": " + args.asha_missing if args.asha_missing else ""))
    elif asha["best"] is None:
        print("ASHA: no run reached %d steps with a value of %s" % (args.max_steps, args.metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
