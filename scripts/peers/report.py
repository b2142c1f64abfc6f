"""Writes the peers table (markdown) from the JSON results of scripts/peers.sh: the worker's
`bench throughput --json` report and the Quix / Faust results. Exits 1 when a run that was
asked for is missing or its counts were not exact."""

import argparse
import json
import os
import platform
import sys


TARGETS = {"quix": 30.0, "faust": 1000.0}


def load(path):
    if not path or not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def mib(kib):
    return f"{kib / 1024:.0f} MiB" if kib else "n/a"


def worker_row(w):
    wk = w["worker"]
    n = w["records"]
    cpu = wk["cost"]["cpu"]["user"] + wk["cost"]["cpu"]["sys"]
    return {
        "name": "cta-stream worker (`bench throughput`)",
        "input": "Avro (Confluent wire format)",
        "store": "RocksDB + changelog topics (3 tables)",
        "records": n,
        "rps": wk["records_per_sec_from_first"],
        "rps_start": wk["records_per_sec"],
        "cpu_pm": cpu / n * 1e6,
        "rss": wk["cost"]["peak_rss_kib"],
        "exact": w["expected_checksum"] == w["table_checksum"],
        "exact_note": "table = produced (checksum {:016x})".format(w["table_checksum"]),
    }


def peer_row(r, name):
    return {
        "name": r["peer"],
        "input": "JSON",
        "store": r["store"],
        "records": r["records"],
        "rps": r["records_per_sec"],
        "rps_start": r["records"] / r["start_to_last_secs"] if r["start_to_last_secs"] > 0 else 0.0,
        "cpu_pm": r["cpu_secs_per_million"],
        "rss": r["peak_rss_kib"],
        "exact": bool(r["counts_exact"] and r["changelog_counts_exact"]),
        "exact_note": f"table and changelog ({r['changelog_records']:,} changelog records read) = produced",
        "key": name,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worker")
    ap.add_argument("--quix")
    ap.add_argument("--faust")
    ap.add_argument("--loads", required=True, help="file of 'phase when loadavg' lines")
    ap.add_argument("--command", required=True)
    ap.add_argument("--broker", required=True, help="what the broker was")
    ap.add_argument("--date", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    worker, quix, faust = load(a.worker), load(a.quix), load(a.faust)
    rows, problems = [], []
    if a.worker:
        if worker is None:
            problems.append("the worker's report is missing (the run failed)")
        else:
            rows.append(worker_row(worker))
    for key, path, data, label in [("quix", a.quix, quix, "Quix Streams"), ("faust", a.faust, faust, "faust-streaming")]:
        if path:
            if data is None:
                problems.append(f"{label}'s result is missing (the run failed)")
            else:
                rows.append(peer_row(data, key))
    for r in rows:
        if not r["exact"]:
            problems.append(f"{r['name']}: counts not exact")

    loads = {}
    with open(a.loads) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                loads[(parts[0], parts[1])] = parts[2]
    one_min = [float(v) for v in loads.values()]
    busy = max(one_min, default=0.0) > 1.5
    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass

    has_worker = worker is not None and rows and rows[0]["name"].startswith("cta-stream")
    w_rps = rows[0]["rps"] if has_worker else None
    w_cpu = rows[0]["cpu_pm"] if has_worker else None
    out = []
    out.append(f"### Peers on one broker, {a.date}")
    out.append("")
    out.append(f"Machine: {cpus} CPUs ({model}), {platform.platform()}. Broker: {a.broker}.")
    out.append("")
    load_txt = ", ".join(f"{p} {w} {v}" for (p, w), v in loads.items())
    out.append(
        f"Load average (1 min) around each run: {load_txt}."
        + (
            " **The machine was busy** (other people building on the same 2 cores): wall-clock rates are "
            "pessimistic for everyone, and more so for a program on one thread (the Python peers) than "
            "for one on several (the worker's poll thread, librdkafka's threads, the tokio workers "
            "each get a share of the cores), so the records/s ratios favour the worker; CPU-s per "
            "million is the steadier figure."
            if busy
            else " The machine was quiet."
        )
    )
    out.append("")
    out.append(f"Command: `{a.command}`")
    out.append("")
    out.append(
        "| program | input | table store | records | records/s first→last | records/s start→last | "
        "CPU-s per million | peak RSS | counts exact | worker ÷ this, records/s first→last | "
        "this ÷ worker, CPU-s per million |"
    )
    out.append("|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|")
    verdicts = []
    for r in rows:
        ratio = cpu_ratio = ""
        if w_cpu and r.get("key"):
            cpu_ratio = f"{r['cpu_pm'] / w_cpu:,.1f}×"
        if w_rps and r.get("key"):
            q = w_rps / r["rps"] if r["rps"] > 0 else float("inf")
            target = TARGETS[r["key"]]
            ratio = f"**{q:,.1f}×** (target ≥ {target:,.0f}×: {'met' if q >= target else 'MISSED'})"
            verdicts.append(q >= target)
        out.append(
            f"| {r['name']} | {r['input']} | {r['store']} | {r['records']:,} | {r['rps']:,.0f} | "
            f"{r['rps_start']:,.0f} | {r['cpu_pm']:,.1f} | {mib(r['rss'])} | "
            f"{'yes' if r['exact'] else '**NO**'}: {r['exact_note']} | {ratio} | {cpu_ratio} |"
        )
    out.append("")
    out.append(
        "records/s first→last: the first record the program processed to the last of N (the worker: to "
        "the table counting all N). start→last: from the program's start (the worker: to the checkpoint "
        "covering all N being stored; the peers: to the N-th record, their final commit after it not "
        "counted). CPU: user+system of the process over its start→last (the worker: its phase of the "
        "bench process, the producer and raw consumers excluded). Peak RSS: VmHWM of the process (the "
        "worker: of its phase). Each program checks its counts per station against the produced ones "
        "and fails otherwise; the peers check both their table and their changelog topic read back."
    )
    if problems:
        out.append("")
        out.append("**Problems:** " + "; ".join(problems))
    text = "\n".join(out) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
