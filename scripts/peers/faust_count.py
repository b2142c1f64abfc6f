"""faust-streaming peer: an agent counts turnstile entries per station in a Table (RocksDB
store through rocksdict where it is installed, changelog topic), stops after the expected number
of records, checks the counts the table holds and the ones its changelog holds against the
produced counts, and writes the measurements as JSON."""

import argparse
import asyncio
import json
import logging
import os
import signal
import time

import faust

from common import Meter, compare_counts, fail, load_expected, read_topic_latest, write_json


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--expected", required=True, help="counts JSON written by workload.py")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--store", default="rocksdb://", help="Faust table store URL (memory:// to compare)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    expected = load_expected(a.expected)
    total = sum(expected.values())

    app = faust.App(
        f"peers-faust-{time.time_ns()}",
        broker=f"kafka://{a.brokers}",
        store=a.store,
        datadir=a.data_dir,
        topic_partitions=a.partitions,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(a.topic, key_type=bytes, value_serializer="json")
    counts = app.Table("station_counts", default=int, key_type=str, value_type=int, partitions=a.partitions)
    state = {"meter": None, "result": None}

    def finish():
        meter = state["meter"]
        result = meter.result()
        got = {int(k): int(v) for k, v in counts.items()}
        result["mismatch"] = compare_counts(expected, got)
        state["result"] = result
        # Faust's worker stops cleanly on SIGTERM (changelog producer flushed, offsets committed).
        os.kill(os.getpid(), signal.SIGTERM)

    @app.agent(topic)
    async def count(stream):
        async for key, _value in stream.items():
            counts[key.decode()] += 1
            if state["meter"].record():
                finish()

    state["meter"] = Meter(total)
    worker = faust.Worker(app, loglevel=logging.WARNING, quiet=True)
    # The worker closes its own event loop on the way out: the check below needs a fresh one.
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())
    meter, result = state["meter"], state["result"]
    if result is None:
        fail(f"Faust stopped after {meter.seen} of {total} records")
    result["stop_secs"] = time.monotonic() - meter.t_last

    changelog = f"{app.conf.id}-{counts.name}-changelog"
    latest_raw, records_read = read_topic_latest(a.brokers, changelog)
    from_changelog = {
        int(json.loads(k)): int(json.loads(v)) for k, v in latest_raw.items() if k is not None and v is not None
    }
    changelog_mismatch = compare_counts(expected, from_changelog)
    store_kind = a.store
    if a.store.startswith("rocksdb"):
        from faust.stores import rocksdb as frdb

        store_kind = "RocksDB (rocksdict)" if frdb.USE_ROCKSDICT else "RocksDB (python-rocksdb)"
    result.update(
        {
            "peer": f"faust-streaming {faust.__version__}",
            "store": f"{store_kind} + changelog topic",
            "changelog_topic": changelog,
            "changelog_records": records_read,
            "counts_exact": result["mismatch"] is None,
            "changelog_counts_exact": changelog_mismatch is None,
            "changelog_mismatch": changelog_mismatch,
        }
    )
    write_json(a.out, result)
    if result["mismatch"] or changelog_mismatch:
        fail(f"Faust counts wrong: table: {result['mismatch']}; changelog: {changelog_mismatch}")
    print(
        f"Faust: {result['records']} records, {result['records_per_sec']:.0f} records/s, "
        f"{result['cpu_secs_per_million']:.1f} CPU-s/M, counts exact (table and changelog)"
    )


if __name__ == "__main__":
    main()
