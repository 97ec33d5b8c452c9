"""`unikernel stop`'s reading of its one dom0 script's output (the script itself runs in the e2e
tests): sections after @@ markers, stderr appended after stdout as sshclient.run returns it."""

from mirage_env.domus import _stop_script, parse_stop_output

# xl network-list as Xen 4.17 prints it, a failed destroy, a lease file, and a sudo warning on
# stderr (sshclient.run appends stderr after stdout: it must not be read as part of a section)
OUTPUT = """@@domu e2e-load-01
0   0  00:16:3e:12:34:56     0     4             9   768/769         /local/domain/0/backend/vif/3/0
@@destroyed 0 
@@domu gone
@@destroyed 1 destroy failed (rc=-21) libxl: error: libxl_domain.c:1290:libxl_domain_destroy: non-existant domain 42 
@@leases
1795333477 00:16:3e:12:34:56 192.168.56.151 * 01:00:16:3e:12:34:56
1795333478 00:16:3e:aa:bb:cc 192.168.56.152 * *
sudo: unable to resolve host dom0: Name or service not known
"""


def test_sections_are_read_and_stderr_after_them_is_ignored():
    seen = parse_stop_output(OUTPUT)
    assert seen.macs == {"e2e-load-01": ["00:16:3e:12:34:56"], "gone": []}
    assert seen.failures == {"gone": "destroy failed (rc=-21) libxl: error: libxl_domain.c:1290:"
                                     "libxl_domain_destroy: non-existant domain 42"}
    assert [l.ip for l in seen.leases] == ["192.168.56.151", "192.168.56.152"]
    assert seen.has_release is False  # the sudo warning after the leases is not "dhcp_release exists"


def test_dhcp_release_is_found_only_by_its_marker():
    assert parse_stop_output(OUTPUT + "@@has-dhcp-release\n").has_release is True


def test_the_script_quotes_every_name():
    script = _stop_script(["plain", "it's"])
    assert "for n in plain 'it'\"'\"'s'; do" in script
    assert "tr '\\n' ' '" in script  # the shell gets the two characters \\n


def test_run_hints_say_where_each_domu_is_and_how_to_reach_it():
    from mirage_env.dom0.boot import Booted
    from mirage_env.domus import run_hints, run_summary

    one = {"web": Booted("192.168.56.160", 1.0, 12.0, "", None)}
    lines = run_hints("auth", ["web"], one, 14.0, autostart=False, namespace="mev-1")
    assert lines[0] == "web is up at 192.168.56.160 (xl create → lease 12.0s)"
    assert lines[1].startswith("try: ip netns exec mev-1 curl 'http://192.168.56.160:8088/login?user=")
    # the hint names the unikernel: a command to paste, not a placeholder
    assert lines[-1] == "console: mirage-env unikernel logs web; stop: mirage-env unikernel stop web"

    many = {"a": Booted("192.168.56.161", 1.0, 10.0, "", None), "b": Booted("192.168.56.162", 1.0, 20.0, "", None),
            "c": Booted(None, 1.0, None, "", "no DHCP lease")}
    lines = run_hints("www", ["a", "b", "c"], many, 30.0, autostart=True, namespace="mev-1")
    assert "2 of 3 up in 30.0s; xl create → lease median 15.0s, worst 20.0s" in lines
    assert lines[-1].endswith("unikernel stop a b") and not any(l.startswith("try:") for l in lines)
    assert "logs NAME (one of: a b)" in lines[-1]
    summary = run_summary(["a", "b", "c"], many, 30.0)
    assert (summary["create_to_lease_median_s"], summary["create_to_lease_worst_s"]) == (15.0, 20.0)
    assert summary["domus"][2]["error"] == "no DHCP lease"


def test_a_destroy_that_failed_for_a_domain_now_gone_is_a_stop_with_a_warning():
    # Xen's stock block script's `remove` can fail the destroy of a domain libxl did destroy
    out = ("@@domu e2e-pvh\n0   0  00:16:3e:12:34:57     0     4             9   768/769         "
           "/local/domain/0/backend/vif/6/0\n@@destroyed gone libxl: error: script: /etc/xen/scripts/block "
           "failed; error detected. destroy failed (rc=-15) \n@@leases\n")
    seen = parse_stop_output(out)
    assert seen.failures == {}
    assert seen.warnings == {"e2e-pvh": "libxl: error: script: /etc/xen/scripts/block failed; error detected. "
                                        "destroy failed (rc=-15)"}
    assert seen.macs == {"e2e-pvh": ["00:16:3e:12:34:57"]}


def test_only_a_domain_that_existed_before_the_destroy_can_be_gone(tmp_path):
    """The stop script's own branching, run by bash, with an `xl` that plays three domains (the
    real xl runs in the e2e tests, where a hotplug failure cannot be made on demand): one destroyed
    cleanly, one whose destroy fails although the domain goes, one that never existed."""
    import os
    import subprocess

    (tmp_path / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (tmp_path / "xl").write_text("""#!/bin/sh
case "$1:$2" in
network-list:clean | network-list:vanishing) echo "Idx BE Mac Addr."; exit 0 ;;
destroy:clean) exit 0 ;;
destroy:vanishing) echo "script: /etc/xen/scripts/block failed"; exit 1 ;;
destroy:*) echo "invalid domain identifier"; exit 1 ;;
domid:*) exit 1 ;;
esac
exit 1
""")
    for tool in ("sudo", "xl"):
        (tmp_path / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    out = subprocess.run(["bash", "-c", _stop_script(["clean", "vanishing", "never"]).replace(
        "/etc/xen/auto", str(tmp_path))], env=env, capture_output=True, text=True, check=True).stdout
    seen = parse_stop_output(out)
    assert seen.warnings == {"vanishing": "script: /etc/xen/scripts/block failed"}
    assert seen.failures == {"never": "invalid domain identifier"}
    assert set(seen.macs) == {"clean", "vanishing", "never"}
