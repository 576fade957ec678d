"""(d) Against the tool users pick today: Zoho's official Python SDK.

Both clients update the same records with the same values on the same simulator
(its own process, 100 ms latency, admin on), each as a child process so that
CPU seconds are counted the same way: the user + system time of the waited-for
child (`os.times()` children fields), scaled to 100,000 records. Records per
second are records ÷ the child's wall time, start-up included for both.

- syncengine: `syncengine run` on a JSONL feed of the updates (concurrency 10,
  Zoho's cap on 100-record writes).
- SDK (`zohocrmsdk2-0`): this script re-invoked with `--sdk-worker`, reading the
  same feed and sending it as the SDK's documentation shows: sequential
  `RecordOperations().update_records(module, BodyWrapper)` calls of 100
  `Record` objects, INFO logging to a file, an in-memory token store.

The simulator is reset and re-seeded before every run so both update existing
records. Bars: syncengine rec/s ÷ SDK rec/s ≥ 10; syncengine CPU ÷ SDK CPU per
100,000 records ≤ 0.2.

    python -m benchmarks.bench_vs_sdk [--records 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    FIRST_ID,
    REPO,
    admin,
    free_port,
    median,
    run_engine_logged,
    server_process,
    write_config,
    write_update_feed,
)
from syncengine.sim.config import SimConfig

#: The simulator's fixed demo credentials.
DEMO = SimConfig()

LATENCY_MS = 100
CHUNK = 100
PER_CPU_RECORDS = 100_000
RATE_BAR = 10.0
CPU_BAR = 0.2


@dataclass(frozen=True)
class Measure:
    """One client's run: wall seconds and child CPU seconds for `records` records."""

    records: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        """Records per second over the child's whole life."""
        return self.records / self.wall_s

    @property
    def cpu_per_100k_s(self) -> float:
        """CPU seconds scaled to 100,000 records."""
        return self.cpu_s * PER_CPU_RECORDS / self.records


def fresh_records(port: int, records: int) -> None:
    """Reset the simulator and seed the records both clients update."""
    admin(port, "reset", {})
    admin(port, "seed", {"module": "Leads", "count": records, "id_start": FIRST_ID})


def check_written(port: int, records: int, who: str) -> None:
    """Fail loudly unless the simulator counted every record written, with SUCCESS."""
    stats = admin(port, "stats")
    written, success = int(stats["records_written"]), int(stats["by_code"].get("SUCCESS", 0))
    if written != records or success != records:
        raise SystemExit(
            f"{who}: simulator wrote {written} records, {success} SUCCESS; expected {records}"
        )


def child_cpu_s() -> float:
    """User + system CPU seconds of every waited-for child so far."""
    times = os.times()
    return times.children_user + times.children_system


def measure_engine(port: int, folder: Path, config: Path, records: int) -> Measure:
    """One `syncengine run` as a child process; every record must be synced."""
    for stale in folder.glob("bench.db*"):
        stale.unlink()
    fresh_records(port, records)
    cpu_before, started = child_cpu_s(), time.perf_counter()
    summary, status = run_engine_logged(config)
    wall_s, cpu_s = time.perf_counter() - started, child_cpu_s() - cpu_before
    if status != 0 or summary.get("synced") != records:
        raise SystemExit(f"syncengine: exit status {status}, summary {summary}")
    check_written(port, records, "syncengine")
    return Measure(records, wall_s, cpu_s)


def measure_sdk(port: int, folder: Path, feed: Path, records: int) -> Measure:
    """The SDK worker as a child process; it must report every record SUCCESS."""
    fresh_records(port, records)
    workdir = Path(tempfile.mkdtemp(dir=folder, prefix="sdk-"))
    command = [sys.executable, "-m", "benchmarks.bench_vs_sdk", "--sdk-worker"]
    command += ["--port", str(port), "--feed", str(feed), "--workdir", str(workdir)]
    cpu_before, started = child_cpu_s(), time.perf_counter()
    completed = subprocess.run(
        command,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        check=False,
    )
    wall_s, cpu_s = time.perf_counter() - started, child_cpu_s() - cpu_before
    if completed.returncode != 0:
        sys.stderr.write(completed.stderr.decode()[-3000:])
        raise SystemExit(f"SDK worker: exit status {completed.returncode}")
    report = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    if report["success"] != records:
        raise SystemExit(f"SDK worker: {report['success']} SUCCESS of {records}: {report}")
    check_written(port, records, "SDK")
    return Measure(records, wall_s, cpu_s)


