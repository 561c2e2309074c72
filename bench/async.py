"""Asynchronous path benchmark. One run measures, against the real tansu broker and moto's S3 server:

1. the broker's own ceiling: N messages produced and consumed concurrently with the same client (kafka-python)
   the benchmark uses to post events and read results, and the same sizes as the request events; and, for
   reference, the same ceiling with librdkafka (the client inside the replica);
2. end-to-end events/s and p50/p99 latency (produced → result consumed) through ``wakeserve serve F --consume``
   for the trivial echo model and for the embedder; events are posted with kafka-python; echo's results are
   read with kafka-python (the ceiling's client), the embedder's with librdkafka, the lighter reader, since
   its denominator involves no client and the reader shares the replica's two cores;
3. the embedder's raw in-process batch-32 throughput on the same sentences.

This machine's speed drifts by tens of percent from minute to minute, so each goal is measured in rounds with
its denominator interleaved (ceiling, echo, ceiling, echo, ..., ceiling; raw, embedder, raw, ..., raw; the same
broker up, no replica running while a denominator is measured). A round's ratio is its end-to-end rate over the
mean of the denominators either side of it; a goal's figure is the median ratio, and the reported end-to-end
rate and latencies are those of the median round.

    python -m bench.async [--echo-events N] [--echo-rounds R] [--embedder-events N] [--embedder-rounds R]
                          [--out bench/results]

Writes ``async.json`` and ``async.png``. Every process it starts is stopped by pid.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer

from bench.sync import SENTENCES, raw_throughput
from core.processes import ChildProcess, free_port, http_ok, replica_argv, start_kafka, start_s3
from core.s3 import make_s3_client
from events import cloudevent, contract
from events.cloudevent import CloudEvent
from events.kafka import ensure_topics
from events.settings import EventSettings


def echo_payload(i: int) -> bytes:
    return orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [i, 1.0, 2.0, 3.0]}]})


def text_payload(i: int) -> bytes:
    """The raw measurement's sentences, in the same turn, so both sides embed the same texts."""
    sentence = SENTENCES[i % len(SENTENCES)]
    return orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [sentence]}]})


def request(function: str, body: bytes) -> CloudEvent:
    return CloudEvent(
        {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "source": "/bench",
            "type": contract.REQUEST_TYPE,
            "model": function,
            "datacontenttype": "application/json",
        },
        body,
    )


def percentile(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q / 100 * len(data)))] if data else float("nan")


def broker_ceiling(settings: EventSettings, n: int, body: bytes) -> dict[str, float]:
    """Produce n records of the request's size while a consumer group reads them; records/s end to end."""
    topic = f"bench.ceiling.{uuid.uuid4().hex[:6]}"
    ensure_topics(settings, [topic])
    headers, _, _ = cloudevent.to_kafka(request("echo", body))
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    while not consumer.assignment():
        consumer.poll(100)
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=2
    )
    started = time.perf_counter()

    def produce() -> None:
        for _ in range(n):
            producer.send(topic, value=body, headers=headers)
        producer.flush()

    thread = threading.Thread(target=produce)
    thread.start()
    seen = 0
    deadline = time.monotonic() + 300
    while seen < n and time.monotonic() < deadline:
        for records in consumer.poll(200).values():
            seen += len(records)
        consumer.commit()
    elapsed = time.perf_counter() - started
    thread.join()
    producer.close()
    consumer.close()
    return {"messages": seen, "seconds": elapsed, "per_s": seen / elapsed}


