"""`mirage-env`: a Xen dom0 for unikernel development, from one command, proven by checks.

Heavy modules (Ansible, pytest, paramiko) are imported inside the commands that use them, so
`mirage-env --help` stays fast.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

import click

from . import __version__, registry
from .errors import EXIT_BAD_INPUT, EXIT_FAILED, MirageEnvError


def _fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    raise MirageEnvError(message, exit_code=code)


def _colour() -> bool | None:
    """False when NO_COLOR is set (https://no-color.org: any non-empty value); else click decides."""
    return False if os.environ.get("NO_COLOR") else None


class _Cli(click.Group):
    """The one place a MirageEnvError becomes a message and an exit code (no traceback)."""

    def make_context(self, *args, **kwargs):
        ctx = super().make_context(*args, **kwargs)
        ctx.color = _colour()  # every click.echo/secho of this run, sub-commands included
        return ctx

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MirageEnvError as exc:
            click.secho(exc.render(), fg="red", err=True, color=_colour())
            sys.exit(exc.exit_code)


def _open_env(ctx: click.Context):
    """Settings → state dir → provider; bad settings end here with exit 2, nothing touched."""
    from .providers import ProviderError
    from .settings import load_settings
    from .state import StateDir
    from .workflow import Environment

    opts = ctx.obj
    try:
        settings = load_settings(opts["config"], opts["overrides"])
        if settings.provider == "auto":
            # the provider this environment was brought up with, so `status`/`down` find it
            recorded = StateDir.for_env(settings.name, opts["state_dir"]).read_json("provider.json")
            if recorded.get("provider"):
                settings = load_settings(opts["config"], {**opts["overrides"], "provider": recorded["provider"]})
        return Environment.open(settings, opts["state_dir"], limit=opts["limit"])
    except ProviderError as exc:  # a provider refusing these settings: bad input, nothing started
        raise MirageEnvError(str(exc), exit_code=EXIT_BAD_INPUT) from exc


def _run_stages(ctx: click.Context, command: str, stages, as_json: bool = False) -> None:
    """Run `stages(env, report)` holding the environment, write the report, turn known failures
    into clear messages. With --json the report goes to stdout (progress stays on stderr)."""
    env = _open_env(ctx)
    with env.state.exclusive(command):
        _run_stages_held(env, command, stages, as_json, ctx.obj.get("verbosity", 0))


def _run_stages_held(env, command: str, stages, as_json: bool = False, verbosity: int = 0) -> None:
    report = env.new_report(command)
    if verbosity < 0:
        report.console.quiet = True  # -q: only errors and the --json report
    ok, log = False, None
    try:
        stages(env, report)
        ok = True
    except (MirageEnvError, TimeoutError) as exc:
        log = getattr(exc, "log", None)
        click.secho(f"error: {exc}", fg="red", err=True)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a playbook (which stops it first)
        click.secho(f"interrupted: {exc}" if str(exc) else "interrupted", fg="red", err=True)
    except Exception:  # an unexpected bug: keep the traceback in a file, not on the user's screen
        log = env.state.logs / "crash.log"
        log.write_text(traceback.format_exc())
        click.secho(f"error: unexpected failure: {sys.exc_info()[1]} (traceback in {log})", fg="red", err=True)
    finally:
        data = report.finish(ok, log or env.state.logs)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    if not ok and verbosity > 0 and log and Path(log).is_file():  # -v: the log's tail, not just its path
        click.echo("".join(Path(log).read_text(errors="replace").splitlines(keepends=True)[-40:]), err=True)
    if not ok:
        click.echo(_recovery_hint(env), err=True)
        sys.exit(EXIT_FAILED)


def _recovery_hint(env) -> str:
    return (f"State and logs: {env.state.root}\n"
            "To recover: fix the cause above and run `mirage-env up` again (every stage is safe to "
            "re-run), or `mirage-env down --destroy` to start from a fresh machine.")


def _target_option(key: str):
    """`up --provider X` as well as `mirage-env --provider X up`: the value lands in the shared options."""

    def store(ctx: click.Context, _param, value):
        if value is not None:
            obj = ctx.find_root().obj
            if key == "provider":
                obj["overrides"]["provider"] = value
            elif key == "inventory":
                obj["overrides"]["lab.inventory"] = str(value)
                obj["overrides"].setdefault("provider", "ssh")
            else:
                obj["limit"] = value
        return value

    return store


def target_options(command):
    """--provider/--inventory/--limit on the commands that bring up, provision or look at hosts."""
    command = click.option("--limit", metavar="PATTERN", expose_value=False, callback=_target_option("limit"),
                           help="Only these lab hosts: names or globs, comma-separated.")(command)
    command = click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path), expose_value=False,
                           callback=_target_option("inventory"),
                           help="Lab inventory for --provider ssh (see inventory/lab.example.yml).")(command)
    return click.option("--provider", type=click.Choice(registry.PROVIDERS),
                        expose_value=False, callback=_target_option("provider"),
                        help="Where the dom0 comes from: qemu (built in), virtualbox/libvirt (Vagrant), "
                             "ssh (lab hosts). Default: auto-detected.")(command)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mirage-env")
