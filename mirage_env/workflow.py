"""The stages behind the CLI: machine up → provision → checks → domU probe, each reported."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .providers import Provider, get_provider
from .report import Report
from .settings import Settings
from .state import StateDir

HOST_NAME = "dom0"


class StageFailed(Exception):
    """A stage ran and did not succeed; the message says what and where to look."""


@dataclass
class Environment:
    settings: Settings
    state: StateDir
    provider: Provider

    @classmethod
    def open(cls, settings: Settings, state_base: Path | None = None,
             image_cache: Path | None = None) -> "Environment":
        state = StateDir.for_env(settings.name, state_base)
        return cls(settings, state, get_provider(settings, state, image_cache))

    def new_report(self, command: str) -> Report:
        return Report(command, path=self.state.path(f"report-{command}.json"))

    # -- stages ----------------------------------------------------------------------------
    def machine_up(self, report: Report) -> None:
        with report.stage("machine"):
            self.provider.up(report)

    def provision(self, report: Report, toolchain: bool = False) -> None:
        from .provisioning import run_playbook, write_inventory

        if toolchain:
            self._provision_toolchain(report)
        with report.stage("provision"):
            inventory = write_inventory(self.state, HOST_NAME, self.provider.ssh_target(),
                                        self.provider.host_vars())
            extravars = self.settings.role_vars()
            if self.settings.unikernel.enabled:
                from .sources import pack_unikernel_sources

                extravars["unikernel_source_archive"] = str(pack_unikernel_sources(self.state))
            result = run_playbook(self.state, inventory, "site.yml", extravars, report)
            for role, seconds in result.role_seconds.items():
                report.measure(f"provision.{role}_s", seconds)
            reboot = [s for t, s in result.task_seconds.items() if t.endswith("Reboot into Xen") and s > 1]
            if reboot:
                report.measure("provision.reboot_into_xen_s", reboot[0])
            report.measure("provision.changed", result.changed)
            if not result.ok:
                why = "; ".join(result.failures) or f"ansible-playbook exited with {result.rc}"
                raise StageFailed(f"provisioning failed: {why} (log: {result.log})")
            report.info(f"provisioned: changed={result.changed} failed={result.failed}")

    def _provision_toolchain(self, report: Report) -> None:
        from .provisioning import run_playbook, write_inventory

        with report.stage("toolchain"):
            inventory = write_inventory(self.state, HOST_NAME, self.provider.ssh_target(),
                                        self.provider.host_vars())
            result = run_playbook(self.state, inventory, "mirage_toolchain.yml", {}, report)
            report.measure("toolchain.changed", result.changed)
            if not result.ok:
                why = "; ".join(result.failures) or f"ansible-playbook exited with {result.rc}"
                raise StageFailed(f"the OCaml/Mirage toolchain failed: {why} (log: {result.log})")

    def verify(self, report: Report) -> None:
        from .verify import run_checks

        target = self.provider.ssh_target()
        failed: list[str] = []
        with report.stage("checks"):
            checks_ok = run_checks(self.state, target, self.settings.role_vars(), report)
        if not checks_ok:
            failed.append(f"some checks failed (details: {self.state.logs / 'checks.log'})")
        # the probes run even when a check failed: the whole picture helps more than the first fault
        for enabled, probe in ((self.settings.probe.enabled, self._linux_probe),
                               (self.settings.unikernel.enabled, self._unikernel_probe)):
            if enabled:
                try:
                    probe(target, report)
                except StageFailed as exc:
                    failed.append(str(exc))
        if failed:
            raise StageFailed("; ".join(failed))

    def _linux_probe(self, target, report: Report) -> None:
        from .probe import run_probe

        with report.stage("domU probe"):
            result = run_probe(target, self.provider, self.settings, report)
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

    def _unikernel_probe(self, target, report: Report) -> None:
        from .probe import run_probe
        from .unikernel_probe import http_checks

        uk = self.settings.unikernel
        with report.stage("unikernel"):
            result = run_probe(target, self.provider, self.settings, report, name=uk.domain_name,
                               mac=uk.mac, lease_timeout=120,
                               while_up=lambda ip: http_checks(self.provider, uk.app, ip))
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
