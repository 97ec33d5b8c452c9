"""The per-task timing records of a provisioning run, as the report and the benchmark read them."""

from benchmarks.provision_tasks import summarize
from mirage_env.provisioning import task_record


def test_a_changed_task_and_a_skipped_one():
    changed = task_record("runner_on_ok", {"task": "Install Xen", "role": "xen_dom0", "host": "dom0",
                                           "duration": 12.345, "res": {"changed": True}})
    assert changed == {"task": "Install Xen", "role": "xen_dom0", "host": "dom0", "seconds": 12.35,
                       "changed": True, "status": "changed"}
    skipped = task_record("runner_on_skipped", {"task": "Reboot into Xen", "role": "xen_dom0",
                                                "host": "dom0", "duration": 0.4})
    assert skipped["status"] == "skipped" and skipped["changed"] is False
    failed = task_record("runner_on_failed", {"task": "x", "host": "dom0", "duration": None,
                                              "res": {"changed": True}})
    assert failed["status"] == "failed" and failed["changed"] is False and failed["role"] == "play"


def test_the_benchmark_sums_per_role():
    tasks = [task_record("runner_on_ok", {"task": t, "role": r, "host": "dom0", "duration": s,
                                          "res": {"changed": c}})
             for t, r, s, c in (("a", "xen_dom0", 3.0, False), ("b", "xen_dom0", 2.5, True),
                                ("c", "dnsmasq", 1.0, False))]
    report = {"ok": True, "stages": [{"name": "provision", "seconds": 9.9}], "tasks": tasks}
    summary = summarize(report)
    assert summary["roles"]["xen_dom0"] == {"seconds": 5.5, "tasks": 2, "changed": 1}
    assert summary["changed"] == 1 and summary["provision_stage_s"] == 9.9 and summary["tasks_run"] == 3
