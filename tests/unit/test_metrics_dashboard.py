"""Every Switchyard metric the Grafana dashboard queries is one the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import orchestrator.api.api_metrics
import workers.worker_metrics

REPO = Path(__file__).resolve().parents[2]


def exported_names() -> set[str]:
    names = set(REGISTRY._names_to_collectors)  # counters, histograms: every sample name
    for module in (
        orchestrator.api.api_metrics,
        workers.worker_metrics,
    ):  # collectors read when scraped
        source = Path(str(module.__file__)).read_text()
        names |= set(re.findall(r'GaugeMetricFamily\(\s*"(switchyard_\w+)"', source))
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/switchyard-jobs.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"switchyard_\w+", target["expr"])
    }
    assert queried and queried <= exported_names(), queried - exported_names()
