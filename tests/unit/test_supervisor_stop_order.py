"""``switchyard up`` stops in order: API, then workers and daemons, then simulator, then Redis."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from orchestrator.cluster.supervisor import Supervisor

CHILD = """
import signal, sys, time
name, log = sys.argv[1], sys.argv[2]
def term(*_):
    with open(log, "a") as f:
        f.write(f"{name} term {time.monotonic()}\\n")
    time.sleep(0.3)  # a worker finishing the job it holds
    with open(log, "a") as f:
        f.write(f"{name} exit {time.monotonic()}\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
with open(log, "a") as f:
    f.write(f"{name} up {time.monotonic()}\\n")
while True:
    time.sleep(0.05)
"""


def test_layers_stop_highest_first_each_gone_before_the_next(tmp_path: Path) -> None:
    # Given children started in up's order, in up's layers (redis -1, simulator 0, api 3,
    # workers and daemons the default 1)
    log = tmp_path / "events.log"
    supervisor = Supervisor(env={}, log_dir=tmp_path / "logs")
    started = [("redis", -1), ("simulator", 0), ("api", 3), ("worker-fast", 1), ("notifier", 1)]
    for name, layer in started:
        supervisor.run(name, sys.executable, "-c", CHILD, name, str(log), layer=layer)
    deadline = time.monotonic() + 20
    while log.read_text().count(" up ") < len(started) if log.exists() else True:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # When the supervisor stops
    supervisor.stop(timeout_s=10)
    # Then every child got SIGTERM only after every child of a higher layer had exited
    events = [line.split() for line in log.read_text().splitlines()]
    term = {n: float(t) for n, e, t in events if e == "term"}
    gone = {n: float(t) for n, e, t in events if e == "exit"}
    assert set(term) == set(gone) == {n for n, _ in started}
    layers = dict(started)
    for late in term:
        for early in term:
            if layers[early] > layers[late]:
                assert gone[early] <= term[late], (early, late)
    assert max(gone["worker-fast"], gone["notifier"]) <= term["simulator"] <= term["redis"]
    assert gone["api"] <= min(term["worker-fast"], term["notifier"])
