"""`[journal] url`: real `python -m syncengine` processes on a PostgreSQL journal.

The same commands as on the SQLite file (`run`, `migrate` by records and by
bulk, `status`, `failures`, `retry`, `ids`, `report`), the single-holder rule
(exit 4), and SIGKILL mid-run followed by runs that end in the exact CRM
state. Each test has a schema of its own, dropped after it.
"""

# ruff: noqa: F811 - `pg_journal_config` is a fixture imported from tests.journal_backends

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import orjson
import pytest

from syncengine.config import JournalConfig
from syncengine.sim.server import SimHandle, running_simulator
from tests.integration.conftest import (
    FIRST_ID,
    admin_get,
    admin_post,
    failures_json,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    start_cli,
    write_config,
    write_feed,
)
from tests.integration.test_bulk_migrate import crm_state, failure_view, mixed_feed
from tests.integration.test_crash import crash_feed, expected_state
from tests.journal_backends import admin_connection, pg_journal_config  # noqa: F401


def on_postgres(config: Path, journal: JournalConfig) -> Path:
    """`config` (from `write_config`) with its journal in `journal`'s schema."""
    text = config.read_text()
    assert 'path = "journal.db"' in text
    config.write_text(
        text.replace('path = "journal.db"', f'url = "{journal.url}"\nschema = "{journal.schema}"')
    )
    return config


