"""Live progress while a command works, a summary at the end, and a JSON report in the state dir."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class StageRecord:
    name: str
    seconds: float = 0.0
    ok: bool | None = None
    error: str | None = None


@dataclass
class CheckRecord:
    name: str
    ok: bool
    detail: str = ""
    host: str | None = None  # the lab host it is about (None: the one machine)

    @property
    def label(self) -> str:
        return f"{self.host}: {self.name}" if self.host else self.name

    def as_dict(self) -> dict:
        # `name` keeps the host in front for readers of report.json; `host` is the field to use
        return {"name": self.label, "ok": self.ok, "detail": self.detail, "host": self.host}


@dataclass
class Report:
    command: str
    path: Path | None = None  # where report.json goes
    console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))
    stages: list[StageRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    measurements: dict = field(default_factory=dict)
    hosts: dict = field(default_factory=dict)  # per-host results of a lab (ssh provider)
    tasks: list = field(default_factory=list)  # per-task timings of the playbook runs (provisioning)
    _status = None
    _last_plain: float = 0.0
    _started: float = field(default_factory=time.monotonic)

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    @contextmanager
    def stage(self, name: str):
        record = StageRecord(name)
        self.stages.append(record)
        self.console.print(f"[bold cyan]==>[/] [bold]{name}[/]")
        start = time.monotonic()
        status = self.console.status(name, spinner="dots") if self.live else None
        if status:
            status.start()
        self._status = status
        try:
            yield record
            record.ok = True
        except BaseException as exc:
            record.ok = False
            record.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        finally:
            if status:
                status.stop()
            self._status = None
            record.seconds = round(time.monotonic() - start, 1)
            mark = "[green]done[/]" if record.ok else "[red]failed[/]"
            self.console.print(f"    {mark} {name} in {record.seconds:.0f}s")

    def step(self, message: str) -> None:
        """A progress line: replaces the spinner text live; printed (throttled) when not a terminal."""
        if self._status is not None:
            self._status.update(message)
            return
        if self.console.quiet:  # -q
            return
        now = time.monotonic()
        if now - self._last_plain >= 10 or not message.startswith(("waiting", "debootstrap")):
            self._last_plain = now
            print(f"    {message}", file=sys.stderr, flush=True)

    def info(self, message: str) -> None:
        self.console.print(f"    {message}")

    def check(self, name: str, ok: bool, detail: str = "", host: str | None = None) -> None:
        record = CheckRecord(name, ok, detail, host)
        self.checks.append(record)
        mark = "[green]PASS[/]" if ok else "[red]FAIL[/]"
        self.console.print(f"    {mark} {record.label}" + (f" — {detail}" if detail and not ok else ""))

    def checks_of(self, host: str | None) -> list[CheckRecord]:
        return [c for c in self.checks if c.host == host]

    def measure(self, key: str, value) -> None:
        self.measurements[key] = value

    def host(self, name: str, **fields) -> None:
        """Record per-host results (a lab): merged, so each stage adds its own fields."""
        self.hosts.setdefault(name, {}).update(fields)

    def as_dict(self, ok: bool, log: Path | None) -> dict:
        return {
            "command": self.command,
            "ok": ok,
            "seconds": round(time.monotonic() - self._started, 1),
            "stages": [vars(s) for s in self.stages],
            "checks": [c.as_dict() for c in self.checks],
            "measurements": self.measurements,
            "hosts": self.hosts,
            "tasks": self.tasks,
            "log": str(log) if log else None,
        }

    def _hosts_table(self) -> Table:
        table = Table(title="per host")
        columns = ["host", "provisioned", "changed", "seconds", "checks", "result"]
        for column in columns:
            table.add_column(column)
        for name, h in self.hosts.items():
            checks = f"{h.get('checks_passed', '-')}/{h.get('checks_total', '-')}"
            result = "ok" if h.get("ok") else f"FAILED {h.get('error') or ''}"[:70]
            table.add_row(name, str(h.get("provisioned", "-")), str(h.get("changed", "-")),
                          str(h.get("provision_s", "-")), checks, result)
        return table

    def finish(self, ok: bool, log: Path | None = None) -> dict:
        data = self.as_dict(ok, log)
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(data, indent=2))
        table = Table(title=f"mirage-env {self.command}: " + ("[green]OK[/]" if ok else "[red]FAILED[/]"))
        table.add_column("stage / check")
        table.add_column("result")
        table.add_column("seconds", justify="right")
        for s in self.stages:
            table.add_row(s.name, "ok" if s.ok else f"failed: {s.error or ''}"[:80], f"{s.seconds:.0f}")
        for c in self.checks:
            table.add_row(f"  {c.label}", "pass" if c.ok else f"FAIL {c.detail}"[:80], "")
        self.console.print(table)
        if self.hosts:
            self.console.print(self._hosts_table())
        if self.path:
            self.console.print(f"report: {self.path}")
        if not ok and log:
            self.console.print(f"[red]failed[/] — full log: {log}")
        return data
