"""Produces N turnstile entries as JSON (keyed by station id) to a new topic: stations drawn
from data/stations.csv in proportion to their average weekday entries, as the project's
`bench throughput` draws them, with a fixed seed. Writes the exact per-station counts."""

import argparse
import json
import random
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import fail, station_rows, write_json


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True, help="JSON file for the expected counts")
    a = ap.parse_args()
    if a.records < 1:
        fail("--records must be at least 1")

    admin = AdminClient({"bootstrap.servers": a.brokers})
    fut = admin.create_topics([NewTopic(a.topic, num_partitions=a.partitions, replication_factor=1)])
    for topic, f in fut.items():
        try:
            f.result(timeout=60)
        except Exception as e:  # noqa: BLE001 - the broker's error, shown as is
            fail(f"create topic {topic}: {e}")

    rows = station_rows()
    # One encoded (key, value) per CSV row, as the simulation would send for that station.
    encoded = [
        (str(sid).encode(), json.dumps({"station_id": sid, "station_name": name, "line": line}).encode())
        for sid, name, line, _ in rows
    ]
    draw = random.Random(a.seed).choices(range(len(rows)), weights=[r[3] for r in rows], k=a.records)

    delivered = {"ok": 0, "err": None}

    def on_delivery(err, _msg):
        if err is not None:
            delivered["err"] = err
        else:
            delivered["ok"] += 1

    p = Producer(
        {
            "bootstrap.servers": a.brokers,
            "linger.ms": 20,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "compression.type": "none",
        }
    )
    counts = {}
    t0 = time.monotonic()
    for i in draw:
        key, value = encoded[i]
        while True:
            try:
                p.produce(a.topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
        sid = rows[i][0]
        counts[sid] = counts.get(sid, 0) + 1
    left = p.flush(300)
    secs = time.monotonic() - t0
    if left or delivered["err"] is not None or delivered["ok"] != a.records:
        fail(
            f"produced {a.records} records to {a.topic} but {delivered['ok']} were acknowledged "
            f"({left} still queued; last error: {delivered['err']})"
        )
    write_json(
        a.out,
        {
            "topic": a.topic,
            "records": a.records,
            "seed": a.seed,
            "partitions": a.partitions,
            "produce_secs": secs,
            "counts": {str(k): v for k, v in sorted(counts.items())},
        },
    )
    print(f"produced {a.records} JSON records to {a.topic} in {secs:.1f} s ({len(counts)} stations)")


if __name__ == "__main__":
    main()
