"""The commands of interface.md run as real processes against the simulator."""

from __future__ import annotations

import asyncio
import signal
import stat
from pathlib import Path

import orjson

from syncengine.sim.server import SimHandle
from tests.integration.conftest import (
    FIRST_ID,
    SECRET_ENV,
    admin_post,
    cli_env,
    failures_json,
    lead_updates,
    run_cli,
    seed_leads,
    sim_leads,
    start_cli,
    write_config,
    write_feed,
)


async def test_run_syncs_every_record_and_exits_zero(sim: SimHandle, tmp_path: Path) -> None:
    """A clean feed of updates ends with every record synced, the values in the CRM, exit 0."""
    await seed_leads(sim, 250)
    write_feed(tmp_path / "changes.jsonl", lead_updates(250))
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    leads = await sim_leads(sim)
    assert all(
        leads[str(FIRST_ID + i)]["fields"]["Company"] == f"Company {i} v1" for i in range(250)
    )
    status = await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)
    document = orjson.loads(status.stdout)
    assert document["records"] == {"synced": 250, "pending": 0, "failed": 0}


async def test_bad_lines_fail_with_their_position_and_the_rest_syncs(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Bad JSON, a non-object, a missing id and bad UTF-8 are failed BAD_INPUT at their line."""
    await seed_leads(sim, 3)
    rows: list[dict[str, object] | bytes] = [
        {"id": str(FIRST_ID), "Company": "ok 1"},
        b'{"id": "1", "Company": ',
        b"[1, 2, 3]",
        {"Company": "no id"},
        b'{"id": "2", "Company": "caf\xe9"}',
        {"id": str(FIRST_ID + 1), "Company": "ok 2"},
    ]
    write_feed(tmp_path / "changes.jsonl", rows)
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 1, result.stderr

    failures = await run_cli("failures", "-c", str(config), "--json", cwd=tmp_path)
    rows_out = orjson.loads(failures.stdout)
    assert sorted(row["position"] for row in rows_out) == [2, 3, 4, 5]
    assert {row["code"] for row in rows_out} == {"BAD_INPUT"}
    assert all(
        {"module", "id", "position", "code", "message", "attempts"} <= row.keys()
        for row in rows_out
    )
    leads = await sim_leads(sim)
    assert leads[str(FIRST_ID + 1)]["fields"]["Company"] == "ok 2"


async def test_crm_rejections_are_failures_with_the_crm_code(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A record the CRM rejects in a 202 is failed with its code; the others are synced."""
    await seed_leads(sim, 5)
    changes = lead_updates(5)
    changes[2]["Email"] = "not an email"
    changes[3]["id"] = "4876876000999999999"  # unknown id
    write_feed(tmp_path / "changes.jsonl", changes)
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 1
    rows = await failures_json(config, tmp_path)
    assert {(row["id"], row["code"]) for row in rows} == {
        (str(FIRST_ID + 2), "INVALID_DATA"),
        ("4876876000999999999", "INVALID_DATA"),
    }
    by_code = await run_cli("failures", "-c", str(config), "--json", "--code", "NOPE", cwd=tmp_path)
    assert orjson.loads(by_code.stdout) == []
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 3, "pending": 0, "failed": 2}


