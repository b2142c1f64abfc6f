"""Quix Streams peer: counts turnstile entries per station in a stateful StreamingDataFrame
(RocksDB state, changelog topic on: Quix's defaults), stops after the expected number of
records, checks the counts the state holds and the ones its changelog holds against the
produced counts, and writes the measurements as JSON."""

import argparse
import json
import logging
import time

from quixstreams import Application

from common import Meter, compare_counts, fail, load_expected, read_topic_latest, write_json

COUNT_KEY = "count"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--expected", required=True, help="counts JSON written by workload.py")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    expected = load_expected(a.expected)
    total = sum(expected.values())

    group = f"peers-quix-{time.time_ns()}"
    app = Application(
        broker_address=a.brokers,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=a.state_dir,
        use_changelog_topics=True,
        loglevel=logging.WARNING,
    )
    topic = app.topic(a.topic, key_deserializer="str", value_deserializer="json")
    sdf = app.dataframe(topic)
    latest = {}

    def count(value, key, _ts, _headers, state):
        c = state.get(COUNT_KEY, 0) + 1
        state.set(COUNT_KEY, c)
        latest[key] = c
        if meter.record():
            app.stop()
        return c

    sdf.apply(count, stateful=True, metadata=True)
    # The clock starts where the app starts (consumer, group join, state stores included).
    meter = Meter(total)
    app.run()
    result = meter.result()
    result["stop_secs"] = time.monotonic() - meter.t_last if meter.t_last else None
    if meter.seen != total:
        fail(f"Quix stopped after {meter.seen} of {total} records")

    mismatch = compare_counts(expected, {int(k): v for k, v in latest.items()})
    changelogs = [t.name for t in app._topic_manager.changelog_topics_list]  # noqa: SLF001
    if len(changelogs) != 1:
        fail(f"expected one changelog topic, found {changelogs}")
    suffix = b"|" + json.dumps(COUNT_KEY).encode()
    from_changelog = {}
    latest_raw, records_read = read_topic_latest(a.brokers, changelogs[0])
    for k, v in latest_raw.items():
        if k is not None and k.endswith(suffix) and v is not None:
            from_changelog[int(json.loads(k[: -len(suffix)]))] = json.loads(v)
    changelog_mismatch = compare_counts(expected, from_changelog)
    import quixstreams

    result.update(
        {
            "peer": f"Quix Streams {quixstreams.__version__}",
            "store": "RocksDB (rocksdict) + changelog topic",
            "changelog_topic": changelogs[0],
            "changelog_records": records_read,
            "counts_exact": mismatch is None,
            "changelog_counts_exact": changelog_mismatch is None,
            "mismatch": mismatch,
            "changelog_mismatch": changelog_mismatch,
        }
    )
    write_json(a.out, result)
    if mismatch or changelog_mismatch:
        fail(f"Quix counts wrong: state: {mismatch}; changelog: {changelog_mismatch}")
    print(
        f"Quix: {result['records']} records, {result['records_per_sec']:.0f} records/s, "
        f"{result['cpu_secs_per_million']:.1f} CPU-s/M, counts exact (state and changelog)"
    )


if __name__ == "__main__":
    main()