def rdkafka_ceiling(settings: EventSettings, n: int, body: bytes) -> dict[str, float]:
    """The same measurement with librdkafka (the replica's client), for reference next to the goal's ceiling."""
    from confluent_kafka import Consumer, Producer

    topic = f"bench.rdceiling.{uuid.uuid4().hex[:6]}"
    ensure_topics(settings, [topic])
    headers, _, _ = cloudevent.to_kafka(request("echo", body))
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "fetch.wait.max.ms": settings.kafka_fetch_max_wait_ms,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 2}
    )
    started = time.perf_counter()

    def produce() -> None:
        for _ in range(n):
            producer.produce(topic, value=body, headers=headers)
            producer.poll(0)
        producer.flush(60)

    thread = threading.Thread(target=produce)
    thread.start()
    seen = 0
    deadline = time.monotonic() + 300
    while seen < n and time.monotonic() < deadline:
        messages = consumer.consume(1000, 0.05)
        seen += sum(1 for m in messages if m.error() is None)
        if messages:
            consumer.commit(asynchronous=True)
    elapsed = time.perf_counter() - started
    thread.join()
    consumer.close()
    return {"messages": seen, "seconds": elapsed, "per_s": seen / elapsed}


def results_reader(settings: EventSettings, **overrides) -> KafkaConsumer:
    """A kafka-python reader of every results partition from its end (no group).

    Its fetch wait is the replica's (tansu holds a waiting fetch to its end even when records arrive, so
    kafka-python's default 500 ms would be timed as the system's latency), as is the ceiling's reader.
    """
    from kafka import TopicPartition

    options = {"fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms, **overrides}
    results = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="latest", enable_auto_commit=False, **options
    )
    parts = [TopicPartition(settings.results_topic, p) for p in results.partitions_for_topic(settings.results_topic)]
    results.assign(parts)
    for tp in parts:
        results.position(tp)
    return results


def request_id(headers) -> str:
    """The ``ce_requestid`` header of a result record ("" when absent)."""
    found = next((v for k, v in headers or [] if k == "ce_requestid"), b"")
    return found.decode() if isinstance(found, bytes) else str(found or "")


class PythonResults:
    """Request ids of arriving results, read with kafka-python (the client the echo goal's ceiling uses)."""

    def __init__(self, settings: EventSettings, **overrides) -> None:
        self.consumer = results_reader(settings, **overrides)

    def poll(self, timeout_s: float) -> list[str]:
        return [
            request_id(r.headers) for records in self.consumer.poll(int(timeout_s * 1000)).values() for r in records
        ]

    def close(self) -> None:
        self.consumer.close()


class RdResults:
    """The same, read with librdkafka: its fetching and decoding run in native threads, so the benchmark's own
    reader takes less of the two cores the replica under test uses (the embedder goal's denominator involves
    no client at all)."""

    def __init__(self, settings: EventSettings) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"bench-results-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": settings.kafka_fetch_max_wait_ms,
            }
        )
        topic = settings.results_topic
        parts = []
        for p in self.consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            # From each partition's end as the broker reports it (tansu may report less: older results are
            # read again and ignored by id).
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            parts.append(TopicPartition(topic, p, high))
        self.consumer.assign(parts)

    def poll(self, timeout_s: float) -> list[str]:
        # The first record as soon as it is there, then what is already queued (``consume`` with a timeout
        # would hold the ones it has until it has a thousand).
        first = self.consumer.poll(timeout_s)
        if first is None:
            return []
        return [request_id(m.headers()) for m in [first, *self.consumer.consume(1000, 0)] if m.error() is None]

    def close(self) -> None:
        self.consumer.close()


