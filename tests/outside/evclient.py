"""An outside client of the evcharge network, written from docs/PROTOCOL.md alone.

It speaks the wire protocol as any third party would: JSON envelopes on Kafka with the
`evcharge-proof` header, and framed TCP links (STX data ETX LRC) to the central. It plays
a driver, a CP's engine and a CP's monitor. Only the standard library, confluent-kafka and
cryptography; `python evclient.py self-test` checks it against the document's examples.
"""

import hashlib
import hmac
import json
import socket
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

from confluent_kafka import Consumer, Producer, TopicPartition
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "evcharge."
PROOF_HEADER = "evcharge-proof"
PROVEN_TOPICS = ("driver.requests", "cp.events", "cp.commands")

STX, ETX, ACK, NACK = 0x02, 0x03, 0x06, 0x15


# --- The envelope -------------------------------------------------------------------------


def now_rfc3339():
    """Now, in UTC, to the millisecond, as the document's examples write it."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def envelope(kind, **fields):
    """A record value: the four header fields beside the message's own."""
    return {"type": kind, "v": 1, "id": str(uuid.uuid4()), "ts": now_rfc3339(), **fields}


# --- The proof of origin ------------------------------------------------------------------


def bus_key(secret):
    """HKDF-SHA256 of the secret, empty salt, info `evcharge bus key v1`, 32 bytes."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"evcharge bus key v1")
    return hkdf.derive(secret.encode())


def prove(key, topic, record_key, value):
    """Lowercase hex HMAC-SHA256 of `evcharge-proof-v1 NUL topic NUL key NUL value`."""
    message = b"evcharge-proof-v1\0" + topic.encode() + b"\0" + record_key.encode() + b"\0" + value
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def read_secret(path):
    with open(path) as f:
        return f.read().strip()


# --- The bus ------------------------------------------------------------------------------


class Record:
    """A record as read: its topic (without the prefix), key, raw value and headers."""

    def __init__(self, message):
        self.topic = message.topic().removeprefix(PREFIX)
        self.key = (message.key() or b"").decode(errors="replace")
        self.raw = message.value() or b""
        self.headers = dict(message.headers() or [])
        try:
            self.value = json.loads(self.raw)
        except ValueError:
            self.value = None

    def proven_by(self, key):
        proof = self.headers.get(PROOF_HEADER)
        expected = prove(key, self.topic, self.key, self.raw).encode()
        return proof is not None and hmac.compare_digest(proof, expected)


class Bus:
    """A producer, and a consumer of some topics from the moment it was made on."""

    def __init__(self, bootstrap, read=()):
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                # The partitioner every evcharge client uses: one key, one partition.
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "acks": "all",
            }
        )
        self.consumer = None
        if read:
            self.consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": f"evclient-{uuid.uuid4()}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    # Brokers answer a fetch as soon as data comes; this bounds the wait.
                    "fetch.wait.max.ms": 100,
                }
            )
            self._assign_at_ends([PREFIX + t for t in read])

    def _assign_at_ends(self, topics):
        """Reads every partition from its end as it is now: no record sent after this call
        is missed, and no group join (which takes seconds) is waited for."""
        metadata = self.consumer.list_topics(timeout=10)
        partitions = []
        for topic in topics:
            if topic not in metadata.topics:
                raise RuntimeError(f"topic {topic} does not exist (is a central running?)")
            for p in metadata.topics[topic].partitions:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                partitions.append(TopicPartition(topic, p, high))
        self.consumer.assign(partitions)

    def send(self, topic, key, value, key_to_prove=None, proof=None):
        """Sends `value` (a dict, or bytes as is) keyed by `key`, proven under
        `key_to_prove` or with `proof` as the header; returns the bytes sent."""
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        if key_to_prove is not None:
            proof = prove(key_to_prove, topic, key, raw)
        headers = [(PROOF_HEADER, proof.encode())] if proof is not None else []
        failures = []
        self.producer.produce(
            PREFIX + topic,
            key=key.encode(),
            value=raw,
            headers=headers,
            on_delivery=lambda err, _msg: err and failures.append(err),
        )
        self.producer.flush(10)
        if failures:
            raise RuntimeError(f"cannot send to {topic}: {failures[0]}")
        return raw

    def poll(self, timeout=0.1):
        """The next record read, or None."""
        message = self.consumer.poll(timeout)
        if message is None or message.error():
            return None
        return Record(message)

    def close(self):
        if self.consumer is not None:
            self.consumer.close()


# --- TCP frames ---------------------------------------------------------------------------


def frame(data):
    """`STX data ETX LRC`, the LRC being the XOR of every data byte."""
    raw = data.encode() if isinstance(data, str) else data
    lrc = 0
    for byte in raw:
        lrc ^= byte
    return bytes([STX]) + raw + bytes([ETX, lrc])


def read_answer(sock):
    """One ACK/NACK byte and the reply frame's text (its LRC checked)."""
    verdict = _read_exactly(sock, 1)[0]
    if _read_exactly(sock, 1)[0] != STX:
        raise ValueError("a reply frame starts with STX")
    data = bytearray()
    while (byte := _read_exactly(sock, 1)[0]) != ETX:
        data.append(byte)
    lrc = _read_exactly(sock, 1)[0]
    if frame(bytes(data))[-1] != lrc:
        raise ValueError(f"bad LRC on reply {bytes(data)!r}")
    return ("ACK" if verdict == ACK else "NACK" if verdict == NACK else hex(verdict)), data.decode()