@click.option("-c", "--config", type=click.Path(dir_okay=False, path_type=Path),
              help="Settings file (default: ./mirage-env.yml when present).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              envvar="MIRAGE_ENV_STATE_DIR", help="Where machines, keys, logs and reports go (default ./.mirage-env).")
@click.option("-s", "--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one setting, e.g. -s dom0.memory=768M (repeatable).")
@click.option("--provider", type=click.Choice(registry.PROVIDERS),
              help="Where the dom0 comes from (default: the setting `provider`, auto-detected).")
@click.option("--inventory", type=click.Path(dir_okay=False, path_type=Path),
              help="Lab inventory for --provider ssh (see inventory/lab.example.yml).")
@click.option("--limit", metavar="PATTERN", help="Only these lab hosts: names or globs, comma-separated.")
@click.option("-v", "--verbose", is_flag=True, help="More output: on a failure, also the tail of its log.")
@click.option("-q", "--quiet", is_flag=True, help="Less output: no progress, only errors (and --json reports).")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, state_dir: Path | None, overrides: tuple[str, ...],
        provider: str | None, inventory: Path | None, limit: str | None, verbose: bool, quiet: bool) -> None:
    """Get a Xen dom0 whose unikernels boot, get an address and answer.

    \b
    mirage-env up         machine → Xen dom0 → br0 + DHCP → checks → domU probe
    mirage-env verify     run the checks and the domU probe again
    mirage-env ssh        a shell on the dom0
    mirage-env down       stop the machine (add --destroy to delete it)
    """
    parsed = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--set {item!r} is not KEY=VALUE. Fix: e.g. --set dom0.memory=768M", EXIT_BAD_INPUT)
        key, value = key.strip(), value.strip()
        if key in parsed and parsed[key] != value:  # the last would win unnoticed, as a YAML key twice
            _fail(f"--set {key} is given twice ({parsed[key]!r} and {value!r}). Fix: give it once",
                  EXIT_BAD_INPUT)
        parsed[key] = value
    if provider:
        if parsed.get("provider", provider) != provider:
            _fail(f"--provider {provider} and --set provider={parsed['provider']} contradict each other. "
                  "Fix: give one of them", EXIT_BAD_INPUT)
        parsed["provider"] = provider
    if inventory:
        parsed["lab.inventory"] = str(inventory)
        parsed.setdefault("provider", "ssh")
    if verbose and quiet:
        _fail("--verbose and --quiet contradict each other. Fix: give one of them", EXIT_BAD_INPUT)
    ctx.obj = {"config": config, "state_dir": state_dir, "overrides": parsed, "limit": limit,
               "verbosity": 1 if verbose else -1 if quiet else 0}


JSON_REPORT_HELP = "Print the report (stages, checks, measurements) as JSON on stdout; progress stays on stderr."
TOOLCHAIN_HELP = "Also install OCaml, opam and Mirage on the dom0 (large; opam needs its repository)."


@cli.command()
@target_options
@click.option("--no-verify", is_flag=True, help="Stop after provisioning.")
@click.option("--no-provision", is_flag=True, help="Only start the machine (e.g. for Molecule or a lab test).")
@click.option("--toolchain", is_flag=True, help=TOOLCHAIN_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_REPORT_HELP)
@click.pass_context
def up(ctx: click.Context, no_verify: bool, no_provision: bool, toolchain: bool, as_json: bool) -> None:
    """Start the machine, make it a Xen dom0, verify it with checks and a domU probe."""

    def stages(env, report):
        env.machine_up(report)
        if no_provision:
            return
        env.provision(report, toolchain)
        if not no_verify:
            env.verify(report)

    _run_stages(ctx, "up", stages, as_json)


