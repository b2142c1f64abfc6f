"""Shared pieces of the peer benchmarks (scripts/peers.sh): the station draw, the meter, the
count check, reading a changelog back. Benchmark tooling only, never part of the product."""

import csv
import json
import os
import resource
import sys
import time
from pathlib import Path

STATIONS_CSV = Path(__file__).resolve().parents[2] / "data" / "stations.csv"


def station_rows(path=STATIONS_CSV):
    """(station_id, station_name, line, avg_weekday) per row of the station CSV."""
    with open(path, newline="") as f:
        return [
            (int(r["station_id"]), r["station_name"], r["line"], max(int(r["avg_weekday"] or 0), 1))
            for r in csv.DictReader(f)
        ]


def vm_kib(field):
    """A `VmXXX:` figure of /proc/self/status in KiB (None where there is no /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_secs():
    """User + system CPU seconds of this process, all its threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Meter:
    """Wall clock and CPU from start(), first record, last record; peak RSS of the process."""

    def __init__(self, expected_total):
        self.expected_total = expected_total
        self.seen = 0
        self.t_start = time.monotonic()
        self.cpu_start = cpu_secs()
        self.t_first = None
        self.t_last = None
        self.cpu_last = None

    def record(self):
        """Counts one processed record; True once the expected total was reached."""
        if self.t_first is None:
            self.t_first = time.monotonic()
        self.seen += 1
        if self.seen == self.expected_total:
            self.t_last = time.monotonic()
            self.cpu_last = cpu_secs()
            return True
        return False

    def result(self):
        n = self.seen
        span = (self.t_last or time.monotonic()) - (self.t_first or self.t_start)
        cpu = (self.cpu_last if self.cpu_last is not None else cpu_secs()) - self.cpu_start
        return {
            "records": n,
            "first_record_secs": (self.t_first or self.t_start) - self.t_start,
            "first_to_last_secs": span,
            "records_per_sec": n / span if span > 0 else 0.0,
            "start_to_last_secs": (self.t_last or time.monotonic()) - self.t_start,
            "cpu_secs": cpu,
            "cpu_secs_per_million": cpu / n * 1e6 if n else 0.0,
            "peak_rss_kib": vm_kib("VmHWM:"),
        }


def load_expected(path):
    with open(path) as f:
        data = json.load(f)
    return {int(k): int(v) for k, v in data["counts"].items()}


def compare_counts(expected, got):
    """None when equal, else a one-line description of the first differences."""
    expected = {int(k): int(v) for k, v in expected.items()}
    got = {int(k): int(v) for k, v in got.items()}
    if expected == got:
        return None
    diffs = sorted(k for k in set(expected) | set(got) if expected.get(k) != got.get(k))
    shown = "; ".join(f"station {k}: expected {expected.get(k)}, got {got.get(k)}" for k in diffs[:8])
    return (
        f"expected {sum(expected.values())} entries over {len(expected)} stations, got "
        f"{sum(got.values())} over {len(got)} ({len(diffs)} stations differ; {shown})"
    )


def read_topic_latest(brokers, topic, timeout=120.0):
    """Reads a topic from the beginning to its end (high watermarks at the call); returns the
    latest (key bytes -> value bytes) per key, and how many records were read."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"peers-check-{os.getpid()}-{time.time_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    try:
        md = c.list_topics(topic, timeout=30)
        parts = md.topics[topic].partitions
        if not parts:
            raise SystemExit(f"topic {topic} has no partitions")
        pending = set()
        assign = []
        for p in parts:
            low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                pending.add(p)
                assign.append(TopicPartition(topic, p, low))
        latest, n = {}, 0
        if not assign:
            return latest, 0
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in pending}
        c.assign(assign)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise SystemExit(f"reading {topic}: partitions {sorted(pending)} not read to the end in {timeout} s")
            for m in c.consume(10000, 0.5):
                if m.error():
                    if m.error().code() == -191:  # _PARTITION_EOF
                        pending.discard(m.partition())
                        continue
                    raise SystemExit(f"reading {topic}: {m.error()}")
                n += 1
                latest[m.key()] = m.value()
                if m.offset() + 1 >= ends[m.partition()]:
                    pending.discard(m.partition())
        return latest, n
    finally:
        c.close()


def write_json(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)
