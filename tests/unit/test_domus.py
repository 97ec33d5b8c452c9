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
