#!/usr/bin/env python3
"""Summarises `perf script` output of `bench throughput` for BENCHMARKS.md.

  oncpu  FILE  : inclusive share of chosen frames in the worker's poll thread (the thread
                 whose stacks contain App::run_blocking), plus its top self-time functions.
  offcpu FILE  : for `perf record -e sched:sched_switch` data, where the poll thread's
                 wall time went between consecutive switch-outs, by blocking site.

FILE comes from `perf script -F comm,tid,ip,sym` (oncpu) or
`perf script -F comm,tid,time,event,trace,ip,sym` (offcpu).
"""
import collections
import re
import sys

ONCPU_FRAMES = [
    "Agent>::process", "AvroDecoder::decode", "GenericDatumReader::__orig_new",
    "decode_internal", "from_value", "Table<K,V>::update", "BaseConsumer<C>::poll",
    "rd_kafka_q_pop_serve", "with_engine", "HashMap<K,V,S,A>::insert", "clock_gettime",
    "checkpoint::checkpoint", "ConsumerContext>::rebalance", "malloc", "free",
]

BLOCK_SITES = [
    ("checkpoint flush", ["kafka::flush", "Producer<C,Part>>::flush"]),
    ("assignment (open stores, restore check)", ["rebalance", "on_assign", "DB::Open"]),
    ("consumer poll: no record ready", ["BaseConsumer<C>::poll"]),
    ("table lock", ["Table<K,V>::update", "Table<K,V>::items"]),
]


def parse(path, with_header):
    samples, cur = [], None
    for line in open(path, errors="replace"):
        if not line.strip():
            if cur:
                samples.append(cur)
            cur = None
            continue
        if not line[0].isspace():
            if with_header:
                m = re.match(r"(.+?)\s+(\d+)\s+([\d.]+):\s+\S+:\s+(.*)$", line.rstrip())
                cur = {"tid": m.group(2), "t": float(m.group(3)), "trace": m.group(4),
                       "stack": []} if m else None
            else:
                parts = line.split()
                cur = {"tid": parts[-1], "stack": []}
        elif cur is not None:
            f = line.strip().split(None, 1)
            cur["stack"].append(f[1] if len(f) > 1 else "?")
    if cur:
        samples.append(cur)
    return samples


def poll_thread(samples):
    c = collections.Counter(s["tid"] for s in samples
                            if any("run_blocking" in f for f in s["stack"]))
    tid = c.most_common(1)[0][0]
    return [s for s in samples if s["tid"] == tid]


def oncpu(path):
    ps = poll_thread(parse(path, False))
    n = len(ps)
    print(f"poll thread: {n} samples")
    for k in ONCPU_FRAMES:
        c = sum(1 for s in ps if any(k in f for f in s["stack"]))
        print(f"  {100 * c / n:5.1f}%  {k}")
    print("top self time:")
    selfc = collections.Counter(s["stack"][0] for s in ps if s["stack"])
    for f, c in selfc.most_common(15):
        print(f"  {100 * c / n:5.1f}%  {f[:100]}")


def offcpu(path):
    ev = poll_thread(parse(path, True))
    span = ev[-1]["t"] - ev[0]["t"]
    tot, cnt = collections.Counter(), collections.Counter()
    for a, b in zip(ev, ev[1:]):
        st = a["stack"]
        if "prev_state=R" in a["trace"]:
            k = "preempted (runnable: other work had the CPU)"
        else:
            k = "other"
            for name, keys in BLOCK_SITES:
                if any(any(x in f for x in keys) for f in st):
                    k = name
                    break
            if k == "other" and any("rocksdb" in f.lower() for f in st):
                k = "assignment (open stores, restore check)"
        tot[k] += b["t"] - a["t"]
        cnt[k] += 1
    print(f"poll thread: {len(ev)} switch-outs over {span:.2f} s")
    for k, v in tot.most_common():
        print(f"  {v:7.3f} s {100 * v / span:5.1f}%  n={cnt[k]:5d}  {k}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("oncpu", "offcpu"):
        sys.exit(__doc__)
    {"oncpu": oncpu, "offcpu": offcpu}[sys.argv[1]](sys.argv[2])
