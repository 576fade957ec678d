"""The daemon's redrive against its own newer work, with real processes.

A record re-driven from the journal (`syncengine retry` put it back in line,
or a transient failure left its row pending) is the journal's copy of what
the record owes. These tests run a real daemon on a JSONL feed against the
in-process simulator and check that such a copy never goes out after, or on
top of, newer work the daemon already has for the record.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest

from syncengine.sim.server import SimHandle, running_simulator
from tests.daemon.test_daemon import append, daemon_config, running_daemon, wait_until
from tests.integration.conftest import FIRST_ID, run_cli, seed_leads, sim_leads, start_cli


async def _status(config: Path, folder: Path) -> dict[str, Any]:
    result = await run_cli("status", "-c", str(config), "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = orjson.loads(result.stdout)
    return document


async def _failures(config: Path, folder: Path) -> list[dict[str, Any]]:
    result = await run_cli("failures", "-c", str(config), "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = orjson.loads(result.stdout)
    return rows


async def _wait_for_status(
    config: Path, folder: Path, *, failed: int, pending: int, timeout_s: float
) -> dict[str, Any]:
    """Polls `status` until it shows `failed` and `pending` records; fails after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        records = (await _status(config, folder))["records"]
        if records["failed"] == failed and records["pending"] == pending:
            return dict(records)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"status still {records} after {timeout_s} s")
        await asyncio.sleep(0.2)


