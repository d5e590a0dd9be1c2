"""The ``usage_daily`` rollup's triggers: every ledger and failed-attempt insert adds to it.

One place for the DDL (migration 0006 creates them). Postgres keeps a trigger
through ``ALTER TABLE``; SQLite drops a table's triggers whenever Alembic's batch
mode rebuilds it, so ``migrations/env.py`` calls ``ensure_sqlite_triggers`` after
every SQLite upgrade. On Postgres the ledger's trigger is statement-level with a
transition table, so a bulk insert (``COPY``, ``executemany``) costs one grouped
upsert; the attempts' is a row trigger with ``WHEN (NEW.outcome <> 'ok')`` since
migration 0016, so the attempt of an answered call (nearly all of them) runs no
trigger at all, and failures, rare, upsert one by one.

Each key has up to ``SHARDS`` rows on Postgres (``shard``: the writing
connection's backend pid modulo ``SHARDS``; migration 0010), summed by every
reader. With one row per key every worker's finishing transaction waited for
the one before it to commit (the upsert locks the row until then): under load
most connections sat in ``Lock:transactionid`` on that row (``switchyard bench
latency``). SQLite has one writer at a time anyway and always writes shard 0.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

KEY_0006 = "tenant_id, day, tier, deployment, provider, model, kind"
KEY = f"{KEY_0006}, shard"
SHARDS = 64
PG_SHARD = f"pg_backend_pid() % {SHARDS}"
SUMS = "calls, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_micro_usd"
ADD = ", ".join(f"{c} = u.{c} + EXCLUDED.{c}" for c in SUMS.split(", "))
ADD_SQLITE = ", ".join(f"{c} = {c} + excluded.{c}" for c in SUMS.split(", "))
UNBILLED = "outcome <> 'ok'"  # an attempt that bills nothing (a cache hit's is 'ok' too)
KIND = "CASE WHEN cache_hit THEN 'cache_hit' ELSE 'billed' END"
NEW_KIND = "CASE WHEN NEW.cache_hit THEN 'cache_hit' ELSE 'billed' END"


def pg_ledger_function(*, sharded: bool = True) -> str:
    """The ledger trigger's function (``sharded=False``: migration 0006's, one row a key)."""
    key, shard = (KEY, f"{PG_SHARD}, ") if sharded else (KEY_0006, "")
    return f"""
CREATE OR REPLACE FUNCTION switchyard_usage_from_ledger() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_daily AS u ({key}, {SUMS})
  SELECT tenant_id, (created_at AT TIME ZONE 'UTC')::date, tier, deployment, provider, model,
         {KIND}, {shard}count(*), sum(input_tokens), sum(output_tokens),
         sum(cached_input_tokens), sum(reasoning_tokens), sum(cost_micro_usd)
  FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7
  ON CONFLICT ({key}) DO UPDATE SET {ADD};
  RETURN NULL;
END $$;
"""


def pg_attempts_function(*, sharded: bool = True) -> str:
    """The failed-attempt trigger's function (``sharded=False``: migration 0006's)."""
    key, shard = (KEY, f"{PG_SHARD}, ") if sharded else (KEY_0006, "")
    return f"""
CREATE OR REPLACE FUNCTION switchyard_usage_from_attempts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_daily AS u ({key}, {SUMS})
  SELECT a.tenant_id, (a.started_at AT TIME ZONE 'UTC')::date, j.tier, a.deployment,
         a.provider, a.model, 'unbilled', {shard}count(*), 0, 0, 0, 0, 0
  FROM new_rows a JOIN jobs j ON j.id = a.job_id
  WHERE a.{UNBILLED}
  GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
  ON CONFLICT ({key}) DO UPDATE SET {ADD};
  RETURN NULL;
