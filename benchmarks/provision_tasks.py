#!/usr/bin/env python3
"""Where `mirage-env provision` spends its time, per role and per task, on an existing environment:

    python3 benchmarks/provision_tasks.py --state-dir /var/tmp/devvm/state --name dev [--json]
    python3 benchmarks/provision_tasks.py --report PATH/report-provision.json   (no run: table only)

Runs `mirage-env provision` (this checkout's code, with this interpreter) against the environment,
then reads the per-task records of its report (report-provision.json: task, role, host, seconds,
changed, status — the durations ansible-runner's events measured) and prints the per-role and
per-task tables, the wall-clock total and the changed count. On a converged machine this is the
idempotent re-provision (changed=0 expected). Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def provision(state_dir: Path, name: str) -> float:
    command = [sys.executable, "-m", "mirage_env.cli", "--state-dir", str(state_dir), "-s", f"name={name}",
               "provision"]
    print("$", " ".join(command), file=sys.stderr, flush=True)
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])})
    seconds = round(time.monotonic() - started, 1)
    if done.returncode != 0:
        print(f"provision exited with {done.returncode} (the table below still shows where time went)",
              file=sys.stderr)
    return seconds


def summarize(report: dict) -> dict:
    tasks = report.get("tasks") or []
    roles: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "tasks": 0, "changed": 0})
    for t in tasks:
        role = roles[t["role"]]
        role["seconds"] = round(role["seconds"] + t["seconds"], 2)
        role["tasks"] += 1
        role["changed"] += bool(t["changed"])
    stage = next((s for s in report.get("stages", []) if s["name"].startswith("provision")), {})
    return {"provision_stage_s": stage.get("seconds"), "ok": report.get("ok"),
            "changed": sum(bool(t["changed"]) for t in tasks),
            "task_seconds_sum": round(sum(t["seconds"] for t in tasks), 1),
            "tasks_run": sum(1 for t in tasks if t["status"] != "skipped"),
            "tasks_skipped": sum(1 for t in tasks if t["status"] == "skipped"),
            "roles": dict(roles), "tasks": tasks}


def print_tables(summary: dict) -> None:
    print(f"{'role':<16} {'tasks':>5} {'changed':>7} {'seconds':>8}")
    for role, r in summary["roles"].items():
        print(f"{role:<16} {r['tasks']:>5} {r['changed']:>7} {r['seconds']:>8.1f}")
    print()
    print(f"{'seconds':>8}  {'status':<9} {'role':<14} {'host':<8} task")
    for t in summary["tasks"]:
        print(f"{t['seconds']:>8.1f}  {t['status']:<9} {t['role']:<14} {str(t['host']):<8} {t['task']}")
    print()
    print(f"provision stage: {summary['provision_stage_s']} s (wall); sum of task durations: "
          f"{summary['task_seconds_sum']} s; tasks run: {summary['tasks_run']}, skipped: "
          f"{summary['tasks_skipped']}; changed={summary['changed']}; ok={summary['ok']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, help="the environments' state directory (--state-dir of mirage-env)")
    parser.add_argument("--name", default="default", help="the environment's name (default: default)")
    parser.add_argument("--report", type=Path, help="only print the tables of this report-*.json")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.report is None and args.state_dir is None:
        parser.error("give --state-dir (and --name) to run provision, or --report to read one")
    wall = None
    if args.report is None:
        wall = provision(args.state_dir, args.name)
        args.report = args.state_dir.resolve() / args.name / "report-provision.json"
    if not args.report.is_file():
        print(f"error: no report at {args.report}", file=sys.stderr)
        return 1
    summary = summarize(json.loads(args.report.read_text()))
    summary["command_wall_s"] = wall
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_tables(summary)
        if wall is not None:
            print(f"command wall clock: {wall} s")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
