"""`python -m pipeline.loadtest --model M.onnx`: drive the real serve.http server over
127.0.0.1 with N concurrent clients for a fixed time, and report what it sustained.

Starts `python -m serve.http` on a free local port (once per --max-batch value given, so
`--max-batch 64,1` measures batching against no batching in one command), waits for /readyz,
then runs --clients keep-alive connections, each sending one 50-character text from the
MSRA test set per request for --seconds. Every 200 answer is checked against the Tagger's
result for that text (a wrong answer counts as an error). Reports requests/s, chars/s,
p50/p95/p99 latency, answers by status code, and the server's RSS at start and end;
writes loadtest.json and loadtest.md into --out. A benchmark, not a test: the clients share
the machine with the server, which the report says.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from data.files import DataError, check_input_file, check_output

TEXT_CHARS = 50
POOL = 2000


def texts_of(data: Path, chars: int = TEXT_CHARS, count: int = POOL) -> list[str]:
    """`count` texts of `chars` characters cut from the data file's sentences joined."""
    from data.corpus.formats import read_corpus

    joined = "".join(s.text for s in read_corpus(data).sentences)
    return [joined[i:i + chars] for i in range(0, min(len(joined), chars * count), chars)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def http_call(reader, writer, body: bytes) -> tuple[int, bytes, bool]:
    writer.write(b"POST /v1/tag HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                 b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            close = True
    return status, await reader.readexactly(length), close


async def client(port, texts, expected, deadline, offset, samples, codes):
    reader = writer = None
    index = offset
    while time.monotonic() < deadline:
        text = texts[index % len(texts)]
        index += 1
        body = json.dumps({"texts": [text]}, ensure_ascii=False).encode("utf-8")
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            status, answer, close = await http_call(reader, writer, body)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            codes["connection error"] += 1
            writer = None
            await asyncio.sleep(0.01)
            continue
        if status == 200 and json.loads(answer)["results"] != [expected[text]]:
            status = "wrong result"
        codes[str(status)] += 1
        if status == 200:
            samples.append(time.perf_counter() - started)
        elif status == 503:
            await asyncio.sleep(0.001)  # a real client would honour Retry-After; stay loaded
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def drive(port, texts, expected, clients: int, seconds: float):
    samples, codes = [], Counter()
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(client(port, texts, expected, deadline, i * 7, samples, codes)
                           for i in range(clients)))
    return samples, codes, time.perf_counter() - started


def start_server(model: Path, port: int, server_args: list[str]) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "serve.http", "--model", str(model),
                                "--host", "127.0.0.1", "--port", str(port), *server_args],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import http.client
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve.http exited: {process.stderr.read()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("serve.http did not become ready within 120 s")


def measure(model, texts, expected, clients, seconds, server_args) -> dict:
    port = free_port()
    process = start_server(model, port, server_args)
    try:
        rss_start = rss_mb(process.pid)
        samples, codes, elapsed = asyncio.run(drive(port, texts, expected, clients, seconds))
        rss_end = rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
    ok = len(samples)
    latencies = np.array(samples) * 1000 if samples else np.array([np.nan])
    return {"server_args": server_args, "clients": clients, "seconds": round(elapsed, 1),
            "requests_per_s": ok / elapsed, "chars_per_s": ok * TEXT_CHARS / elapsed,
            "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)),
            "p99_ms": float(np.percentile(latencies, 99)),
            "answers": dict(codes), "errors": sum(n for c, n in codes.items() if c != "200"),
            "rss_start_mb": rss_start, "rss_end_mb": rss_end, "server_exit_code": exit_code}


def write_report(out: Path, report: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "loadtest.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = ["| server | clients | s | requests/s | chars/s | p50 ms | p95 ms | p99 ms | "
            "answers | RSS start → end MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        answers = ", ".join(f"{code}: {n}" for code, n in sorted(run["answers"].items()))
        rows.append(f"| `{' '.join(run['server_args'])}` | {run['clients']} | {run['seconds']} | "
                    f"{run['requests_per_s']:,.0f} | {run['chars_per_s']:,.0f} | "
                    f"{run['p50_ms']:.1f} | {run['p95_ms']:.1f} | {run['p99_ms']:.1f} | "
                    f"{answers} | {run['rss_start_mb']:.0f} → {run['rss_end_mb']:.0f} |")
    if len(report["runs"]) == 2 and report["runs"][1]["requests_per_s"]:
        ratio = report["runs"][0]["requests_per_s"] / report["runs"][1]["requests_per_s"]
        rows.append(f"\nFirst row / second row: {ratio:.1f}x the requests per second.")
    rows.append(f"\nMachine: {report['machine']}, {report['cpus']} CPUs, clients and server on "
                "the same machine; one 50-character text per request.")
    text = "\n".join(rows) + "\n"
    (out / "loadtest.md").write_text(text)
    return text


def main(argv=None) -> int:
    import os

    from pipeline.bench.report import machine_name

    parser = argparse.ArgumentParser(prog="python -m pipeline.loadtest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="exported .onnx")
    parser.add_argument("--data", type=Path, default=Path("data/msra/test.txt"),
                        help="tagged or column file whose text is cut into 50-char texts")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-batch", default="64",
                        help="comma-separated: one server run per value (e.g. 64,1)")
    parser.add_argument("--max-queue", type=int, help="serve.http --max-queue")
    parser.add_argument("--max-wait-ms", type=float, help="serve.http --max-wait-ms")
    parser.add_argument("--out", type=Path, default=Path("bench/http"))
    args = parser.parse_args(argv)
    try:
        for needed in (args.model, args.data):
            check_input_file(needed)
        check_output(args.out, create_parent=True, folder=True)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from serve.records import TagOptions, tag_records
    from serve.tagger import Tagger

    texts = texts_of(args.data)
    expected = dict(zip(texts, tag_records(Tagger.load(args.model), texts, TagOptions())))
    report = {"model": str(args.model), "machine": machine_name(), "cpus": os.cpu_count(),
              "runs": []}
    for max_batch in args.max_batch.split(","):
        server_args = ["--max-batch", max_batch]
        if args.max_queue:
            server_args += ["--max-queue", str(args.max_queue)]
        if args.max_wait_ms is not None:
            server_args += ["--max-wait-ms", str(args.max_wait_ms)]
        print(f"serve.http {' '.join(server_args)}: {args.clients} clients, {args.seconds:g} s",
              file=sys.stderr, flush=True)
        report["runs"].append(measure(args.model, texts, expected, args.clients, args.seconds,
                                      server_args))
    print(write_report(args.out, report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
