"""The Grafana dashboard of the `monitoring` compose profile: provisioned, and every
query names a metric that `python -m server` exports (read from a live metrics page)."""
from __future__ import annotations

import json
import re
import urllib.request

import pytest
import yaml

from server import ServerProcess
from tests._docker import CONFIG, ROOT, compose_config, parse_monitoring

GRAFANA = CONFIG / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
# a PromQL metric name: TF Serving's start with a colon
METRIC = re.compile(r"(?<![\w:$])(:?[a-zA-Z_][a-zA-Z0-9_]*(?::[a-zA-Z0-9_]+)+)")
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard.get("templating", {}).get("list", []) if v.get("type") == "query"]
    return exprs


def _metrics_named(expr: str) -> set[str]:
    return {m for m in METRIC.findall(expr) if m.startswith(":tensorflow:")}


@pytest.fixture(scope="module")
def exported_metrics(tiny_model_dir) -> dict[str, str]:
    """{family: type} from the `# TYPE` lines of a live server's metrics page."""
    flags = [f"--model_base_path={tiny_model_dir}", "--model_name=tiny",
             f"--monitoring_config_file={CONFIG / 'monitoring.config'}", "--enable_batching=true"]
    with ServerProcess(flags, timeout=300) as server:
        url = server.rest_url + parse_monitoring().prometheus_config.path
        with urllib.request.urlopen(url, timeout=30) as response:
            page = response.read().decode()
    return dict(line.split()[2:4] for line in page.splitlines() if line.startswith("# TYPE "))


def test_there_is_a_dashboard_and_it_parses_with_panels_and_queries():
    assert DASHBOARDS
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        assert all(t["datasource"]["uid"] == "prometheus" for p in dashboard["panels"] for t in p.get("targets", []))
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        assert len(_queries(dashboard)) >= 8


def test_the_dashboard_shows_request_rate_by_status_latency_percentiles_batch_sizes_and_model_states():
    exprs = " ".join(_queries(json.loads((GRAFANA / "dashboards" / "tfserving.json").read_text())))
    assert re.search(r"sum by \(status\) \(rate\(:tensorflow:serving:request_count", exprs)
    for q in ("0.5", "0.9", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(:tensorflow:serving:request_latency_bucket" in exprs
    assert ":tensorflow:serving:embedded:batch_size_bucket" in exprs
    assert ":tensorflow:serving:embedded:model_version_state" in exprs


def test_every_query_names_a_metric_the_server_exports(exported_metrics):
    for path in DASHBOARDS:
        for expr in _queries(json.loads(path.read_text())):
            names = _metrics_named(expr)
            assert names, f"{path.name}: no server metric in {expr!r}"
            for name in names:
                family = name
                for suffix in HISTOGRAM_SERIES:
                    if name.endswith(suffix) and exported_metrics.get(name[:-len(suffix)]) == "histogram":
                        family = name[:-len(suffix)]
                assert family in exported_metrics, f"{path.name}: {name} is not on the metrics page ({expr!r})"


def test_the_monitoring_profile_provisions_grafana_with_the_prometheus_service_and_the_dashboards():
    model = compose_config(ROOT / "compose.yaml", profiles=("monitoring",))
    grafana = model["services"]["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    mounts = {v["target"]: v for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"]["source"] == str(GRAFANA / "provisioning")
    dashboards_dir = mounts["/var/lib/grafana/dashboards"]
    assert dashboards_dir["source"] == str(GRAFANA / "dashboards") and dashboards_dir["read_only"]
    assert "grafana" not in compose_config(ROOT / "compose.yaml")["services"]

    sources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{model['services']['prometheus']['ports'][0]['target']}"
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "tfserving.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