def _read_exactly(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the link")
        data += chunk
    return data


def ask(sock, data):
    sock.sendall(frame(data))
    return read_answer(sock)


def connect(address, timeout=10.0):
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


# --- The roles ----------------------------------------------------------------------------


class Heartbeat:
    """Calls `beat` every `period` seconds on a thread of its own until stopped."""

    def __init__(self, period, beat):
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(period, beat), daemon=True)
        self.thread.start()

    def _run(self, period, beat):
        while not self.stopped.wait(period):
            try:
                beat()
            except Exception as e:  # a closed link or bus: said once, and the beat stops
                print(f"heartbeat stopped: {e!r}", file=sys.stderr)
                return

    def stop(self):
        self.stopped.set()


class Driver:
    """A driver: asks for supplies on driver.requests, reads its own driver.updates."""

    def __init__(self, bootstrap, driver_id, secret):
        self.id = driver_id
        self.key = bus_key(secret)
        self.instance = str(uuid.uuid4())
        self.bus = Bus(bootstrap, read=["driver.updates"])
        self.heartbeat = None

    def send(self, message):
        return self.bus.send("driver.requests", self.id, message, key_to_prove=self.key)

    def hello(self, probe=False):
        message = envelope("hello", driver_id=self.id, instance=self.instance)
        if probe:
            message["probe"] = True
        return self.send(message)

    def start_heartbeats(self, period):
        self.heartbeat = Heartbeat(period, self.hello)

    def supply_request(self, cp_id, request_id=None):
        """The message (not yet sent) asking for a supply at `cp_id` (None: any CP)."""
        message = envelope(
            "supply_request", request_id=request_id or str(uuid.uuid4()), driver_id=self.id
        )
        if cp_id is not None:
            message["cp_id"] = cp_id
        return message

    def stop_supply(self):
        return self.send(envelope("stop_supply", driver_id=self.id))

    def next_update(self, timeout=0.1):
        """The next update addressed to this driver, or None."""
        record = self.bus.poll(timeout)
        if record is None or record.key != self.id or record.value is None:
            return None
        return record.value

    def close(self):
        if self.heartbeat:
            self.heartbeat.stop()
        self.bus.close()