async def _status(config: Path, cwd: Path) -> dict[str, object]:
    result = await run_cli("status", "-c", str(config), "--json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    document: dict[str, object] = orjson.loads(result.stdout)
    return document


async def test_run_and_the_reading_commands_work_on_postgres(
    sim: SimHandle, tmp_path: Path, pg_journal_config: JournalConfig
) -> None:
    """A run with CRM rejections, then status, failures, retry, ids and report on its journal."""
    await seed_leads(sim, 300)
    changes = lead_updates(300)
    changes[2]["Email"] = "not an email"
    changes[3]["id"] = "4876876000999999999"  # unknown id
    write_feed(tmp_path / "changes.jsonl", changes)
    config = on_postgres(write_config(tmp_path, sim), pg_journal_config)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]
    assert not (tmp_path / "journal.db").exists()

    status = await _status(config, tmp_path)
    assert status["records"] == {"synced": 298, "pending": 0, "failed": 2}
    assert f"schema {pg_journal_config.schema}" in str(status["journal"])
    assert [cp["position"] for cp in status["checkpoints"].values()] == [300]  # type: ignore[attr-defined]
    text = await run_cli("status", "-c", str(config), cwd=tmp_path)
    assert text.returncode == 0
    assert "298" in text.stdout

    rows = await failures_json(config, tmp_path)
    assert {(row["id"], row["code"], row["position"]) for row in rows} == {
        (str(FIRST_ID + 2), "INVALID_DATA", 3),
        ("4876876000999999999", "INVALID_DATA", 4),
    }
    listed = await run_cli("failures", "-c", str(config), cwd=tmp_path)
    assert listed.returncode == 0
    assert "INVALID_DATA" in listed.stdout
    none = await run_cli("failures", "-c", str(config), "--json", "--code", "NOPE", cwd=tmp_path)
    assert orjson.loads(none.stdout) == []

    requeued = await run_cli("retry", "-c", str(config), "--id", str(FIRST_ID + 2), cwd=tmp_path)
    assert requeued.returncode == 0
    assert requeued.stdout.startswith("1 failed record")
    assert (await _status(config, tmp_path))["records"] == {
        "synced": 298,
        "pending": 1,
        "failed": 1,
    }
    # The next run re-sends the journaled change, which the CRM refuses again.
    again = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert again.returncode == 1
    assert (await _status(config, tmp_path))["records"] == {
        "synced": 298,
        "pending": 0,
        "failed": 2,
    }

    ids = await run_cli("ids", "-c", str(config), "--json", cwd=tmp_path)
    assert ids.returncode == 0, ids.stderr
    report = await run_cli(
        "report", "-c", str(config), "-o", str(tmp_path / "r.html"), cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr[-2000:]
    assert "INVALID_DATA" in (tmp_path / "r.html").read_text()


async def test_a_second_holder_exits_4_naming_the_first(
    sim: SimHandle, tmp_path: Path, pg_journal_config: JournalConfig
) -> None:
    await seed_leads(sim, 20_000)
    await admin_post(sim, "config", {"latency_ms": 500})
    write_feed(tmp_path / "changes.jsonl", lead_updates(20_000))
    config = on_postgres(write_config(tmp_path, sim), pg_journal_config)
    first = await start_cli("run", "-c", str(config), cwd=tmp_path)
    try:
        for _ in range(400):
            if sim.state.stats.requests:
                break
            await asyncio.sleep(0.025)
        second = await run_cli("migrate", "-c", str(config), cwd=tmp_path)
        assert second.returncode == 4, second.stderr[-2000:]
        assert f"pid {first.pid}" in second.stderr
        assert f"schema {pg_journal_config.schema}" in second.stderr
        assert "records" in await _status(config, tmp_path)
    finally:
        if first.returncode is None:
            first.kill()
        await first.wait()


async def test_an_unreachable_database_is_one_masked_line_and_exit_3(
    sim: SimHandle, tmp_path: Path
) -> None:
    write_feed(tmp_path / "changes.jsonl", lead_updates(3))
    config = write_config(tmp_path, sim)
    unreachable = JournalConfig(
        path=tmp_path / "x", url="postgresql://postgres:pw-s3cret@127.0.0.1:9/test", schema="s"
    )
    on_postgres(config, unreachable)
    for command in ("run", "status"):
        result = await run_cli(command, "-c", str(config), cwd=tmp_path)
        assert result.returncode == 3, result.stderr
        assert "pw-s3cret" not in result.stderr + result.stdout
        assert "postgres:***@127.0.0.1:9/test" in result.stderr


@pytest.mark.timeout(300)
async def test_migrate_by_bulk_ends_as_on_sqlite(
    sim: SimHandle, tmp_path: Path, pg_journal_config: JournalConfig
) -> None:
    """`migrate --api bulk` with its jobs journaled in PostgreSQL: the CRM and the
    failures as the same migrate leaves them with an SQLite journal."""
    feed = mixed_feed(inserts=1_500, updates=2_000, upserts=1_500)
    results = {}
    async with running_simulator(port=0, admin=True) as twin:
        for name, target, postgres in (("pg", sim, True), ("sqlite", twin, False)):
            folder = tmp_path / name
            folder.mkdir()
            await seed_leads(target, 2_000)
            write_feed(folder / "changes.jsonl", feed)
            config = write_config(folder, target, limits="bulk_poll_s = 0.2")
            if postgres:
                on_postgres(config, pg_journal_config)
            result = await run_cli(
                "migrate", "-c", str(config), "--api", "bulk", cwd=folder, timeout_s=240
            )
            assert result.returncode == 1, result.stderr[-3000:]
            results[name] = (
                crm_state(await sim_leads(target), 2_000),
                failure_view(await failures_json(config, folder)),
                (await admin_get(target, "stats"))["bulk_jobs"],
            )
    assert results["pg"] == results["sqlite"]
    assert results["pg"][2] == 3


@pytest.mark.timeout(300)
async def test_sigkill_mid_run_then_resume_ends_in_the_exact_crm_state(
    sim: SimHandle, tmp_path: Path, pg_journal_config: JournalConfig
) -> None:
    """Killed twice mid-run, the runs on a PostgreSQL journal end as an uninterrupted run."""
    rng = random.Random(20261202)
    rows = crash_feed(seed=7)[:12_000]
    records = len({row["id"] for row in rows})
    await seed_leads(sim, 40_000)
    write_feed(tmp_path / "changes.jsonl", rows)
    config = on_postgres(write_config(tmp_path, sim), pg_journal_config)
    # 200 ms answers: 10 requests of 100 in flight make 5,000 records/s at most, so
    # each run is still under way when it is killed.
    await admin_post(sim, "config", {"latency_ms": 200})
    kills = 2
    for _ in range(kills):
        before = sim.state.stats.requests
        process = await start_cli("run", "-c", str(config), cwd=tmp_path)
        while sim.state.stats.requests == before and process.returncode is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(rng.uniform(0.2, 0.8))
        assert process.returncode is None, "the run ended before it was killed"
        process.kill()
        await process.wait()
    await admin_post(sim, "config", {"latency_ms": 0})

    final = await run_cli("run", "-c", str(config), cwd=tmp_path, timeout_s=240)
    assert final.returncode == 0, final.stderr[-2000:]
    leads = await sim_leads(sim)
    for record_id, fields in expected_state(rows).items():
        stored = leads[record_id]["fields"]
        assert {name: stored.get(name) for name in fields} == fields, record_id
    assert (await _status(config, tmp_path))["records"] == {
        "synced": records,
        "pending": 0,
        "failed": 0,
    }
    written = (await admin_get(sim, "stats"))["records_written"]
    assert written <= len(rows) + kills * 2 * 10 * 100


@pytest.mark.parametrize("purpose", ["session", "group commits"])
async def test_a_lost_database_session_ends_the_pass_with_3_and_the_next_run_finishes(
    sim: SimHandle, tmp_path: Path, pg_journal_config: JournalConfig, purpose: str
) -> None:
    """The server ends one of the run's sessions mid-pass: exit 3, one line, and the
    next run (from the checkpoint) leaves every record synced."""
    await seed_leads(sim, 5_000)
    await admin_post(sim, "config", {"latency_ms": 200})  # 5,000 records/s at most
    write_feed(tmp_path / "changes.jsonl", lead_updates(5_000))
    config = on_postgres(write_config(tmp_path, sim), pg_journal_config)
    process = await start_cli("run", "-c", str(config), cwd=tmp_path)
    admin = await admin_connection()
    try:
        while sim.state.stats.records_written < 500 and process.returncode is None:
            await asyncio.sleep(0.01)
        name = f"syncengine journal ({purpose}) {pg_journal_config.schema}"[:63]
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            name,
        )
        assert ended == 1, "the run had ended before its session could be"
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await admin.close()
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 3, stderr.decode()[-2000:]
    assert "Traceback" not in stderr.decode()
    await admin_post(sim, "config", {"latency_ms": 0})
    final = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert final.returncode == 0, final.stderr[-2000:]
    leads = await sim_leads(sim)
    assert all(
        leads[str(FIRST_ID + n)]["fields"]["Company"] == f"Company {n} v1" for n in range(5_000)
    )
    assert (await _status(config, tmp_path))["records"] == {
        "synced": 5_000,
        "pending": 0,
        "failed": 0,
    }