async def test_retry_redrives_failed_records_on_the_next_run(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Records failed after max_attempts of RECORD_LOCKED sync after `retry` and a new run."""
    await seed_leads(sim, 3)
    await admin_post(sim, "config", {"fault_locked": 1.0})
    write_feed(tmp_path / "changes.jsonl", lead_updates(3))
    config = write_config(tmp_path, sim, limits="")
    config.write_text(config.read_text().replace("max_attempts = 8", "max_attempts = 2"))
    assert (await run_cli("run", "-c", str(config), cwd=tmp_path)).returncode == 1
    rows = await failures_json(config, tmp_path)
    assert {(row["code"], row["attempts"]) for row in rows} == {("RECORD_LOCKED", 2)}

    await admin_post(sim, "config", {"fault_locked": 0.0})
    requeued = await run_cli("retry", "-c", str(config), "--id", str(FIRST_ID + 1), cwd=tmp_path)
    assert requeued.stdout.startswith("1 failed record")
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 0, "pending": 1, "failed": 2}

    assert (await run_cli("retry", "-c", str(config), cwd=tmp_path)).returncode == 0
    assert (await run_cli("run", "-c", str(config), cwd=tmp_path)).returncode == 0
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 3, "pending": 0, "failed": 0}
    leads = await sim_leads(sim)
    assert leads[str(FIRST_ID + 2)]["fields"]["Company"] == "Company 2 v1"


async def test_config_errors_exit_2_with_one_line_naming_the_key(tmp_path: Path) -> None:
    """An unknown key, a missing env variable and a missing file each give exit 2 and one line."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nconcurency = 3\n", encoding="utf-8")
    result = await run_cli("run", "-c", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "limits.concurency" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    missing = await run_cli("run", "-c", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 2
    assert "nope.toml" in missing.stderr


async def test_a_journal_folder_that_does_not_exist_is_a_config_error(
    sim: SimHandle, tmp_path: Path
) -> None:
    """`journal.path` in a missing folder: exit 2 naming the key, nothing sent."""
    config = write_config(tmp_path, sim)
    config.write_text(config.read_text().replace('"journal.db"', '"nowhere/journal.db"'))
    write_feed(tmp_path / "changes.jsonl", lead_updates(1))
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "journal.path" in result.stderr
    assert sim.state.stats.requests == 0


async def test_missing_env_variable_is_named(sim: SimHandle, tmp_path: Path) -> None:
    """A `${NAME}` that is not set is a config error naming NAME, and nothing is sent."""
    config = write_config(tmp_path, sim)
    write_feed(tmp_path / "changes.jsonl", lead_updates(1))
    env = cli_env()
    del env["SE_TEST_SECRET"]
    result = await run_cli("run", "-c", str(config), cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "SE_TEST_SECRET" in result.stderr
    assert sim.state.stats.requests == 0


async def test_revoked_credentials_exit_3_and_leave_records_pending(
    sim: SimHandle, tmp_path: Path
) -> None:
    """A revoked refresh token stops the run with exit 3, a one-line reason, nothing synced."""
    await seed_leads(sim, 10)
    await admin_post(sim, "config", {"revoked": True})
    write_feed(tmp_path / "changes.jsonl", lead_updates(10))
    config = write_config(tmp_path, sim)

    result = await run_cli("run", "-c", str(config), cwd=tmp_path)

    assert result.returncode == 3, result.stderr
    assert "invalid_code" in result.stderr
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"]["synced"] == 0
    assert status["checkpoints"] == {}


async def test_second_run_on_a_held_journal_exits_4_naming_the_holder(
    sim: SimHandle, tmp_path: Path
) -> None:
    """While one run holds the journal another exits 4 and names it; status still reads."""
    await seed_leads(sim, 20_000)
    await admin_post(sim, "config", {"latency_ms": 500})
    write_feed(tmp_path / "changes.jsonl", lead_updates(20_000))
    config = write_config(tmp_path, sim, limits="")
    first = await start_cli("run", "-c", str(config), cwd=tmp_path)
    try:
        await _wait_for_requests(sim)
        second = await run_cli("run", "-c", str(config), cwd=tmp_path)
        assert second.returncode == 4
        assert "pid" in second.stderr
        assert "run" in second.stderr
        status = await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)
        assert status.returncode == 0
        assert "records" in orjson.loads(status.stdout)
    finally:
        if first.returncode is None:
            first.kill()
        await first.wait()


async def _wait_for_requests(sim: SimHandle, *, at_least: int = 1) -> None:
    for _ in range(400):
        if sim.state.stats.requests >= at_least:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the run never reached the simulator")


async def test_sigterm_stops_with_130_and_the_next_run_finishes(
    sim: SimHandle, tmp_path: Path
) -> None:
    """SIGTERM mid-run exits 130 with outcomes journaled; the next run completes exactly."""
    await seed_leads(sim, 4000)
    await admin_post(sim, "config", {"latency_ms": 100})
    write_feed(tmp_path / "changes.jsonl", lead_updates(4000))
    config = write_config(tmp_path, sim)
    process = await start_cli("run", "-c", str(config), cwd=tmp_path)
    await _wait_for_requests(sim, at_least=5)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 130

    await admin_post(sim, "config", {"latency_ms": 0})
    result = await run_cli("run", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    leads = await sim_leads(sim)
    assert all(
        leads[str(FIRST_ID + i)]["fields"]["Company"] == f"Company {i} v1" for i in range(4000)
    )
    status = orjson.loads(
        (await run_cli("status", "-c", str(config), "--json", cwd=tmp_path)).stdout
    )
    assert status["records"] == {"synced": 4000, "pending": 0, "failed": 0}


async def test_no_secret_in_logs_outputs_or_errors_and_journal_is_private(
    sim: SimHandle, tmp_path: Path
) -> None:
    """Secrets and access tokens appear in no output; the journal file is mode 0600."""
    await seed_leads(sim, 20)
    changes = lead_updates(20)
    changes[4]["Email"] = "bad"
    write_feed(tmp_path / "changes.jsonl", changes)
    config = write_config(tmp_path, sim)
    outputs = [
        await run_cli("--log-level", "debug", "run", "-c", str(config), cwd=tmp_path),
        await run_cli("status", "-c", str(config), "--json", cwd=tmp_path),
        await run_cli("failures", "-c", str(config), "--json", cwd=tmp_path),
    ]
    live_tokens = list(sim.state.tokens.live)
    assert live_tokens, "the run minted a token"
    await admin_post(sim, "config", {"revoked": True})
    write_feed(tmp_path / "changes.jsonl", lead_updates(20, tag="v2"))
    for stale in tmp_path.glob("journal.db*"):
        stale.unlink()
    outputs.append(await run_cli("run", "-c", str(config), cwd=tmp_path))
    secrets = [*SECRET_ENV.values(), *live_tokens]
    for result in outputs:
        for secret in secrets:
            assert secret not in result.stdout
            assert secret not in result.stderr
    mode = stat.S_IMODE((tmp_path / "journal.db").stat().st_mode)
    assert mode == 0o600
