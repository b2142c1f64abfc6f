# Shows that tansu 0.6 answers a Fetch at an offset inside a record batch with the batches
# after it: a consumer that resumes at a committed offset in the middle of a batch (what every
# restarted Kafka consumer does) never receives the rest of that batch. This is why
# tests/faults/crash.rs ends short on tansu (README, "The tests"). It also shows the high
# watermark tansu reports (the last batch's base offset + 1). Needs a tansu broker and
# confluent-kafka:
#   python3 -m venv /tmp/ck && /tmp/ck/bin/pip install confluent-kafka
#   tansu broker --listener-url tcp://127.0.0.1:19492 \
#     --advertised-listener-url tcp://127.0.0.1:19492 --storage-engine memory://tansu/ &
#   /tmp/ck/bin/python scripts/checks/tansu_fetch_mid_batch.py 127.0.0.1:19492
# Expected on a correct broker: watermarks (0, 15); from 5: 5..14; from 12: 12..14.
# tansu 0.6.0 (2026-12-03): watermarks (0, 11); from 5: 10..14 (twice); from 12: nothing.
import sys
import time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

brokers = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:19492"
topic = "mid-batch-%d" % int(time.time())
admin = AdminClient({"bootstrap.servers": brokers})
for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
    f.result()
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 100})
for batch in (range(0, 10), range(10, 15)):  # two batches: offsets 0-9 and 10-14
    for i in batch:
        producer.produce(topic, value=b"%d" % i, partition=0)
    producer.flush(10)
consumer = Consumer({"bootstrap.servers": brokers, "group.id": "mid-batch",
                     "enable.auto.commit": False, "enable.partition.eof": True})
print("watermarks", consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10))
for start in (0, 5, 10, 12):
    consumer.assign([TopicPartition(topic, 0, start)])
    got, began = [], time.time()
    while time.time() - began < 5:
        m = consumer.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                break
            continue
        got.append(m.offset())
    print("from", start, "got", got)
consumer.close()