def end_to_end(
    settings: EventSettings,
    function: str,
    n: int,
    make_body,
    log_dir: Path,
    env: dict[str, str],
    singles: int = 0,
    reader: str = "kafka-python",
) -> dict:
    """A burst of n events through a consuming replica; then ``singles`` events one at a time (idle round trip).

    ``reader``: the client results are read with, ``kafka-python`` or ``librdkafka``.
    """
    http = free_port()
    replica = ChildProcess(
        f"{function}-consumer",
        replica_argv(function, http, 0, "--consume", "--log-level", "WARNING", admin_port=0),
        env=env,
        log_path=log_dir / f"{function}-consumer.log",
    )
    try:
        replica.wait_until(lambda: http_ok(f"http://127.0.0.1:{http}/v2/health/ready"), 180, 0.2)
        # Warm the group: one event, answered, before the clock starts.
        results: PythonResults | RdResults = (
            PythonResults(settings) if reader == "kafka-python" else RdResults(settings)
        )
        producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=2
        )
        topic = settings.topics.requests(function)

        def encode(events: list[CloudEvent]) -> list[tuple]:
            """Encoded before the clock starts, as the ceiling's records are: the benchmark times the system."""
            return [(event.id, *cloudevent.to_kafka(event)) for event in events]

        def send(encoded: list[tuple], sent: dict[str, float]) -> None:
            for event_id, headers, key, value in encoded:
                sent[event_id] = time.perf_counter()
                producer.send(topic, key=key, value=value, headers=headers)
            producer.flush()

        def collect(ids: set[str], received: dict[str, float], timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while len(received) < len(ids) and time.monotonic() < deadline:
                arrived = results.poll(0.1)
                now = time.perf_counter()
                for rid in arrived:
                    if rid in ids and rid not in received:
                        received[rid] = now

        warm = [request(function, make_body(-1))]
        sent_w: dict[str, float] = {}
        send(encode(warm), sent_w)
        collect({warm[0].id}, {}, 120)
        events = [request(function, make_body(i)) for i in range(n)]
        sent: dict[str, float] = {}
        received: dict[str, float] = {}
        sender = threading.Thread(target=send, args=(encode(events), sent))
        started = time.perf_counter()
        sender.start()
        collect({e.id for e in events}, received, 600)
        sender.join()
        elapsed = max(received.values()) - started if received else float("nan")
        latencies = [received[i] - sent[i] for i in received]
        round_trips = []
        if singles:
            # One at a time: a reader that asks the broker often, so the round trip is not its fetch wait.
            results.close()
            results = PythonResults(settings, fetch_max_wait_ms=5)
        for i in range(singles):
            time.sleep(0.1)
            one = [request(function, make_body(n + i))]
            sent_one: dict[str, float] = {}
            got: dict[str, float] = {}
            send(encode(one), sent_one)
            collect({one[0].id}, got, 30)
            if got:
                round_trips.append(got[one[0].id] - sent_one[one[0].id])
        producer.close()
        results.close()
        return {
            "single_events": len(round_trips),
            "single_p50_ms": percentile(round_trips, 50) * 1000,
            "function": function,
            "events": n,
            "results": len(received),
            "seconds": elapsed,
            "per_s": len(received) / elapsed,
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
        }
    finally:
        replica.stop()


def mixed_load(settings: EventSettings, n: int, log_dir: Path, env: dict[str, str], duration: float = 8.0) -> dict:
    """Sync p50/p99 at one client on an embedder replica, idle and while it works through an event backlog."""
    import asyncio

    from bench.loadgen import encode_post, run_load

    http = free_port()
    replica = ChildProcess(
        "embedder-mixed",
        replica_argv("embedder", http, 0, "--consume", "--log-level", "WARNING", admin_port=0),
        env=env,
        log_path=log_dir / "embedder-mixed.log",
    )
    bodies = [encode_post("127.0.0.1", http, "/v2/models/embedder/infer", text_payload(i)) for i in range(16)]
    try:
        replica.wait_until(lambda: http_ok(f"http://127.0.0.1:{http}/v2/health/ready"), 180, 0.2)
        idle = asyncio.run(run_load("127.0.0.1", http, bodies, concurrency=1, duration=duration))
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=2)
        for i in range(n):
            headers, key, value = cloudevent.to_kafka(request("embedder", text_payload(i)))
            producer.send(settings.topics.requests("embedder"), key=key, value=value, headers=headers)
        producer.flush()
        producer.close()
        time.sleep(2.0)  # the consumer is busy with the backlog now
        before = served_ok(http)
        busy = asyncio.run(run_load("127.0.0.1", http, bodies, concurrency=1, duration=duration, warmup=0))
        events_done = served_ok(http) - before - busy.ok
    finally:
        replica.stop()
    return {
        "sync_idle": idle.summary(),
        "sync_with_events": busy.summary(),
        "backlog_events": n,
        "events_served_during_sync_window": events_done,
        "events_per_s_during_sync_window": events_done / busy.wall,
    }