async def test_the_daemon_follows_the_feed_on_postgres_and_a_second_exits_4(
    sim: SimHandle, tmp_path: Path, pg_journal_config: JournalConfig
) -> None:
    """The daemon journals in PostgreSQL; SIGTERM mid-burst exits 0 and a later run
    sends exactly what the daemon had not (nothing twice)."""
    from tests.daemon.test_daemon import append, daemon_config, running_daemon, wait_until

    await seed_leads(sim, 3_000)
    await admin_post(sim, "config", {"latency_ms": 100})
    feed = tmp_path / "changes.jsonl"
    feed.touch()
    config = on_postgres(daemon_config(tmp_path, sim), pg_journal_config)
    async with running_daemon(config, tmp_path) as process:
        append(feed, [{"id": str(FIRST_ID + i), "Company": f"burst {i}"} for i in range(3_000)])
        await wait_until(lambda: sim.state.stats.records_written > 300, timeout_s=20)
        second = await run_cli("run", "-c", str(config), cwd=tmp_path)
        assert second.returncode == 4, second.stderr[-2000:]
        assert "daemon" in second.stderr
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        assert process.returncode == 0
    await admin_post(sim, "config", {"latency_ms": 0})
    later = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert later.returncode == 0, later.stderr[-2000:]
    leads = await sim_leads(sim)
    assert all(leads[str(FIRST_ID + i)]["fields"]["Company"] == f"burst {i}" for i in range(3_000))
    assert sim.state.stats.records_written == 3_000
    checked = await run_cli("check", "-c", str(config), "--json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-2000:]


@pytest.mark.parametrize("moment", ["created", "download"])
async def test_a_migration_killed_mid_job_resumes_its_job_from_postgres(
    sim: SimHandle, tmp_path: Path, pg_journal_config: JournalConfig, moment: str
) -> None:
    """SIGKILL once the CRM runs the job (or while its result is read): the next
    `migrate` finds the job in the PostgreSQL journal and never makes an insert twice."""
    from tests.integration.test_bulk_migrate_crash import INSERTS, ONE_JOB_AT_A_TIME, UPDATES, feed

    await seed_leads(sim, UPDATES)
    write_feed(tmp_path / "changes.jsonl", feed())
    config = on_postgres(write_config(tmp_path, sim, limits=ONE_JOB_AT_A_TIME), pg_journal_config)
    if moment == "download":
        sim.state.set_config({"bulk_drop_downloads": 1000})

    def reached() -> bool:
        if moment == "created":
            return sim.state.stats.bulk_jobs >= 1
        return any(job.downloads >= 1 for job in sim.state.bulk.jobs.values())

    process = await start_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    while not reached() and process.returncode is None:
        await asyncio.sleep(0.0005)
    assert process.returncode is None, f"migrate ended before the {moment} step"
    process.kill()
    await process.wait()
    sim.state.set_config({"bulk_drop_downloads": 0})
    result = await run_cli("migrate", "-c", str(config), "--api", "bulk", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    leads = await sim_leads(sim)
    assert len(leads) == UPDATES + INSERTS  # no insert made twice
    assert all(
        leads[str(FIRST_ID + n)]["fields"]["Company"] == f"Updated {n}" for n in range(UPDATES)
    )
    stats = await admin_get(sim, "stats")
    if moment == "download":
        assert (stats["bulk_uploads"], stats["bulk_jobs"]) == (2, 2)
    assert (await _status(config, tmp_path))["records"] == {
        "synced": UPDATES + INSERTS,
        "pending": 0,
        "failed": 0,
    }
