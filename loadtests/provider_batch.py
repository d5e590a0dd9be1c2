"""``switchyard bench provider-batch --jobs N [--kill] --json``: half price for work that can wait.

One run, on this machine, with nothing shared (issue 26's first acceptance item):

    private Postgres (initdb, fsync on) and private Redis, each on its own port
    a catalog of two deployments of two providers, each with a batch API at half
        its synchronous prices and at most --lines-per-batch lines a file
        (``loadtests._batch_plan``: a provider goes only if the workers have a
        batch adapter for its wire format)
    the simulator: batches take --processing-s, --line-error-rate of their lines
        fail, and exactly one provider batch expires (its unfinished half)
    one worker process (threads), the reconciler; the batch path on

N jobs with a 24h completion window are admitted as one native Switchyard batch
by the real dispatcher, spread evenly over the two deployments. They go by
provider batch; failed lines and the expired batch's unfinished lines wait for
the next provider batch of their deployment (at half price), and run
synchronously at the full price only once sent ``provider_batch_max_tries``
times. With ``--kill`` the worker is SIGKILLed while a batch is uploaded, polled
and downloaded (``loadtests._batch_kills``).

The baseline is measured in the same run: every job's answered tokens priced at
its deployment's synchronous catalog prices (``sync_cost_usd``). ``ratio`` is
what was billed over that. Lines answered by provider batch cost half
(``batch_lines_ratio``), re-run lines the full price, so the expected ratio is
``0.5 + 0.5 x s`` for a share ``s`` of the jobs re-run synchronously
(token-weighted): ``expected_ratio`` gives that for the configured failure rate,
expired batch and tries (``expected``).

Prints JSON: ``jobs``, ``succeeded``, ``lost`` (not succeeded exactly once),
``duplicate_provider_batches`` (created at the simulator beyond those recorded,
or twice for one gathering), ``ledger_mismatches`` (jobs whose ledger is not one
row at the price of the path that answered), ``total_cost_usd``, ``sync_cost_usd``,
``ratio``, ``lines_rerun_sync``, ``lines_sent_again_by_batch``, ``wall_s``, the
providers used and, with ``--kill``, the kills performed. Exits 1 if an invariant failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from typing import Any

from sqlalchemy import func, select

from loadtests import _batch_audit as account
from loadtests._batch_kills import Killer
from loadtests._batch_plan import WINDOW, Plan, batch_wire_formats, choose, cluster_spec, requests
from loadtests._bench import private_services, running
from loadtests._cluster import FINAL, Cluster, ClusterSpec
from orchestrator.core.catalog import load_catalog
from orchestrator.store import repo
from orchestrator.store.db import session_scope
from orchestrator.store.provider_batch_models import ProviderBatch

TARGET_RATIO = 0.5
TOLERANCE = 0.01  # within 1% of half the synchronous cost


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchyard bench provider-batch", description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--lines-per-batch", type=int, default=100, help="catalog max_lines")
    parser.add_argument("--processing-s", type=float, default=20.0, help="a batch's run time")
    parser.add_argument("--line-error-rate", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=16, help="the worker's threads")
    parser.add_argument("--kill", action="store_true", help="SIGKILL the worker in each phase")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after (s)")
    parser.add_argument("--json", action="store_true", help="print JSON only (the default)")
    return parser.parse_args(argv)


def submit(cluster: Cluster, plan: Plan, n: int) -> list[str]:
    """One native batch with a 24h completion window, admitted by the real dispatcher."""
    with session_scope(cluster.engine) as session:
        tenant = repo.tenant_for_api_key(session, api_key=cluster.api_key)
    assert tenant is not None
    batch_id = cluster.dispatcher.submit_batch(
        tenant_id=tenant, requests=requests(n, plan), spec=WINDOW
    )
    return cluster.batch_job_ids(batch_id)


def open_provider_batches(cluster: Cluster) -> int:
    with session_scope(cluster.engine) as session:
        found = select(func.count()).where(ProviderBatch.state != "done")
        return int(session.scalar(found) or 0)


def wait(
    cluster: Cluster, ids: list[str], killer: Killer | None, timeout_s: float
) -> dict[str, str]:
    """Until every job is final and every provider batch done (or time is up), killing
    on schedule; the last statuses read."""
    deadline = time.monotonic() + timeout_s
    statuses: dict[str, str] = {}
    looked = 0.0
    while time.monotonic() < deadline:
        killing = killer is not None and killer.tick()
        if time.monotonic() - looked >= 0.5:
            looked = time.monotonic()
            statuses = cluster.statuses(ids)
            final = all(s in FINAL for s in statuses.values())
            if final and not killing and open_provider_batches(cluster) == 0:
                break
        time.sleep(0.005 if killing else 0.1)
    return statuses


def expected(
    args: argparse.Namespace,
    money: account.Money,
    expiring: str,
    expired_lines: int,
    max_tries: int,
) -> dict[str, float]:
    """What the design predicts from the configured failure rate and expired batch.

    A failed line, and each of the ``expired_lines`` (the expired batch's unfinished
    lines), waits for the next provider batch (at half price) until it has been sent
    ``max_tries`` times; only then does it run synchronously at the full price. With a
    share ``r`` of batch lines failing, a line goes synchronous with probability
    ``r ** max_tries`` (an expired one ``r ** (max_tries - 1)``). Each deployment's
    jobs are weighted by their mean synchronous cost in this run."""
    rate, total, sync_all, again_all = args.line_error_rate, 0.0, 0.0, 0.0
    for name, jobs in money.jobs_by_deployment.items():
        unfinished = expired_lines if name == expiring else 0
        again = rate * (jobs - unfinished) + unfinished
        rerun = (jobs - unfinished) * rate**max_tries + unfinished * rate ** (max_tries - 1)
        sync_all += rerun
        again_all += again
        mean = money.sync_by_deployment[name] / jobs
        total += mean * (TARGET_RATIO * (jobs - rerun) + rerun)
    sync = money.sync_micro_usd
    return {
        "expected_lines_sent_again_by_batch": round(again_all, 1),
        "expected_lines_rerun_sync": round(sync_all, 2),
        "expected_ratio": round(total / sync, 4) if sync else 0.0,
    }


def measure(
    cluster: Cluster, plan: Plan, args: argparse.Namespace, kill: bool = False
) -> dict[str, Any]:
    """The benchmark's core on a started cluster: submit, (kill,) wait, account."""
    started = time.monotonic()
    ids = submit(cluster, plan, args.jobs)
    submitted_s = time.monotonic() - started
    killer = Killer(cluster) if kill else None
    wait(cluster, ids, killer, args.timeout)
    wall_s = time.monotonic() - started
    jobs = account.jobs(cluster, ids)
    money = account.money(load_catalog(cluster.settings), jobs)
    batches = account.provider_batches(cluster)
    audit = cluster.audit(ids)
    ratio = money.report()["ratio"]
    expiring = plan.candidates[0].name  # its first batch expires (loadtests._batch_plan)
    # the expired batch's unfinished half, as the simulator counted it: how many lines
    # that batch held depends on how fast the jobs came (a slow machine sends it smaller)
    expired_lines = int(batches["simulator_batches"].get("lines_expired", 0))
    max_tries = cluster.settings.provider_batch_max_tries
    result: dict[str, Any] = {
        "jobs": args.jobs,
        **account.outcome_counts(jobs),
        "duplicate_provider_batches": batches.pop("duplicate_provider_batches"),
        **money.report(),
        "ratio_target": f"within {TOLERANCE:.0%} of {TARGET_RATIO}",
        "ratio_target_met": ratio is not None
        and abs(ratio - TARGET_RATIO) <= TOLERANCE * TARGET_RATIO,
        **expected(args, money, expiring, expired_lines, max_tries),
        "lines_expired": expired_lines,
        "audit_ledger_mismatches": audit.ledger_mismatches,
        "audit_duplicate_successes": audit.duplicate_successes,
        "wall_s": round(wall_s, 1),
        "admission_s": round(submitted_s, 2),
        "providers": plan.providers,
        "deployments": {
            c.name: {"provider": c.provider, "api": c.api, "model": c.model}
            for c in plan.candidates
        },
        "batch_wire_formats": list(plan.batch_wire_formats),
        "second_provider": plan.why,
        **batches,
        "lines_per_batch": args.lines_per_batch,
        "processing_s": args.processing_s,
        "line_error_rate": args.line_error_rate,
    }
    if killer is not None:
        result.update(killer.report())
    return result


