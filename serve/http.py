"""`python -m serve.http --model M.onnx`: tag text over HTTP, concurrent requests batched.

POST /v1/tag  {"texts": ["...", ...], "format": "entities" | "bmeo", "min_score": P}
  ->  {"results": [...]}: one result per text, in order, each exactly what serve.tag writes
  for that text (entities: {"text", "entities": [{"type", "start", "end", "text", "score"}]};
  bmeo: the line of tags); entities scored below min_score (optional) are left out.
GET /healthz (alive), /readyz (model loaded and warmed up), /metrics (Prometheus text).

Requests are gathered by a micro-batcher: a model batch is flushed when it holds --max-batch
texts or its first request has waited --max-wait-ms, whichever comes first, and runs on a
worker thread (off the event loop) through the same batch-tagging function as serve.tag.
Errors are JSON bodies that never echo the input: 400 malformed JSON or wrong types, 413 a
body over --max-body-bytes (counted while reading, whatever Content-Length says), 503 queue
full (with Retry-After) or model not ready yet, 404 unknown path. SIGTERM: stop accepting,
answer every request already accepted, exit 0.
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serve.arguments import (add_model_argument, add_score_arguments, add_word_list_arguments,
                             positive)
from serve.records import REQUEST_FORMATS, TagOptions

RETRY_AFTER_SECONDS = 1


class QueueFull(Exception):
    pass


class MicroBatcher:
    """Gathers requests' texts into model batches; each caller awaits its own results.

    `tag_batch(texts, options) -> records` runs on one worker thread, so the event loop
    keeps accepting and queueing while the model works; the next batch is whatever queued
    meanwhile, up to max_batch texts (a request is never split: one larger than max_batch
    makes a batch of its own).
    """

    def __init__(self, tag_batch, max_batch: int, max_wait: float, max_queue: int, metrics):
        self.tag_batch, self.max_batch, self.max_wait = tag_batch, max_batch, max_wait
        self.max_queue, self.metrics = max_queue, metrics
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tagger")

    def waiting(self) -> int:
        return self.queue.qsize()

    async def submit(self, texts: list[str], options: TagOptions) -> list:
        if self.queue.qsize() >= self.max_queue:
            raise QueueFull
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((texts, options, future))
        self.metrics.queue_depth.set(self.queue.qsize())
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            count = len(batch[0][0])
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                if self.queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    item = self.queue.get_nowait()
                batch.append(item)
                count += len(item[0])
            self.metrics.queue_depth.set(self.queue.qsize())
            await self._run_batch(loop, batch, count)

    async def _run_batch(self, loop, batch, count) -> None:
        # One model call per kind of request present (almost always one).
        for options in dict.fromkeys(item[1] for item in batch):
            items = [item for item in batch if item[1] == options]
            texts = [text for item in items for text in item[0]]
            self.metrics.batch_size.observe(len(texts))
            try:
                records = await loop.run_in_executor(self.executor, self.tag_batch, texts,
                                                     options)
            except Exception as error:  # the callers answer 500; the service stays up
                for _, _, future in items:
                    if not future.done():
                        future.set_exception(error)
                continue
            offset = 0
            for texts_of_item, _, future in items:
                if not future.done():
                    future.set_result(records[offset:offset + len(texts_of_item)])
                offset += len(texts_of_item)


class Metrics:
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("ner_http_requests", "HTTP requests by path and status code",
                                ["path", "code"], registry=self.registry)
        self.duration = Histogram("ner_http_request_duration_seconds",
                                  "Time from request start to response, POST /v1/tag",
                                  buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                           2.5, 5, 10), registry=self.registry)
        self.batch_size = Histogram("ner_model_batch_texts", "Texts per model batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
                                    registry=self.registry)
        self.queue_depth = Gauge("ner_queue_depth", "Requests waiting for a model batch",
                                 registry=self.registry)
        self.words_loaded = Gauge("ner_words_loaded", "Words of the user's lists loaded at "
                                  "start-up (words: joined the lexicon; force_words: forced)",
                                  ["list"], registry=self.registry)
        self.in_progress = Gauge("ner_tag_requests_in_progress",
                                 "POST /v1/tag requests accepted and not yet answered",
                                 registry=self.registry)


class BodyTooLarge(Exception):
    pass


async def read_body(request, limit: int) -> bytes:
    """The body, counted as it arrives: a lying or missing Content-Length cannot get past."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