END $$;
"""


# the attempts' trigger as migration 0006 made it (0016 made it a row trigger)
ATTEMPTS_STATEMENT_TRIGGER = """CREATE TRIGGER attempts_usage AFTER INSERT ON attempts
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION switchyard_usage_from_attempts();
"""


def pg_attempt_row_function() -> str:
    """The failed-attempt trigger's function since migration 0016: one row, fired only for
    an unbilled outcome (the trigger's ``WHEN``), so an answered call's attempt costs
    nothing here (the statement-level trigger ran for every insert, 0.05-0.09 ms)."""
    return f"""
CREATE OR REPLACE FUNCTION switchyard_usage_from_attempt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_daily AS u ({KEY}, {SUMS})
  SELECT NEW.tenant_id, (NEW.started_at AT TIME ZONE 'UTC')::date, j.tier, NEW.deployment,
         NEW.provider, NEW.model, 'unbilled', {PG_SHARD}, 1, 0, 0, 0, 0, 0
  FROM jobs j WHERE j.id = NEW.job_id
  ON CONFLICT ({KEY}) DO UPDATE SET {ADD};
  RETURN NULL;
END $$;
"""


PG_ATTEMPT_ROWS = f"""{pg_attempt_row_function()}
DROP TRIGGER attempts_usage ON attempts;
CREATE TRIGGER attempts_usage AFTER INSERT ON attempts
  FOR EACH ROW WHEN (NEW.{UNBILLED})
  EXECUTE FUNCTION switchyard_usage_from_attempt();
"""

PG_ATTEMPTS_STATEMENT = f"""{pg_attempts_function()}
DROP TRIGGER attempts_usage ON attempts;
{ATTEMPTS_STATEMENT_TRIGGER}DROP FUNCTION switchyard_usage_from_attempt();
"""

PG_LEDGER_0006 = f"""{pg_ledger_function(sharded=False)}
CREATE TRIGGER cost_ledger_usage AFTER INSERT ON cost_ledger
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
  EXECUTE FUNCTION switchyard_usage_from_ledger();
"""

PG_ATTEMPTS_0006 = f"""{pg_attempts_function(sharded=False)}
{ATTEMPTS_STATEMENT_TRIGGER}"""

SQLITE_LEDGER = f"""
CREATE TRIGGER cost_ledger_usage AFTER INSERT ON cost_ledger BEGIN
  INSERT INTO usage_daily ({KEY}, {SUMS})
  VALUES (NEW.tenant_id, date(NEW.created_at), NEW.tier, NEW.deployment, NEW.provider,
          NEW.model, {NEW_KIND}, 0, 1, NEW.input_tokens, NEW.output_tokens,
          NEW.cached_input_tokens, NEW.reasoning_tokens, NEW.cost_micro_usd)
  ON CONFLICT ({KEY}) DO UPDATE SET {ADD_SQLITE};
END
"""

SQLITE_ATTEMPTS = f"""
CREATE TRIGGER attempts_usage AFTER INSERT ON attempts
WHEN NEW.{UNBILLED} BEGIN
  INSERT INTO usage_daily ({KEY}, {SUMS})
  SELECT NEW.tenant_id, date(NEW.started_at), j.tier, NEW.deployment, NEW.provider,
         NEW.model, 'unbilled', 0, 1, 0, 0, 0, 0, 0
  FROM jobs j WHERE j.id = NEW.job_id
  ON CONFLICT ({KEY}) DO UPDATE SET {ADD_SQLITE};
END
"""

SQLITE_TRIGGERS = {"cost_ledger_usage": SQLITE_LEDGER, "attempts_usage": SQLITE_ATTEMPTS}


def ensure_sqlite_triggers(connection: Connection) -> None:
    """Create the rollup triggers that are missing (once ``usage_daily`` exists)."""
    if "usage_daily" not in inspect(connection).get_table_names():
        return
    present = {
        row[0]
        for row in connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='trigger'")
    }
    for name, ddl in SQLITE_TRIGGERS.items():
        if name not in present:
            connection.exec_driver_sql(ddl)