# --- the SDK worker: a user's script, as the SDK's documentation shows ----------------


def data_center_class() -> type:
    """A DataCenter whose API and accounts server are the local simulator.

    Built here, as in tests/sim/test_sdk_interop.py, so that importing this
    module (the parent process) never loads the SDK.
    """
    from zcrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter

    class SimulatorDataCenter(DataCenter):  # type: ignore[misc]
        def __init__(self, base_url: str) -> None:
            self.base_url = base_url

        def get_iam_url(self) -> str:
            return f"{self.base_url}/oauth/v2/token"

        def get_file_upload_url(self) -> str:
            return self.base_url

        def environment(self) -> Any:
            return DataCenter.Environment(
                self.base_url, self.get_iam_url(), self.get_file_upload_url(), "sim"
            )

    return SimulatorDataCenter


def token_store_class() -> type:
    """An in-memory SDK TokenStore keyed by user email (the SDK then refreshes once)."""
    from zcrmsdk.src.com.zoho.api.authenticator.store.token_store import TokenStore

    class MemoryTokenStore(TokenStore):  # type: ignore[misc]
        def __init__(self) -> None:
            self.tokens: dict[str, Any] = {}

        def get_token(self, user: Any, token: Any) -> Any:
            return self.tokens.get(user.get_email())

        def save_token(self, user: Any, token: Any) -> None:
            token.set_user_mail(user.get_email())
            self.tokens[user.get_email()] = token

        def delete_token(self, token: Any) -> None:
            self.tokens = {k: v for k, v in self.tokens.items() if v is not token}

        def get_tokens(self) -> list[Any]:
            return list(self.tokens.values())

        def delete_tokens(self) -> None:
            self.tokens.clear()

        def get_token_by_id(self, id: str, token: Any) -> Any:
            return next((t for t in self.tokens.values() if t.get_id() == id), None)

    return MemoryTokenStore


def sdk_initialise(port: int, workdir: Path) -> None:
    """Initializer.initialize as the SDK's README shows, pointed at the simulator."""
    from zcrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
    from zcrmsdk.src.com.zoho.api.logger import Logger
    from zcrmsdk.src.com.zoho.crm.api.initializer import Initializer
    from zcrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig
    from zcrmsdk.src.com.zoho.crm.api.user_signature import UserSignature

    data_center, token_store = data_center_class(), token_store_class()
    Initializer.initialize(
        user=UserSignature("sync@example.org"),
        environment=data_center(f"http://127.0.0.1:{port}").environment(),
        token=OAuthToken(
            client_id=DEMO.client_id,
            client_secret=DEMO.client_secret,
            refresh_token=DEMO.refresh_token,
        ),
        store=token_store(),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(workdir),
        logger=Logger.get_instance(Logger.Levels.INFO, str(workdir / "sdk.log")),
    )


def feed_chunks(feed: Path) -> Iterator[list[dict[str, Any]]]:
    """The feed's updates in chunks of 100, read with the standard library."""
    chunk: list[dict[str, Any]] = []
    with feed.open(encoding="utf-8") as lines:
        for line in lines:
            chunk.append(json.loads(line))
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def sdk_body(chunk: list[dict[str, Any]]) -> Any:
    """A BodyWrapper of `Record` objects for one chunk of updates."""
    from zcrmsdk.src.com.zoho.crm.api.record import BodyWrapper, Record
    from zcrmsdk.src.com.zoho.crm.api.util import Choice

    records = []
    for change in chunk:
        record = Record()
        record.set_id(int(change["id"]))
        record.add_key_value("Company", change["Company"])
        record.add_key_value("Lead_Status", Choice(change["Lead_Status"]))
        record.add_key_value("No_of_Employees", change["No_of_Employees"])
        records.append(record)
    body = BodyWrapper()
    body.set_data(records)
    body.set_trigger([])
    return body


