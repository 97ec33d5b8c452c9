"""The stages behind the CLI: machine up → provision → checks → domU probe, each reported."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .providers import Provider, get_provider
from .providers.base import Host
from .report import Report
from .settings import Settings
from .state import StateDir
from .errors import MirageEnvError



class _HostReport:
    """The report as one host of several sees it: its checks and stages carry the host's name."""

    def __init__(self, base: Report, host: str):
        self.base, self._host = base, host

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.base.check(name, ok, detail, host=self._host)

    def stage(self, name: str):
        return self.base.stage(name if name.endswith(self._host) else f"{name} {self._host}")

    def measure(self, key: str, value) -> None:
        self.base.measure(f"{self._host}.{key}", value)

    @property
    def measurements(self) -> dict:
        """This host's measurements under their own keys (as `measure` was given them)."""
        prefix = f"{self._host}."
        return {k[len(prefix):]: v for k, v in self.base.measurements.items() if k.startswith(prefix)}

    def __getattr__(self, name: str):
        return getattr(self.base, name)


class StageFailed(MirageEnvError):
    """A stage ran and did not succeed; the message says what and where to look."""


@dataclass
class Environment:
    settings: Settings
    state: StateDir
    provider: Provider

    @classmethod
    def open(cls, settings: Settings, state_base: Path | None = None,
             image_cache: Path | None = None, limit: str | None = None) -> "Environment":
        state = StateDir.for_env(settings.name, state_base)
        return cls(settings, state, get_provider(settings, state, image_cache, limit))

    def new_report(self, command: str) -> Report:
        return Report(command, path=self.state.path(f"report-{command}.json"))

    # -- stages ----------------------------------------------------------------------------
    def machine_up(self, report: Report) -> None:
        with report.stage("machine"):
            self.provider.up(report)
        self.state.write_json("provider.json", {"provider": self.provider.name})

    def _per_host(self, hosts: list[Host]) -> bool:
        """Whether results are reported per host: always for a lab (even one host picked with
        --limit: the report must say which), never for the one machine of the other providers."""
        return len(hosts) > 1 or self.provider.name == "ssh"

    def _run(self, report: Report, hosts: list[Host], playbook: str, extravars: dict):
        from .provisioning import pin_host_keys, run_playbook, strategy_env, write_inventory

        inventory = write_inventory(self.state, hosts)
        if strategy_env():
            pin_host_keys(self.state, hosts)
        return run_playbook(self.state, inventory, playbook, extravars, report,
                            forks=self.settings.lab.parallel)

    def provision(self, report: Report, toolchain: bool = False) -> None:
        if toolchain:
            self._provision_toolchain(report)
        hosts = self.provider.hosts()
        started = time.monotonic()
        if any(h.settings.unikernel.enabled for h in hosts):
            hosts = self._with_unikernel_images(report, hosts)
        with report.stage("provision" if len(hosts) == 1 else f"provision {len(hosts)} hosts in parallel"):
            extravars = {}
            if any(h.settings.unikernel.enabled for h in hosts):
                if any("unikernel_image" not in h.vars for h in hosts if h.settings.unikernel.enabled):
                    from .sources import pack_unikernel_sources

                    extravars["unikernel_source_archive"] = str(pack_unikernel_sources(self.state))
            result = self._run(report, hosts, "site.yml", extravars)
            report.tasks += result.tasks
            for role, seconds in result.role_seconds.items():
                report.measure(f"provision.{role}_s", seconds)
            reboot = [s for t, s in result.task_seconds.items() if t.endswith("Reboot into Xen") and s > 1]
            if reboot:
                report.measure("provision.reboot_into_xen_s", reboot[0])
            report.measure("provision.changed", result.changed)
            seconds = round(time.monotonic() - started, 1)
            if self._per_host(hosts):
                self._record_hosts(report, hosts, result, seconds)
            if not result.ok:
                why = "; ".join(result.failures) or f"ansible-playbook exited with {result.rc}"
                raise StageFailed(f"provisioning failed: {why} (log: {result.log})")
            report.info(f"provisioned: changed={result.changed} failed={result.failed}")

    def _with_unikernel_images(self, report: Report, hosts: list[Host]) -> list[Host]:
        """The hosts, each given the Xen image of its app built here (the role copies it); as they
        are when this machine cannot build (the role then builds on the dom0)."""
        from dataclasses import replace

        from .bundled import BuildError
        from .unikernel_images import build_images, missing_tools

        missing = missing_tools()
        if missing:
            report.info(f"the unikernel is built on the dom0: {', '.join(missing)} missing here")
            return hosts
        apps = {h.settings.unikernel.app for h in hosts if h.settings.unikernel.enabled}
        with report.stage("unikernel image"):
            try:
                images = build_images(self.state, apps)
            except BuildError as exc:
                raise StageFailed(f"building the unikernel here failed: {exc}") from exc
        return [replace(h, vars={**h.vars, "unikernel_image": str(images[h.settings.unikernel.app])})
                if h.settings.unikernel.enabled else h for h in hosts]

    @staticmethod
    def _record_hosts(report: Report, hosts: list[Host], result, seconds: float) -> None:
        for host in hosts:
            stats = result.per_host.get(host.name, {"ok": False, "unreachable": 1})
            errors = list(result.host_failures.get(host.name, []))
            if stats.get("unreachable"):
                errors.append("unreachable")
            report.host(host.name, provisioned="ok" if stats["ok"] else "failed",
                        changed=stats.get("changed"), provision_s=seconds, ok=stats["ok"],
                        error="; ".join(errors) or None)

    def _provision_toolchain(self, report: Report) -> None:
        with report.stage("toolchain"):
            result = self._run(report, self.provider.hosts(), "mirage_toolchain.yml", {})
            report.tasks += result.tasks
            report.measure("toolchain.changed", result.changed)
            if not result.ok:
                why = "; ".join(result.failures) or f"ansible-playbook exited with {result.rc}"
                raise StageFailed(f"the OCaml/Mirage toolchain failed: {why} (log: {result.log})")

    def verify(self, report: Report) -> None:
        hosts = self.provider.hosts()
        per_host = self._per_host(hosts)
        failed: list[str] = []
        for host in hosts:
            # one machine: check names as they are; lab hosts: each line says which host it is about
            view = _HostReport(report, host.name) if per_host else report
            problems = self._verify_host(host, view)
            if per_host:
                checks = report.checks_of(host.name)
                passed, total = sum(1 for c in checks if c.ok), len(checks)
                previous = report.hosts.get(host.name, {})
                report.host(host.name, checks_passed=passed, checks_total=total,
                            ok=previous.get("ok", True) and not problems,
                            error="; ".join(problems) or previous.get("error"))
            failed += [f"{host.name}: {p}" if per_host else p for p in problems]
        if failed:
            raise StageFailed("; ".join(failed))

    def _verify_host(self, host: Host, report) -> list[str]:
        from .verify import run_checks

        failed: list[str] = []
        state = self.state if host.name == "dom0" else self.state.for_host(host.name)
        with report.stage("checks"):
            checks_ok = run_checks(state, host.target, host.settings.role_vars(), report)
        if not checks_ok:
            failed.append(f"some checks failed (details: {state.logs / 'checks.log'})")
        # the probes run even when a check failed: the whole picture helps more than the first fault
        for enabled, probe in ((host.settings.probe.enabled, self._linux_probe),
                               (host.settings.unikernel.enabled, self._unikernel_probe)):
            if enabled:
                try:
                    probe(host, report)
                except StageFailed as exc:
                    failed.append(str(exc))
        return failed

    def _linux_probe(self, host: Host, report: Report) -> None:
        from .probe import run_probe

        with report.stage("domU probe"):
            result = run_probe(host.target, host, host.settings, report)
            report.measure("probe.xl_create_s", result.create_s)
            report.measure("probe.create_to_lease_s", result.create_to_lease_s)
            report.measure("probe.destroy_s", result.timings.get("destroy_s"))
            report.measure("probe.ip", result.ip)
            report.check("probe: Linux PV domU got a DHCP lease on the bridge", result.ip is not None,
                         result.error or "")
            if result.ip:
                report.check("probe: domU answers ping from the host-only network", result.ping_ok,
                             result.error or "")
            if not result.ok:
                raise StageFailed(f"the domU probe failed: {result.error}")
            report.info(f"probe domU got {result.ip} in {result.create_to_lease_s}s and answered ping")

    def _unikernel_probe(self, host: Host, report: Report) -> None:
        from .probe import run_probe
        from .unikernel_probe import http_checks

        uk = host.settings.unikernel
        with report.stage("unikernel"):
            result = run_probe(host.target, host, host.settings, report, name=uk.domain_name,
                               mac=uk.mac, lease_timeout=120,
                               while_up=lambda ip: http_checks(host, uk.app, ip))
            report.measure("unikernel.xl_create_s", result.create_s)
            report.measure("unikernel.create_to_lease_s", result.create_to_lease_s)
            report.measure("unikernel.ip", result.ip)
            linux = report.measurements.get("probe.create_to_lease_s")
            if linux and result.create_to_lease_s:
                report.measure("unikernel_vs_linux_lease_ratio", round(result.create_to_lease_s / linux, 3))
            report.check(f"unikernel: {uk.app} got a DHCP lease on the bridge", result.ip is not None,
                         result.error or "")
            if result.ip:
                report.check(f"unikernel: {uk.app} answers ping from the host-only network", result.ping_ok,
                             "" if result.ping_ok else (result.error or ""))
            for name, ok, detail in result.extra:
                report.check(f"unikernel: {name}", ok, detail)
            if not result.ok:
                raise StageFailed(f"the unikernel {uk.domain_name} failed: {result.error}")
            report.info(f"unikernel {uk.app} got {result.ip} in {result.create_to_lease_s}s and answered")