def served_ok(http: int) -> float:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{http}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('wakeserve_requests_total{model="embedder",outcome="ok",')
    )


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = ["broker ceiling\nkafka-python\n(the goal's)", "broker ceiling\nlibrdkafka\n(reference)", "echo end to end"]
    values = [report["broker_ceiling"]["per_s"], report["broker_ceiling_librdkafka"]["per_s"], report["echo"]["per_s"]]
    left.bar(names, values, color=["grey", "lightgrey", "tab:blue"])
    left.set(ylabel="events / s", title="trivial model vs the broker's own ceiling")
    embedder = report["embedder"]
    raws = embedder["raw_batch32_per_s"]
    xs = list(range(len(embedder["rounds"])))
    either_side = [(raws[i] + raws[i + 1]) / 2 for i in xs]
    right.bar(
        [x - 0.2 for x in xs],
        either_side,
        width=0.4,
        color="grey",
        label="raw batch 32, in-process (mean of either side)",
    )
    right.bar(
        [x + 0.2 for x in xs],
        [r["per_s"] for r in embedder["rounds"]],
        width=0.4,
        color="tab:orange",
        label="end to end",
    )
    for x, ratio, r in zip(xs, embedder["ratios"], embedder["rounds"]):
        right.text(x + 0.2, r["per_s"], f"{ratio:.0%}", ha="center", va="bottom")
    right.set_xticks(xs, [f"round {x + 1}" for x in xs])
    right.set_ylim(0, 1.3 * max(either_side + [r["per_s"] for r in embedder["rounds"]]))
    right.set(
        ylabel="events / s (1 sentence each)",
        title=f"embedder vs its raw batched throughput (median {report['goals']['embedder_vs_raw_batch32']:.0%})",
    )
    right.legend(loc="upper right", fontsize=8)
    left.text(
        2,
        0,
        f"p50 {report['echo']['p50_ms']:.0f} ms\np99 {report['echo']['p99_ms']:.0f} ms",
        ha="center",
        va="bottom",
        color="white",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def median_round(rounds: list[dict], ratios: list[float]) -> dict:
    """The round whose ratio is the median (the lower middle one for an even count)."""
    order = sorted(range(len(rounds)), key=ratios.__getitem__)
    return rounds[order[(len(order) - 1) // 2]]


def ceiling_rate(settings: EventSettings, n: int, body: bytes) -> float:
    """The broker's kafka-python ceiling (the echo goal's denominator), messages/s."""
    rate = broker_ceiling(settings, n, body)["per_s"]
    print(f"broker ceiling (kafka-python): {rate:.0f} msg/s", flush=True)
    return rate


def raw_rate(duration: float = 6.0) -> float:
    """The embedder's in-process batch-32 sentences/s (the end-to-end run's denominator)."""
    rate = raw_throughput(duration, batches=(32,))["batch_32_per_s"]
    print(f"embedder raw batch 32: {rate:.0f}/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--echo-events", type=int, default=5000, help="events per echo round")
    parser.add_argument("--echo-rounds", type=int, default=3)
    parser.add_argument("--embedder-events", type=int, default=1500, help="events per embedder round")
    parser.add_argument("--embedder-rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    log_dir = args.out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(aws)
    s3_port, kafka_port = free_port(), free_port()
    s3 = start_s3(s3_port, log_path=log_dir / "moto.log")
    kafka = start_kafka(kafka_port, log_path=log_dir / "tansu.log")
    try:
        env = {
            **aws,
            "WAKESERVE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
            "WAKESERVE_S3_ENDPOINT": f"http://127.0.0.1:{s3_port}",
            "WAKESERVE_KAFKA_SESSION_TIMEOUT_MS": "6000",
        }
        os.environ.update(env)
        settings = EventSettings()
        client = make_s3_client(settings.s3_endpoint)
        for bucket in (settings.payload_buckets, settings.results_bucket):
            client.create_bucket(Bucket=bucket)
        topics = settings.topics
        ensure_topics(
            settings, [topics.requests("echo"), topics.requests("embedder"), topics.results, topics.deadletter]
        )
        body = request("echo", echo_payload(0)).data or b""
        print("broker ceiling with librdkafka (reference)", flush=True)
        rd_ceiling = rdkafka_ceiling(settings, args.echo_events, body)
        print(f"  {rd_ceiling['per_s']:.0f} msg/s", flush=True)
        ceilings, echo_rounds = [ceiling_rate(settings, args.echo_events, body)], []
        for i in range(args.echo_rounds):
            print(f"echo end to end, round {i + 1} of {args.echo_rounds}", flush=True)
            singles = 20 if i == 0 else 0
            echo_rounds.append(end_to_end(settings, "echo", args.echo_events, echo_payload, log_dir, env, singles))
            r = echo_rounds[-1]
            print(f"  {r['per_s']:.0f} events/s p50 {r['p50_ms']:.0f} ms p99 {r['p99_ms']:.0f} ms", flush=True)
            if singles:
                print(f"  one event at a time: p50 round trip {r['single_p50_ms']:.0f} ms", flush=True)
            ceilings.append(ceiling_rate(settings, args.echo_events, body))
        echo_ratios = [r["per_s"] / ((ceilings[i] + ceilings[i + 1]) / 2) for i, r in enumerate(echo_rounds)]
        echo = {
            **median_round(echo_rounds, echo_ratios),
            "single_events": echo_rounds[0]["single_events"],
            "single_p50_ms": echo_rounds[0]["single_p50_ms"],
            "rounds": echo_rounds,
            "ceiling_per_s": ceilings,
            "ratios": echo_ratios,
            "results_reader": "kafka-python",
        }
        raws, rounds = [raw_rate()], []
        for i in range(args.embedder_rounds):
            print(f"embedder end to end, round {i + 1} of {args.embedder_rounds}", flush=True)
            rounds.append(
                end_to_end(settings, "embedder", args.embedder_events, text_payload, log_dir, env, reader="librdkafka")
            )
            print(
                f"  {rounds[-1]['per_s']:.0f} events/s p50 {rounds[-1]['p50_ms']:.0f} ms "
                f"p99 {rounds[-1]['p99_ms']:.0f} ms",
                flush=True,
            )
            raws.append(raw_rate())
        ratios = [r["per_s"] / ((raws[i] + raws[i + 1]) / 2) for i, r in enumerate(rounds)]
        embedder = {
            **median_round(rounds, ratios),
            "rounds": rounds,
            "raw_batch32_per_s": raws,
            "ratios": ratios,
            "results_reader": "librdkafka",
        }
        print("mixed load (sync at 1 client while events are consumed)", flush=True)
        mixed = mixed_load(settings, args.embedder_events, log_dir, env)
        print(
            f"  sync p99 idle {mixed['sync_idle']['p99_ms']:.0f} ms, with events "
            f"{mixed['sync_with_events']['p99_ms']:.0f} ms",
            flush=True,
        )
    finally:
        kafka.stop()
        s3.stop()
    report = {
        "broker_ceiling": {"messages": args.echo_events, "per_s": statistics.median(ceilings)},
        "broker_ceiling_librdkafka": rd_ceiling,
        "echo": echo,
        "embedder": embedder,
        "embedder_raw_batch32_per_s": statistics.median(raws),
        "mixed": mixed,
        "goals": {
            "echo_vs_broker_ceiling": statistics.median(echo_ratios),
            "embedder_vs_raw_batch32": statistics.median(ratios),
        },
        "targets": {"echo_vs_broker_ceiling": 0.5, "embedder_vs_raw_batch32": 0.85},
        "reference": {"echo_vs_librdkafka_ceiling": echo["per_s"] / rd_ceiling["per_s"]},
    }
    (args.out / "async.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "async.png")
    print(json.dumps(report["goals"], indent=2))


if __name__ == "__main__":
    main()
