"""`mirage-env status` against the live machine of the end-to-end run: called from test_up.py (a
plain function, not a test, so it shares that file's machine and order).

    from tests.e2e.topology_checks import check_live_topology
    timings = check_live_topology(env, domain="e2e-www")   # while e2e-www runs
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path


def check_live_topology(env, domain: str | None = None) -> dict:
    """Read the topology of the running machine three ways (JSON, text, SVG) and check it against
    the default settings; with `domain`, also that domU's vif on br0 and its lease. Returns
    timings in seconds (for `measure`, never asserted)."""
    timings = {}
    t0 = time.monotonic()
    proc = env.run("status", "--json")
    timings["status_json_s"] = round(time.monotonic() - t0, 1)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert info["running"] and info["host_only_namespace"]
    topo = info["topology"]
    timings["status_dom0_read_s"] = topo["collect_s"]["dom0_s"]
    assert topo["problems"] == [], topo["problems"]
    assert any("192.168.56.1/24" in i["addresses"] for i in topo["host_side"])
    assert topo["dom0_nic"]["name"] == "eth1" and topo["dom0_nic"]["master"] == "br0"
    assert topo["dom0_nic"]["addresses"] == []
    bridge = topo["bridge"]
    assert bridge["name"] == "br0" and bridge["addresses"] == ["192.168.56.5/24"]
    assert bridge["ageing_s"] == 0 and bridge["stp"] is False
    if domain is not None:
        [vif] = [v for v in topo["vifs"] if v["domain"] == domain]
        assert vif["bridge"] == "br0" and vif["name"] == f"vif{vif['domid']}.0"
        assert vif["ip"] and vif["ip"].startswith("192.168.56.")
        assert any(l["mac"] == vif["guest_mac"] and l["ip"] == vif["ip"] for l in topo["leases"])

    # the text drawing and the SVG, in one run
    out_dir = Path(tempfile.mkdtemp(prefix="mev-topology-", dir="/var/tmp"))
    try:
        svg = out_dir / "topology.svg"
        t0 = time.monotonic()
        proc = env.run("status", "--graph", str(svg))
        timings["status_graph_s"] = round(time.monotonic() - t0, 1)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "no problems" in proc.stdout and "br0" in proc.stdout and "192.168.56.5/24" in proc.stdout
        if domain is not None:
            assert domain in proc.stdout
        words = " ".join(t.text or "" for t in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}text"))
        assert "br0" in words and "host-only network" in words
        if domain is not None:
            assert domain in words
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

    # a setting that differs from the running system is shown, not silently believed
    proc = env.run("-s", "network.dom0_address=192.168.56.6", "status")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "br0 has 192.168.56.5/24 (expected 192.168.56.6/24)" in proc.stdout
    return timings
