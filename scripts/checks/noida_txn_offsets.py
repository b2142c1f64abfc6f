# Shows that noida-db 0.2.2 exposes the offsets of an open Kafka transaction as the group's
# committed offsets, and keeps them after the transaction is aborted (its producer killed,
# the broker restarted, a new producer with the same transactional id fencing it). Kafka keeps
# such offsets pending (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT) and
# drops them on abort. This is why tests/faults/exactly_once.rs's kill -9 test can end short
# on noida-db (README, Exactly-once outputs). Needs noida-db on PATH and confluent-kafka:
#   python3 -m venv /tmp/ck && /tmp/ck/bin/pip install confluent-kafka
#   /tmp/ck/bin/python scripts/checks/noida_txn_offsets.py
# Expected on a correct broker: every line says 5. noida-db 0.2.2 (2026-12-03): 10 from the
# second line on.
import os, sys, time, signal, subprocess
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
B='127.0.0.1:19192'
import tempfile
DATA=os.environ.get('NOIDA_DATA') or tempfile.mkdtemp()
os.environ['NOIDA_DATA']=DATA
def start():
    p=subprocess.Popen(['noida-db','start','--only','kafka','--kafka-port','19192','--data-dir',DATA],stdout=subprocess.DEVNULL,stderr=subprocess.STDOUT,start_new_session=True)
    time.sleep(3); return p
def stop(p):
    # noida-db on PATH is a wrapper around the broker binary: stop the whole group.
    os.killpg(p.pid, signal.SIGTERM); p.wait(); time.sleep(1)
def committed(tag):
    c=Consumer({'bootstrap.servers':B,'group.id':'g','enable.auto.commit':False,'isolation.level':'read_committed'})
    print(tag,'committed:',[ (t.partition,t.offset) for t in c.committed([TopicPartition('src',0)],timeout=10)])
    c.close()
def txn_child(commit_to, commit):
    p=Producer({'bootstrap.servers':B,'transactional.id':'tx1'})
    p.init_transactions(10)
    c=Consumer({'bootstrap.servers':B,'group.id':'g','enable.auto.commit':False})
    p.begin_transaction()
    for i in range(5): p.produce('out',value=b'x%d'%i)
    p.flush(10)
    p.send_offsets_to_transaction([TopicPartition('src',0,commit_to)], c.consumer_group_metadata(), 10)
    if commit:
        p.commit_transaction(10); print('child committed',commit_to,flush=True)
    else:
        print('child left open',commit_to,flush=True); time.sleep(1000)
if len(sys.argv)>1:
    txn_child(int(sys.argv[1]), sys.argv[2]=='1'); sys.exit(0)
nd=start()
a=AdminClient({'bootstrap.servers':B})
for f in a.create_topics([NewTopic('src',1,1),NewTopic('out',1,1)]).values():
    try: f.result()
    except Exception as e: print('create',e)
pr=Producer({'bootstrap.servers':B})
for i in range(10): pr.produce('src',value=b'%d'%i)
pr.flush(10)
subprocess.run([sys.executable,__file__,'5','1'],timeout=60)
committed('after committed txn (expect 5)')
ch=subprocess.Popen([sys.executable,__file__,'10','0'])
time.sleep(6)
committed('open txn to 10, before kill (expect 5)')
ch.send_signal(signal.SIGKILL); ch.wait()
committed('after kill -9 (expect 5)')
stop(nd); nd=start()
committed('after broker restart (expect 5)')
p=Producer({'bootstrap.servers':B,'transactional.id':'tx1'}); p.init_transactions(30)
committed('after init_transactions fenced it (expect 5)')
stop(nd)