def failed(result: dict[str, Any]) -> bool:
    """Whether an invariant of the acceptance failed (the ratio is reported, not gated)."""
    keys = ("lost", "duplicate_provider_batches", "ledger_mismatches", "audit_ledger_mismatches")
    return any(result[k] for k in keys) or result["succeeded"] != result["jobs"]


def planned(args: argparse.Namespace, concurrency: int | None = None) -> tuple[Plan, ClusterSpec]:
    """The two deployments the run uses and the cluster that serves them, from the options."""
    plan = choose(batch_wire_formats())
    spec = cluster_spec(
        plan,
        processing_s=args.processing_s,
        line_error_rate=args.line_error_rate,
        lines_per_batch=args.lines_per_batch,
        concurrency=args.concurrency if concurrency is None else concurrency,
    )
    return plan, spec


def main(argv: list[str]) -> int:
    args = parse(argv)
    plan, spec = planned(args)
    with private_services() as services, running(spec, services) as cluster:
        result = measure(cluster, plan, args, kill=args.kill)
        if failed(result):  # keep the processes' logs for the post-mortem
            kept = tempfile.mkdtemp(prefix="switchyard-provider-batch-")
            shutil.copytree(services.workdir / "cluster" / "logs", kept, dirs_exist_ok=True)
            result["logs"] = kept
    print(json.dumps(result, indent=None if args.json else 2))
    return 1 if failed(result) else 0