def sdk_outcomes(response: Any) -> list[str]:
    """Per-record codes of one update_records response (SUCCESS or the error code)."""
    from zcrmsdk.src.com.zoho.crm.api.record import ActionWrapper, APIException

    if response is None:
        return ["NO_RESPONSE"]
    wrapper = response.get_object()
    if isinstance(wrapper, APIException):
        return [f"{response.get_status_code()}:{wrapper.get_code().get_value()}"]
    if not isinstance(wrapper, ActionWrapper):
        return [f"{response.get_status_code()}:{type(wrapper).__name__}"]
    return [str(item.get_code().get_value()) for item in wrapper.get_data()]


def sdk_worker(port: int, feed: Path, workdir: Path) -> None:
    """Sends the feed through the SDK sequentially; prints one JSON line of counts."""
    from zcrmsdk.src.com.zoho.crm.api.record import RecordOperations

    started = time.perf_counter()
    sdk_initialise(port, workdir)
    codes: dict[str, int] = {}
    calls = 0
    for chunk in feed_chunks(feed):
        response = RecordOperations().update_records("Leads", sdk_body(chunk))
        calls += 1
        for code in sdk_outcomes(response):
            codes[code] = codes.get(code, 0) + 1
    elapsed_s = time.perf_counter() - started
    report = {"success": codes.get("SUCCESS", 0), "codes": codes, "calls": calls}
    print(json.dumps({**report, "elapsed_s": elapsed_s}))


# --- the comparison ------------------------------------------------------------------


def print_round(index: int, engine: Measure, sdk: Measure) -> None:
    print(
        f"round {index}: syncengine {engine.rate:,.0f} rec/s, "
        f"{engine.cpu_per_100k_s:.2f} CPU s/100k ({engine.wall_s:.2f} s wall); "
        f"SDK {sdk.rate:,.0f} rec/s, {sdk.cpu_per_100k_s:.2f} CPU s/100k "
        f"({sdk.wall_s:.2f} s wall); rate ratio {engine.rate / sdk.rate:.2f}, "
        f"CPU ratio {engine.cpu_per_100k_s / sdk.cpu_per_100k_s:.3f}",
        flush=True,
    )


def print_medians(engines: list[Measure], sdks: list[Measure]) -> None:
    engine_rate = median([m.rate for m in engines])
    sdk_rate = median([m.rate for m in sdks])
    engine_cpu = median([m.cpu_per_100k_s for m in engines])
    sdk_cpu = median([m.cpu_per_100k_s for m in sdks])
    rate_ratio, cpu_ratio = engine_rate / sdk_rate, engine_cpu / sdk_cpu
    print(
        f"median: syncengine {engine_rate:,.0f} rec/s, {engine_cpu:.2f} CPU s/100k; "
        f"SDK {sdk_rate:,.0f} rec/s, {sdk_cpu:.2f} CPU s/100k"
    )
    print(
        f"syncengine rec/s ÷ SDK rec/s: {rate_ratio:.2f} (bar: >= {RATE_BAR:g}) "
        f"{'met' if rate_ratio >= RATE_BAR else 'MISSED'}"
    )
    print(
        f"syncengine CPU ÷ SDK CPU per 100k: {cpu_ratio:.3f} (bar: <= {CPU_BAR:g}) "
        f"{'met' if cpu_ratio <= CPU_BAR else 'MISSED'}"
    )


def compare(records: int, rounds: int) -> None:
    """Runs both clients `rounds` times on one simulator and prints the figures."""
    port = free_port()
    sim_args = ["-m", "syncengine.sim", "--port", str(port), "--admin"]
    sim_args += ["--latency-ms", str(LATENCY_MS)]
    print(f"{records:,} records, {rounds} rounds, simulator latency {LATENCY_MS} ms", flush=True)
    with tempfile.TemporaryDirectory() as tmp, server_process(sim_args, port):
        folder = Path(tmp)
        feed = folder / "feed.jsonl"
        write_update_feed(feed, records)
        config = write_config(folder, port=port, feed=feed, concurrency=10)
        engines: list[Measure] = []
        sdks: list[Measure] = []
        for index in range(1, rounds + 1):
            engines.append(measure_engine(port, folder, config, records))
            sdks.append(measure_sdk(port, folder, feed, records))
            print_round(index, engines[-1], sdks[-1])
        print_medians(engines, sdks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sdk-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--feed", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sdk_worker:
        sdk_worker(args.port, args.feed, args.workdir)
    else:
        compare(args.records, args.rounds)


if __name__ == "__main__":
    main()