async def _wait_for_idle(config: Path, folder: Path, *, timeout_s: float) -> None:
    """Polls `status` until nothing is pending; fails after `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (await _status(config, folder))["records"]["pending"]:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"records still pending after {timeout_s} s")
        await asyncio.sleep(0.2)


def _holds(sim: SimHandle, change: dict[str, Any]) -> bool:
    """True once the simulator holds every value of `change`."""
    record = sim.state.store.get("Leads", change["id"])
    return record is not None and all(
        record.fields.get(name) == value for name, value in change.items() if name != "id"
    )


TARGETS = 300  # leads that get a rejected change, then a fix, each round
FILLER = 2_700  # other leads, whose changes keep the daemon busy meanwhile
ROUNDS = 2


def _lead(index: int) -> str:
    return str(FIRST_ID + index)


@pytest.mark.slow
async def test_retry_while_the_daemon_runs_never_sends_an_older_payload_after_a_fix(
    tmp_path: Path,
) -> None:
    """`syncengine retry` and a newer fixing change at about the same time: the fix wins.

    Each round, every target lead first gets a change the CRM rejects (a
    restricted picklist value); then a backlog of other changes is appended
    with each target's fix spread through it, and `syncengine retry` runs at
    once and again a little later. The CRM is slow enough that some fixes are
    still waiting in the daemon's intake queue (or settled but not yet
    journaled) when its redrive reads the re-queued rows: the journal's copy
    (with the rejected value) must not be sent after the fix.
    """
    # About 1,000 records/s through 2 connections: the backlog lasts seconds.
    async with running_simulator(port=0, admin=True, per_record_ms=2.0) as sim:
        await seed_leads(sim, TARGETS + FILLER)
        feed = tmp_path / "changes.jsonl"
        feed.touch()
        config = daemon_config(tmp_path, sim)
        config.write_text(config.read_text().replace("concurrency = 10", "concurrency = 2"))
        async with running_daemon(config, tmp_path) as daemon:
            for round_number in range(ROUNDS):
                append(
                    feed,
                    [
                        {"id": _lead(i), "Rating": "Bogus", "Company": f"bad {round_number}"}
                        for i in range(TARGETS)
                    ],
                )
                await _wait_for_status(config, tmp_path, failed=TARGETS, pending=0, timeout_s=30)
                backlog: list[dict[str, Any]] = [
                    {"id": _lead(TARGETS + i), "Company": f"lead-in {round_number} {i}"}
                    for i in range(1_200)
                ]
                for target in range(TARGETS):
                    backlog += [
                        {"id": _lead(TARGETS + (target * 9 + j) % FILLER), "City": f"c{j}"}
                        for j in range(9)
                    ]
                    backlog.append(
                        {
                            "id": _lead(target),
                            "Rating": "Active",
                            "Company": f"fixed {round_number}",
                        }
                    )
                sentinel = {"id": _lead(TARGETS + FILLER - 1), "Company": f"end {round_number}"}
                backlog.append(sentinel)
                append(feed, backlog)
                first = await start_cli("retry", "-c", str(config), cwd=tmp_path)
                await asyncio.sleep(1.2)
                second = await start_cli("retry", "-c", str(config), cwd=tmp_path)
                for retry in (first, second):
                    _, stderr = await asyncio.wait_for(retry.communicate(), 60)
                    assert retry.returncode == 0, stderr.decode()
                await wait_until(partial(_holds, sim, sentinel), timeout_s=60)
                # Let the daemon's redrive (every second) send whatever it still would.
                await asyncio.sleep(2.5)
                await _wait_for_idle(config, tmp_path, timeout_s=30)
                assert daemon.returncode is None

        leads = await sim_leads(sim)
        stale = {
            _lead(i): {name: leads[_lead(i)]["fields"].get(name) for name in ("Rating", "Company")}
            for i in range(TARGETS)
            if leads[_lead(i)]["fields"].get("Company") != f"fixed {ROUNDS - 1}"
            or leads[_lead(i)]["fields"].get("Rating") != "Active"
        }
        assert stale == {}, f"{len(stale)} leads do not hold their newest values: {stale}"
        failures = await _failures(config, tmp_path)
        assert failures == [], f"{len(failures)} failed, first {failures[:3]}"
        records = (await _status(config, tmp_path))["records"]
        assert records["failed"] == 0
        assert records["pending"] == 0
        assert records["synced"] == TARGETS + FILLER


PERIODIC_RECORDS = 20_000
PERIODIC_RUNS = 3


async def _one_periodic_run(folder: Path, seed: int) -> tuple[list[str], int, int]:
    """One daemon over a fresh journal: 20,000 changes, transient faults, no `retry`.

    Returns the leads written more than once, the requests answered 500,
    and the records that needed more than one attempt.
    """
    folder.mkdir()
    # A 500 is answered before anything is applied: an update of a
    # lead the feed changes once is written exactly once, however often it
    # is sent again, unless the engine sends it twice on its own.
    async with running_simulator(
        port=0,
        admin=True,
        seed=seed,
        fault_500=0.25,
        latency_ms=20,
        jitter_ms=60,
    ) as sim:
        await seed_leads(sim, PERIODIC_RECORDS)
        feed = folder / "changes.jsonl"
        append(
            feed,
            [
                {"id": _lead(i), "Company": f"run {seed} lead {i}"}
                for i in random.Random(seed).sample(range(PERIODIC_RECORDS), PERIODIC_RECORDS)
            ],
        )
        config = daemon_config(folder, sim)  # poll 0.05 s: the redrive runs every second
        # Out of attempts would be a failure of its own: 0.25 ** 8 is not rare enough.
        config.write_text(config.read_text().replace("max_attempts = 8", "max_attempts = 30"))
        async with running_daemon(config, folder) as daemon:
            await wait_until(partial(_all_written, sim, seed), timeout_s=40)
            await _wait_for_idle(config, folder, timeout_s=40)
            await asyncio.sleep(1.5)  # one more redrive, which must find nothing to send
            assert daemon.returncode is None
        leads = await sim_leads(sim)
        faults = sim.state.stats.by_status["500"]
    wrong = [
        _lead(i)
        for i in range(PERIODIC_RECORDS)
        if leads[_lead(i)]["fields"]["Company"] != f"run {seed} lead {i}"
    ]
    assert wrong == [], f"{len(wrong)} leads do not hold their change"
    with sqlite3.connect(folder / "journal.db") as journal:
        states = dict(journal.execute("SELECT state, count(*) FROM records GROUP BY state"))
        (retried,) = journal.execute("SELECT count(*) FROM records WHERE attempts > 1").fetchone()
    assert states == {"synced": PERIODIC_RECORDS}
    twice = [lead for lead, record in leads.items() if record["writes"] > 1]
    return twice, faults, retried


def _all_written(sim: SimHandle, seed: int) -> bool:
    """True once every lead holds its change of run `seed`."""
    store = sim.state.store
    for index in range(PERIODIC_RECORDS):
        record = store.get("Leads", _lead(index))
        if record is None or record.fields.get("Company") != f"run {seed} lead {index}":
            return False
    return True


@pytest.mark.slow
async def test_the_periodic_redrive_never_sends_a_record_the_engine_already_settled(
    tmp_path: Path,
) -> None:
    """No `retry`, transient faults: no lead is written more often than it changed.

    The daemon's redrive (every second here) reads the journal's pending rows
    while the engine's own retries of those rows are answered: one answered
    just before the read, whose outcome is not yet committed, still shows as
    pending. Sending it again would write the lead twice.
    """
    doubles: dict[int, list[str]] = {}
    for run in range(PERIODIC_RUNS):
        twice, faults, retried = await _one_periodic_run(tmp_path / f"run{run}", seed=run + 1)
        print(f"run {run}: {faults} requests failed, {retried} records retried, {len(twice)} twice")
        assert faults > 30  # the retry machinery was really exercised
        assert retried > 3_000
        if twice:
            doubles[run] = twice
    assert doubles == {}, {run: len(leads) for run, leads in doubles.items()}