@cli.command()
@target_options
@click.option("--toolchain", is_flag=True, help=TOOLCHAIN_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_REPORT_HELP)
@click.pass_context
def provision(ctx: click.Context, toolchain: bool, as_json: bool) -> None:
    """Run the playbooks against the running machine (safe to repeat: changed=0 when converged)."""
    _run_stages(ctx, "provision", lambda env, report: env.provision(report, toolchain), as_json)


@cli.command()
@target_options
@click.option("--json", "as_json", is_flag=True, help=JSON_REPORT_HELP)
@click.pass_context
def verify(ctx: click.Context, as_json: bool) -> None:
    """Run the testinfra checks and the domU probe against the dom0."""
    _run_stages(ctx, "verify", lambda env, report: env.verify(report), as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (with a `topology` key).")
@click.option("--graph", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw the topology to FILE (.svg or .png, through Graphviz's dot).")
@click.option("--no-topology", is_flag=True, help="Only the machine's state: do not read the dom0.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, graph: Path | None, no_topology: bool) -> None:
    """The machine and its live topology: host ↔ host-only network ↔ dom0 NIC ↔ bridge ↔ vifs ↔ domUs,
    read from the running system, with every difference from the settings."""
    import shutil

    from .topology import collect_views, json_topology
    from .topology_render import GRAPH_FORMATS, render_text, to_dot, write_graph

    if graph is not None and graph.suffix.lower() not in GRAPH_FORMATS:
        _fail(f"--graph {graph}: unknown suffix {graph.suffix!r}. Fix: end the name in .svg or .png",
              EXIT_BAD_INPUT)
    env = _open_env(ctx)
    info = {"name": env.settings.name, "state_dir": str(env.state.root), **env.provider.status()}
    views = collect_views(env, info, graph, read=not no_topology)
    written = []
    for view in views:
        if view.graph is not None:
            write_graph(to_dot(view.info, view.topology), view.graph)
            written.append(view.graph)
    if as_json:
        info["topology"] = json_topology(info, views)
        click.echo(json.dumps(info, indent=2))
        return
    if no_topology:
        for key, value in info.items():
            click.echo(f"{key:>20}: {value}")
        return
    width = min(shutil.get_terminal_size((100, 24)).columns, 120)
    for view in views:
        click.echo(render_text(view.info, view.topology, width=width, color=sys.stdout.isatty() and _colour() is None), nl=False)
    for path in written:
        click.echo(f"graph: {path}")


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Open a shell on the dom0 (or run COMMAND there)."""
    env = _open_env(ctx)
    config, alias = env.state.write_ssh_config(env.provider.ssh_target())
    os.execvp("ssh", ["ssh", "-F", str(config), alias, *command])


@cli.command()
@click.option("--destroy", is_flag=True, help="Also delete the machine's disk overlay and keys.")
@click.pass_context
def down(ctx: click.Context, destroy: bool) -> None:
    """Stop the machine and remove its tap and namespace."""

    def stages(env, report):
        from .launch import forget, records

        with report.stage("down"):
            for line in forget(env.state, list(records(env.state))):  # the --publish forwarders
                report.step(line)
            (env.provider.destroy if destroy else env.provider.down)(report)

    _run_stages(ctx, "down", stages)


@cli.group()
@click.pass_context
def unikernel(ctx: click.Context) -> None:
    """The bundled unikernel toolchain."""


@unikernel.command("build")
@click.option("--app", required=True, type=click.Choice(registry.app_names()), help="Which bundled app to build.")
@click.option("--target", type=click.Choice(["host", "xen"]), default="host", show_default=True,
              help="host: a Linux process on a tap (for tests); xen: a PV domU kernel.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("build"), show_default=True,
              help="Directory the binary is written to.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="App data directory (auth: users/, www: the site).")
def unikernel_build(app: str, target: str, out: Path, data: Path | None) -> None:
    """Build APP for TARGET with the bundled toolchain."""
    from . import bundled as builder

    path = builder.build(app, target=target, out_dir=out, data_dir=data)
    click.echo(str(path))


def _dom0_client(ctx: click.Context):
    """(environment, paramiko client) for one SSH connection to the dom0, closed with the command."""
    from . import sshclient

    env = _open_env(ctx)
    try:
        client = sshclient.connect(env.provider.ssh_target())
    except OSError as exc:
        _fail(f"cannot reach the dom0 over SSH ({exc}). Fix: `mirage-env up`")
    ctx.call_on_close(client.close)
    ctx.meta["dom0_client"] = client
    return env, client


def _dom0_shell(ctx: click.Context):
    """(environment, sh) with `sh(command) -> (code, output)` over one SSH connection to the dom0."""
    from . import sshclient

    env, client = _dom0_client(ctx)
    return env, lambda command, timeout=300: sshclient.run(client, command, timeout=timeout)


@unikernel.command("run")
@click.option("--kernel", type=click.Path(dir_okay=False, path_type=Path),
              help="Your own Xen kernel (ELF with Xen PV or PVH notes), e.g. dist/NAME.xen of a MirageOS 4 build.")
@click.option("--app", type=click.Choice(registry.runnable_app_names()),
              help="A bundled app, built on this machine (default: auth, when no --kernel).")
@click.option("--type", "guest_type", type=click.Choice(["pv", "pvh"]),
              help="Boot as PV or PVH (default: from the kernel's ELF notes; PVH where the dom0 has hap).")
@click.option("--name", help="Domain name (default mirage-APP or the kernel file's stem); with --count, "
                             "names are NAME-01, NAME-02, …")
@click.option("--memory", type=click.IntRange(4, 4096), default=None,
              help="MiB (default: 4 for the bundled apps, 16 for a PV kernel, 32 for a PVH kernel).")
@click.option("--cmdline", default="", help="Extra kernel command line (xl `extra`), e.g. '--ipv4-only=true'.")
@click.option("--disk", "disks", multiple=True, metavar="PATH[:rw]",
              help="Attach a file, or a directory packed into an image, as xvdb, xvdc, … (read-only unless :rw). Repeatable.")
@click.option("--disk-format", type=click.Choice(["fat", "tar"]), default="fat", show_default=True,
              help="Image format for --disk directories.")
@click.option("--publish", "-p", multiple=True, metavar="HOSTPORT:GUESTPORT",
              help="Forward 127.0.0.1:HOSTPORT here to the unikernel's GUESTPORT while it runs. Repeatable.")
@click.option("--count", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Boot this many of a bundled app at once (one build, one MAC and lease each).")
@click.option("--autostart", is_flag=True, help="Also boot it with the dom0 (xendomains, /etc/xen/auto).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def unikernel_run(ctx: click.Context, kernel: Path | None, app: str | None, guest_type: str | None,
                  name: str | None, memory: int | None, cmdline: str, disks: tuple[str, ...], disk_format: str,
                  publish: tuple[str, ...], count: int, autostart: bool, as_json: bool) -> None:
    """Boot a unikernel on the bridge and wait for its DHCP lease: your own --kernel, or a bundled
    --app (built here, copied to the dom0 by content)."""
    if kernel is None and app is None:
        app = "auth"
    if count > 1 or app in _console_apps():
        if kernel is not None or disks or publish or guest_type:
            _fail("--count and the console-only apps boot bundled apps as they are: no --kernel, --disk, "
                  "--publish or --type with them. Fix: drop those options, or boot one unikernel at a time "
                  "without --count", EXIT_BAD_INPUT)
        _run_many(ctx, app, name, memory or 4, count, autostart, as_json, cmdline)
        return
    _run_one(ctx, kernel, app, guest_type, name, memory, cmdline, disks, disk_format, publish, autostart, as_json)


def _console_apps() -> set[str]:
    from .domus import CONSOLE_READY

    return set(CONSOLE_READY)


def _run_one(ctx, kernel, app, guest_type, name, memory, cmdline, disks, disk_format, publish, autostart,
             as_json) -> None:
    """One unikernel, any kernel: checked, copied by content, booted, published."""
    import time

    from . import launch
    from .domus import name_problem
    from .report import Report
    from .settings import lease_seconds

    name = name or (f"mirage-{app}" if app else kernel.stem.replace("_", "-")[:60])
    if problem := name_problem(name):  # before the environment is even opened
        _fail(f"--name: {problem}. Fix: e.g. --name my-auth", EXIT_BAD_INPUT)
    req = launch.Request(name, kernel, app, guest_type, memory, cmdline, disks, disk_format, publish, autostart)
    env = _open_env(ctx)
    report = Report("unikernel run")
    # local checks first: a bad kernel, disk or port is refused (exit 2) before the dom0 is touched
    with report.stage(f"check {name}"):
        checked = launch.check_locally(req, env.state, env.state.path("build"), report)
    t0 = time.monotonic()
    _, sh = _dom0_shell(ctx)
    connect_s = round(time.monotonic() - t0, 1)
    with report.stage(f"run {name}"):
        result = launch.run(env, ctx.meta["dom0_client"], sh, checked, report,
                            lease_seconds(env.settings.network.lease_time) or 3600)
    result["phases"] = {"ssh_connect_s": connect_s, **result["phases"]}
    if as_json:
        click.echo(json.dumps({"domus": [result], "total_s": result["total_s"],
                               "create_to_lease_median_s": result["create_to_lease_s"],
                               "create_to_lease_worst_s": result["create_to_lease_s"]}, indent=2))
    if result["error"]:
        click.secho(f"error: {result['error']}", fg="red", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        return
    ns = env.provider.status().get("host_only_namespace")
    click.echo(f"{name} is up at {result['ip']} (xl create → lease {result['create_to_lease_s']}s; "
               f"{result['total_s']}s in all)")
    copied = ("copied to the dom0" if any(c.endswith(".xen") for c in result["copied"])
              else "already on the dom0, not copied")
    click.echo(f"  kernel: {result['kernel']} ({result['type'].upper()}, {result['memory_mb']} MiB, "
               f"sha256 {result['sha256'][:12]}…, {copied})")
    for disk in result["disks"]:
        click.echo(f"  disk {disk['vdev']}: {disk['source']} ({'rw' if disk['rw'] else 'ro'}"
                   f"{', image rebuilt' if disk['rebuilt'] else ''})")
    for p in result["publish"]:
        click.echo(f"  published: http://127.0.0.1:{p['host_port']}/ → {result['ip']}:{p['guest_port']} "
                   f"(forwarder pid {p['pid']})")
    if result["dns_name"]:
        where = f"ip netns exec {ns} " if ns else ""
        click.echo(f"  by name: {result['dns_name']} (DNS on the dom0 bridge {result['dns_server']}), "
                   f"e.g. {where}curl http://{result['dns_name']}/")
    from .domus import try_url

    url = try_url(app, result["ip"]) if app else None
    if ns and url:
        click.echo(f"try: ip netns exec {ns} curl '{url}'")
    click.echo(f"console: mirage-env unikernel logs {name} [--follow]; stop: mirage-env unikernel stop {name}")


def _run_many(ctx, app: str, name: str | None, memory: int, count: int, autostart: bool, as_json: bool,
              cmdline: str = "") -> None:
    """COUNT of a bundled app (or a console-only app): built here once, copied by content."""
    import time

    from . import bundled, launch
    from .dom0.xlconfig import cmdline_problem
    from .domus import name_problem, run_apps, run_hints, run_summary
    from .report import Report
    from .settings import lease_seconds

    name = name or f"mirage-{app}"
    names = [name] if count == 1 else [f"{name}-{i:02d}" for i in range(1, count + 1)]
    if problem := name_problem(names[-1]):
        _fail(f"--name: {problem}. Fix: e.g. --name my-auth", EXIT_BAD_INPUT)
    if problem := cmdline_problem(cmdline):  # refused before the dom0 is touched
        _fail(f"--cmdline: {problem}", EXIT_BAD_INPUT)
    env, sh = _dom0_shell(ctx)
    report = Report("unikernel run")
    t0 = time.monotonic()
    with report.stage(f"run {name}" if count == 1 else f"run {count} × {app}"):
        report.step(f"building {app} for Xen on this machine")
        image = launch.upload_image(ctx.meta["dom0_client"], sh,
                                    bundled.build(app, "xen", env.state.path("build")), report)
        booted = run_apps(sh, app, names, memory, env.settings.network.bridge,
                          lease_seconds(env.settings.network.lease_time) or 3600, report,
                          autostart=autostart, image=image, cmdline=cmdline)
    total_s = round(time.monotonic() - t0, 1)
    failed = {n: b for n, b in booted.items() if b.error}
    if as_json:
        click.echo(json.dumps(run_summary(names, booted, total_s), indent=2))
    else:
        namespace = env.provider.status().get("host_only_namespace")
        for line in run_hints(app, names, booted, total_s, autostart, namespace):
            click.echo(line)
    if failed:
        for n, b in failed.items():
            click.secho(f"error: {b.error}" + (f"\n{b.console_tail}" if b.console_tail else ""), fg="red", err=True)
        sys.exit(EXIT_FAILED)


@unikernel.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def unikernel_list(ctx: click.Context, as_json: bool) -> None:
    """The running domUs: type, memory, MAC, address, kernel, published ports, uptime."""
    from .launch import human_uptime, list_unikernels

    env, sh = _dom0_shell(ctx)
    rows = list_unikernels(sh, env.state)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'name':<22} {'id':>3} {'type':<4} {'MiB':>5} {'state':<7} {'mac':<17} {'ip':<15} "
               f"{'uptime':>9}  kernel / published")
    for r in rows:
        extra = r["kernel"] or "-"
        if r["published"]:
            extra += "  " + ", ".join(r["published"])
        click.echo(f"{r['name']:<22} {r['domid']:>3} {(r['type'] or '-').upper():<4} {r['memory_mb']:>5} "
                   f"{r['state']:<7} {r['mac'] or '-':<17} {r['ip'] or '-':<15} {human_uptime(r['uptime_s']):>9}  {extra}")


@unikernel.command("logs")
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep printing what it writes (Ctrl-C ends).")
@click.pass_context
def unikernel_logs(ctx: click.Context, name: str, follow: bool) -> None:
    """Print a domU's console log."""
    from .domus import logs

    _, sh = _dom0_shell(ctx)
    text = logs(sh, name)  # also the check that NAME has a console log
    if not follow:
        click.echo(text, nl=False)
        return
    from .launch import follow_logs

    follow_logs(ctx.meta["dom0_client"], name, lambda chunk: (sys.stdout.write(chunk), sys.stdout.flush()))


@unikernel.command("stop")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def unikernel_stop(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Destroy domUs, end their autostart and release their DHCP leases."""
    from .domus import name_problem, stop

    for name in names:
        if problem := name_problem(name):
            _fail(f"{problem}. Fix: give a name `mirage-env unikernel list` shows", EXIT_BAD_INPUT)
    from .launch import forget

    env, sh = _dom0_shell(ctx)
    done, errors = stop(sh, list(names), env.settings.network.bridge)
    done += forget(env.state, names)  # their --publish forwarders end with them
    for line in done:
        click.echo(line)
    if errors:
        _fail("\n".join(errors))


@cli.command()
@click.argument("domain")
@click.option("--send", "text", help="Send one line and print the reply (for scripts).")
@click.option("--path", help="xenstore path of the vchan (default /local/domain/ID/data/vchan).")
@click.pass_context
def vchan(ctx: click.Context, domain: str, text: str | None, path: str | None) -> None:
    """Talk to a unikernel over vchan from the dom0, through Xen's own libxenvchan."""
    from .vchan import check_arguments, client_command, vchan_send

    check_arguments(domain, text, path)  # before connecting: a bad argument is not "never started"
    env, client = _dom0_client(ctx)
    if text is not None:
        click.echo(vchan_send(client, domain, text, path))
        return
    command = client_command(client, domain, path)
    config, alias = env.state.write_ssh_config(env.provider.ssh_target())
    click.echo("type lines; the unikernel answers each one. Ctrl-D ends.", err=True)
    os.execvp("ssh", ["ssh", "-F", str(config), "-t", alias, command])


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check this host before anything starts; each failure names the command that fixes it."""
    from .doctor import as_dict, run_checks
    from .providers import resolve_provider_name
    from .settings import load_settings
    from .state import StateDir

    # no provider object: the doctor must work before anything of a provider is set up
    settings = load_settings(ctx.obj["config"], ctx.obj["overrides"])
    provider = resolve_provider_name(settings)
    checks = run_checks(settings, provider, StateDir.for_env(settings.name, ctx.obj["state_dir"]).root)
    result = as_dict(checks, provider)
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        colours = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "bright_black"}
        click.echo(f"provider: {provider}")
        for check in checks:
            click.echo(click.style(f"{check.status:>5}", fg=colours[check.status]) + f"  {check.name}: {check.detail}")
            if check.fix and check.status in ("fail", "warn"):
                click.echo(f"       fix: {check.fix}")
    sys.exit(0 if result["ok"] else EXIT_FAILED)


def main() -> None:
    cli(prog_name="mirage-env")


if __name__ == "__main__":
    main()
