"""The monitoring a team adds beside `maskdet serve` (deploy/, compose.yaml's
profile "monitoring"): Prometheus's own checker on the scrape configuration,
its rule tester on the alerts, and the Grafana dashboard asking only for
metrics the server exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import yaml

from tests.helpers import ROOT, require_system

DEPLOY = ROOT / "deploy"


def _promtool(*args) -> subprocess.CompletedProcess:
    require_system("promtool", bool(shutil.which("promtool")), "make system (Debian's prometheus package)")
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_scrape_configuration_and_its_rules():
    done = _promtool("check", "config", str(DEPLOY / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout + done.stderr


def _series(assumed: float, low: float, high: float, faces: int) -> list[dict]:
    share = 'maskdet_class_share{{kind="{}",label="mask_weared_incorrect"}}'
    return [
        {"series": share.format("assumed"), "values": f"{assumed}x60"},
        {"series": share.format("estimated_low"), "values": f"{low}x60"},
        {"series": share.format("estimated_high"), "values": f"{high}x60"},
        {"series": "maskdet_window_faces", "values": f"{faces}x60"},
    ]


def test_the_share_alert_fires_at_20_percent_incorrect_and_stays_quiet_at_3(tmp_path):
    """The same judgement as `maskdet monitor`, by Prometheus: the assumed 3 % outside
    the interval estimated from the answers (a world with 20 %) fires after its 30
    minutes; inside it (a world with 3 %), or with too few faces, nothing fires."""
    alert = "MaskdetIncorrectShareDrift"
    (rule,) = [
        r for group in yaml.safe_load((DEPLOY / "maskdet-rules.yml").read_text())["groups"]
        for r in group["rules"] if r["alert"] == alert
    ]  # fmt: skip
    fired = {
        "exp_labels": {"severity": "warning", "label": "mask_weared_incorrect"},
        "exp_annotations": rule["annotations"],
    }
    cases = [
        (_series(0.03, 0.18, 0.22, 2000), 40, [fired]),
        (_series(0.03, 0.18, 0.22, 2000), 20, []),  # not yet: 30 minutes first
        (_series(0.03, 0.02, 0.05, 2000), 40, []),
        (_series(0.03, 0.18, 0.22, 50), 40, []),
    ]
    tests = [
        {
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [{"eval_time": f"{minutes}m", "alertname": alert, "exp_alerts": expected}],
        }
        for series, minutes, expected in cases
    ]
    spec = tmp_path / "rules_test.yml"
    spec.write_text(yaml.safe_dump({"rule_files": [str(DEPLOY / "maskdet-rules.yml")], "tests": tests}))
    done = _promtool("test", "rules", str(spec))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_grafana_dashboard_asks_only_for_metrics_the_server_exports():
    from maskdet.predict.metrics import Monitor

    text = Monitor([0.75, 0.22, 0.03]).exposition()[0].decode()
    exported = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    exported |= {f"{name}_total" for name in exported} | {f"{name}_bucket" for name in exported}
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "maskdet.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {name for expr in exprs for name in re.findall(r"\bmaskdet_[a-z_]+", expr)}
    assert asked and asked <= exported, asked - exported
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    for service in ("prometheus", "grafana"):
        assert compose["services"][service]["profiles"] == ["monitoring"]
        for volume in compose["services"][service]["volumes"]:
            source = volume.split(":")[0]
            assert not source.startswith("./") or (ROOT / source).exists(), source