class Engine:
    """A CP's engine: reads its CP's proven commands, reports on cp.events."""

    def __init__(self, bootstrap, cp_id, secret):
        self.cp_id = cp_id
        self.key = bus_key(secret)
        self.instance = str(uuid.uuid4())
        self.bus = Bus(bootstrap, read=["cp.commands"])
        self.heartbeat = None
        self.unproven = []

    def send(self, kind, **fields):
        message = envelope(kind, cp_id=self.cp_id, **fields)
        self.bus.send("cp.events", self.cp_id, message, key_to_prove=self.key)
        return message

    def hello(self, probe=False):
        fields = {"instance": self.instance}
        if probe:
            fields["probe"] = True
        return self.send("engine_hello", **fields)

    def start_heartbeats(self, period):
        self.heartbeat = Heartbeat(period, self.hello)

    def next_command(self, timeout=0.1):
        """The next command for this CP proven by the central, or None. Unproven ones are
        kept in `unproven` and not obeyed."""
        record = self.bus.poll(timeout)
        if record is None or record.key != self.cp_id or record.value is None:
            return None
        if not record.proven_by(self.key):
            self.unproven.append(record.value)
            return None
        return record.value

    def authorised(self, session_id):
        return self.send("authorised", session_id=session_id)

    def supply_started(self, session_id, driver_id):
        return self.send(
            "supply_started", session_id=session_id, driver_id=driver_id, started_at=now_rfc3339()
        )

    def supply_progress(self, session_id, driver_id, kwh, eur):
        return self.send(
            "supply_progress", session_id=session_id, driver_id=driver_id, kwh=kwh, eur=eur
        )

    def supply_ended(self, session_id, driver_id, started_at, kwh, eur, outcome="completed"):
        return self.send(
            "supply_ended",
            session_id=session_id,
            driver_id=driver_id,
            started_at=started_at,
            ended_at=now_rfc3339(),
            kwh=kwh,
            eur=eur,
            outcome=outcome,
        )

    def close(self):
        if self.heartbeat:
            self.heartbeat.stop()
        self.bus.close()


class Monitor:
    """A CP's monitor: authenticates on a TCP link to the central, then reports the
    engine's health once a second. `health` is `OK` or `KO#<reason>`."""

    def __init__(self, central, cp_id, secret):
        self.cp_id = cp_id
        self.secret = secret
        self.sock = connect(central)
        self.health = "OK"
        self.replies = []
        self.lock = threading.Lock()
        self.heartbeat = None

    def auth(self):
        return ask(self.sock, f"AUTH#{self.cp_id}#{self.secret}")

    def report(self):
        answer = ask(self.sock, f"STATUS#{self.cp_id}#{self.health}")
        with self.lock:
            self.replies.append((self.health, answer))
        return answer

    def start_reports(self, period=1.0):
        self.heartbeat = Heartbeat(period, self.report)

    def replies_so_far(self):
        with self.lock:
            return list(self.replies)

    def close(self):
        if self.heartbeat:
            self.heartbeat.stop()
            self.heartbeat.thread.join(5)
        self.sock.close()


# --- Checked against the document ---------------------------------------------------------


def self_test():
    """The worked examples of docs/PROTOCOL.md: the proof and the AUTH frame."""
    key = bus_key("evccp_example")
    expected_key = "eb079a4af5107248853ded2132e096319551c7b405f7efc40e1ce3b4f336bbae"
    assert key.hex() == expected_key, key.hex()
    proof = prove(key, "cp.events", "CP001", b'{"a":1}')
    assert proof == "720bb64b32f1ea363a2252a493cb206f9e345edc9cbff9595bcacf106612fbf0", proof
    auth = "02 41 55 54 48 23 43 50 30 30 31 23 65 76 63 63 70 5f 31 66 32 65 03 16"
    assert frame("AUTH#CP001#evccp_1f2e") == bytes.fromhex(auth)
    ts = now_rfc3339()
    assert len(ts) == 24 and ts.endswith("Z"), ts
    print(json.dumps({"self_test": "ok"}))


if __name__ == "__main__":
    if sys.argv[1:] == ["self-test"]:
        self_test()
    else:
        sys.exit("usage: evclient.py self-test (scenarios: see scenarios.py)")