REQUEST_FIELDS = ("texts", "format", "min_score")


def parse_request(body: bytes, defaults: TagOptions) -> tuple[list[str], TagOptions]:
    """(texts, how to tag them) or ValueError with a message that quotes nothing sent."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("the body is not valid JSON (UTF-8)") from None
    if not isinstance(value, dict):
        raise ValueError("the body must be a JSON object with a `texts` list")
    texts = value.get("texts")
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise ValueError("`texts` must be a list of strings")
    requested = value.get("format", "entities")
    if requested not in REQUEST_FORMATS:
        raise ValueError("`format` must be \"entities\" or \"bmeo\"")
    min_score = value.get("min_score", defaults.min_score)
    if min_score is not None and (isinstance(min_score, bool) or
                                  not isinstance(min_score, (int, float)) or
                                  not 0 <= min_score <= 1):
        raise ValueError("`min_score` must be a number from 0 to 1")
    unknown = sorted(set(value) - set(REQUEST_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s): {len(unknown)} (expected `texts`, `format` and "
                         "`min_score`)")
    options = TagOptions(REQUEST_FORMATS[requested], defaults.batch_size, defaults.scores,
                         None if min_score is None else float(min_score))
    return texts, options


class Service:
    """The HTTP service's state: the tagger (loaded in the background), the micro-batcher,
    the metrics, and the request defaults; the routes of create_app call into it."""

    def __init__(self, model: Path, max_batch: int, max_wait_ms: float, max_queue: int,
                 max_body_bytes: int, threads: int | None, defaults: TagOptions,
                 words: Path | None, force_words: Path | None):
        from serve.records import tag_records

        self.model, self.threads, self.words, self.force_words = model, threads, words, \
            force_words
        self.max_body_bytes, self.defaults = max_body_bytes, defaults
        self.metrics = Metrics()
        self.state = {"tagger": None, "ready": False, "error": None}
        self.batcher = MicroBatcher(lambda texts, options: tag_records(self.state["tagger"],
                                                                      texts, options),
                                    max_batch, max_wait_ms / 1000, max_queue, self.metrics)

    def load_and_warm(self) -> None:
        from serve.records import tag_records
        from serve.tagger import Tagger

        try:
            tagger = Tagger.load(self.model, "cpu", self.threads, self.words, self.force_words)
            tag_records(tagger, ["预热文本。"] * 4, self.defaults)  # warm-up
            self.metrics.words_loaded.labels(list="words").set(tagger.words_added)
            self.metrics.words_loaded.labels(list="force_words").set(
                tagger.forced.count if tagger.forced else 0)
            self.state["tagger"], self.state["ready"] = tagger, True
        except Exception as error:  # reported by /readyz, and the process exits 2
            self.state["error"] = f"{type(error).__name__}: {error}"

    def answer(self, path: str, code: int, body: dict, headers: dict | None = None):
        from fastapi.responses import JSONResponse

        self.metrics.requests.labels(path=path, code=str(code)).inc()
        return JSONResponse(body, status_code=code, headers=headers)

    async def tag(self, request):
        started = time.perf_counter()
        self.metrics.in_progress.inc()
        try:
            return await self.tag_answer(request)
        finally:
            self.metrics.in_progress.dec()
            self.metrics.duration.observe(time.perf_counter() - started)

    async def tag_answer(self, request):
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if not self.state["ready"]:
            return self.answer("/v1/tag", 503, {"error": "the model is loading; retry shortly"},
                               retry)
        try:
            texts, options = parse_request(await read_body(request, self.max_body_bytes),
                                           self.defaults)
        except BodyTooLarge:
            return self.answer("/v1/tag", 413, {"error": f"the body is larger than "
                                                         f"{self.max_body_bytes} bytes"})
        except ValueError as error:
            return self.answer("/v1/tag", 400, {"error": str(error)})
        if not texts:
            return self.answer("/v1/tag", 200, {"results": []})
        try:
            results = await self.batcher.submit(texts, options)
        except QueueFull:
            return self.answer("/v1/tag", 503, {"error": "the queue is full; retry shortly"},
                               retry)
        except Exception:
            return self.answer("/v1/tag", 500, {"error": "tagging failed"})
        return self.answer("/v1/tag", 200, {"results": results})

    def readiness(self):
        if self.state["ready"]:
            return self.answer("/readyz", 200, {"status": "ready"})
        return self.answer("/readyz", 503,
                           {"status": "loading" if not self.state["error"] else "failed"})

    def prometheus(self):
        from fastapi.responses import Response
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self.metrics.queue_depth.set(self.batcher.waiting())
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(model: Path, max_batch: int = 64, max_wait_ms: float = 5.0,
               max_queue: int = 1024, max_body_bytes: int = 1 << 20, threads: int | None = None,
               batch_size: int | None = None, words: Path | None = None,
               force_words: Path | None = None, scores: bool = True,
               min_score: float | None = None):
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from serve.tagger import DEFAULT_BATCH_SIZE

    defaults = TagOptions("jsonl", batch_size or DEFAULT_BATCH_SIZE, scores, min_score)
    service = Service(model, max_batch, max_wait_ms, max_queue, max_body_bytes, threads,
                      defaults, words, force_words)

    @asynccontextmanager
    async def lifespan(app):
        loader = threading.Thread(target=service.load_and_warm, daemon=True)
        loader.start()  # the port answers /healthz and /readyz (503) while the model loads
        worker = asyncio.create_task(service.batcher.run())
        yield
        worker.cancel()
        service.batcher.executor.shutdown(wait=True)

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ner = service.state

    @app.post("/v1/tag")
    async def tag(request: Request):
        return await service.tag(request)

    @app.get("/healthz")
    async def healthz():
        return service.answer("/healthz", 200, {"status": "alive"})

    @app.get("/readyz")
    async def readyz():
        return service.readiness()

    @app.get("/metrics")
    async def prometheus_metrics():
        return service.prometheus()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, error):
        # 404 and 405 as JSON; the path is a label only for known routes (no text in labels)
        message = {404: "not found", 405: "method not allowed"}.get(error.status_code,
                                                                     "request refused")
        return service.answer("other", error.status_code, {"error": message})

    return app


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m serve.http", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_argument(parser)
    add_word_list_arguments(parser)
    add_score_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--max-batch", type=positive, default=64,
                        help="texts per model batch before it is flushed (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="longest a request waits for others to share its batch (default 5)")
    parser.add_argument("--max-queue", type=positive, default=1024,
                        help="requests waiting for a batch before 503 (default 1024)")
    parser.add_argument("--max-body-bytes", type=positive, default=1 << 20,
                        help="largest request body (default 1 MiB)")
    parser.add_argument("--threads", type=positive, help="ONNX Runtime intra-op threads "
                        "(default: one per CPU)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import uvicorn

    from data.files import DataError
    from serve.tagger import ModelError, checked_model_path

    args = parse_args(argv)
    try:  # before the port opens; loaded again in the background once it is open
        model = checked_model_path(args.model, args.words, args.force_words)
    except (DataError, ModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(model, args.max_batch, args.max_wait_ms, args.max_queue,
                     args.max_body_bytes, args.threads, words=args.words,
                     force_words=args.force_words, scores=args.scores,
                     min_score=args.min_score)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT (stops accepting, answers what it
    # accepted), then restores the handlers it found and raises the signal again: with these
    # handlers that ends in a normal return, so SIGTERM exits 0 and Ctrl-C 130.
    received = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: received.append(number))
    print(f"serving {model} on http://{args.host}:{args.port} (POST /v1/tag)", file=sys.stderr,
          flush=True)
    server.run()
    if app.state.ner["error"]:
        print(f"error: {app.state.ner['error']}", file=sys.stderr)
        return 2
    return 130 if signal.SIGINT in received else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
