"""serve.http: the real server process on 127.0.0.1, driven by a real HTTP client.

Every loop here is bounded in count and time, and every server is stopped by the test."""
import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import pytest

from data.corpus.formats import read_corpus
from tests.conftest import FIXTURES, ROOT, default_sigint

pytestmark = pytest.mark.slow
pytest.importorskip("fastapi")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=60):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def post_texts(port, texts, output_format="entities", timeout=60):
    body = json.dumps({"texts": texts, "format": output_format}, ensure_ascii=False)
    status, headers, raw = request(port, "POST", "/v1/tag", body.encode("utf-8"),
                                   {"Content-Type": "application/json"}, timeout)
    return status, headers, json.loads(raw)


@contextmanager
def server(model, *extra, wait_ready=True):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "serve.http", "--model", str(model),
                                "--host", "127.0.0.1", "--port", str(port), *map(str, extra)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 60
        statuses = []
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read()
            try:
                statuses.append(request(port, "GET", "/readyz", timeout=5)[0])
            except OSError:
                time.sleep(0.005)
                continue
            if statuses[-1] == 200 or not wait_ready:
                break
            time.sleep(0.005)
        process.readyz_statuses = statuses
        yield port, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def model(exported):
    return exported[0]


@pytest.fixture(scope="module")
def running(model):
    with server(model, "--max-body-bytes", 200_000, "--max-wait-ms", 20) as (port, process):
        yield port


TEXTS = [s.text for s in read_corpus(FIXTURES / "dev.txt").sentences[:20]]


def test_results_equal_the_tagger_for_every_text(running, model):
    from serve.records import TagOptions, tag_records
    from serve.tagger import Tagger

    tagger = Tagger.load(model)
    texts = TEXTS + ["", "，".join(TEXTS)]  # an empty text and one longer than max_len
    status, _, body = post_texts(running, texts)
    assert status == 200
    assert body["results"] == tag_records(tagger, texts, TagOptions())
    assert [r["entities"] for r in body["results"]] == \
        [[e.to_dict() for e in entities] for entities in tagger.tag(texts)]
    status, _, body = post_texts(running, texts, "bmeo")
    assert status == 200
    assert body["results"] == [" ".join(tags) for tags in tagger.tag_bmeo(texts)]


def test_concurrent_requests_are_batched_and_each_gets_its_own_results(running, model):
    from serve.tagger import Tagger

    tagger = Tagger.load(model)
    expected = [[e.to_dict() for e in entities] for entities in tagger.tag(TEXTS)]
    answers = [None] * len(TEXTS)

    def one(index):
        answers[index] = post_texts(running, [TEXTS[index]])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(TEXTS))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for index, (status, _, body) in enumerate(answers):
        assert status == 200 and body["results"][0]["entities"] == expected[index]
    metrics = request(running, "GET", "/metrics")[2].decode()
    batches = float(metrics.split("ner_model_batch_texts_count ")[1].split()[0])
    texts = float(metrics.split("ner_model_batch_texts_sum ")[1].split()[0])
    assert texts > batches  # some model batch held more than one request's text


SECRET = "机密的句子"


@pytest.mark.parametrize("body", [
    "{not json " + SECRET, json.dumps({"texts": SECRET}, ensure_ascii=False),
    json.dumps({"texts": [SECRET, 3]}, ensure_ascii=False),
    json.dumps({"texts": [SECRET], "format": "xml"}, ensure_ascii=False),
    json.dumps([SECRET], ensure_ascii=False), b"\xff\xfe" + SECRET.encode(),
], ids=["malformed", "not-a-list", "not-strings", "format", "not-object", "not-utf8"])
def test_bad_requests_are_400_json_and_never_echo_the_input(running, body):
    raw = body if isinstance(body, bytes) else body.encode("utf-8")
    status, headers, answer = request(running, "POST", "/v1/tag", raw)
    assert status == 400 and headers["content-type"] == "application/json"
    assert SECRET not in answer.decode("utf-8") and "error" in json.loads(answer)


def test_body_over_the_limit_is_413_even_without_content_length(running):
    big = json.dumps({"texts": ["字" * 100_000]}, ensure_ascii=False).encode("utf-8")
    status, _, answer = request(running, "POST", "/v1/tag", big)
    assert status == 413 and b"200000 bytes" in answer
    # chunked: no Content-Length to trust, the size is counted while reading
    connection = http.client.HTTPConnection("127.0.0.1", running, timeout=30)
    connection.putrequest("POST", "/v1/tag")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    try:
        for start in range(0, len(big), 65536):
            chunk = big[start:start + 65536]
            connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer and close before the whole body is sent
    response = connection.getresponse()
    assert response.status == 413
    connection.close()


def test_unknown_path_is_404_json(running):
    status, headers, answer = request(running, "GET", "/v2/nothing")
    assert status == 404 and json.loads(answer) == {"error": "not found"}
    assert request(running, "GET", "/healthz")[0] == 200


def test_metrics_are_prometheus_text_without_request_text(running):
    post_texts(running, [SECRET])
    status, headers, answer = request(running, "GET", "/metrics")
    text = answer.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for name in ("ner_http_requests_total", "ner_http_request_duration_seconds_bucket",
                 "ner_model_batch_texts_bucket", "ner_queue_depth"):
        assert name in text
    assert 'code="200",path="/v1/tag"' in text and SECRET not in text


def test_word_lists_and_min_score_give_the_tagger_records(model, tmp_path):
    from serve.records import TagOptions, tag_records
    from serve.tagger import Tagger

    words, force = tmp_path / "words.txt", tmp_path / "force.txt"
    words.write_text("翟鑫鑫 PER\n", encoding="utf-8")
    force.write_text("北京大学 ORG\n上海 LOC\n", encoding="utf-8")
    tagger = Tagger.load(model, words=words, force_words=force)
    texts = TEXTS[:5] + ["翟鑫鑫在北京大学和上海。"]
    with server(model, "--words", words, "--force-words", force) as (port, _):
        status, _, body = post_texts(port, texts)
        assert status == 200 and body["results"] == tag_records(tagger, texts, TagOptions())
        request_body = json.dumps({"texts": texts, "min_score": 0.5}, ensure_ascii=False)
        status, _, raw = request(port, "POST", "/v1/tag", request_body.encode("utf-8"))
        assert status == 200
        assert json.loads(raw)["results"] == tag_records(tagger, texts, TagOptions(min_score=0.5))
        for bad in (2, "0.5", True):
            request_body = json.dumps({"texts": texts, "min_score": bad})
            assert request(port, "POST", "/v1/tag", request_body.encode())[0] == 400
        metrics = request(port, "GET", "/metrics")[2].decode()
        assert 'ner_words_loaded{list="words"} 1.0' in metrics
        assert 'ner_words_loaded{list="force_words"} 2.0' in metrics


def test_full_queue_answers_503_with_retry_after_and_keeps_serving(model):
    long_texts = ["，".join(TEXTS)] * 200  # each request keeps the model busy a while
    with server(model, "--max-queue", 1, "--max-batch", 1, "--max-wait-ms", 0,
                "--max-body-bytes", 10_000_000) as (port, _):
        answers = []
        lock = threading.Lock()

        def one():
            result = post_texts(port, long_texts, timeout=120)
            with lock:
                answers.append(result)

        threads = [threading.Thread(target=one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        codes = sorted(status for status, _, _ in answers)
        assert len(codes) == 8 and 503 in codes and 200 in codes, codes
        for status, headers, body in answers:
            if status == 503:
                assert headers["retry-after"] == "1" and "queue is full" in body["error"]
        assert post_texts(port, TEXTS[:2])[0] == 200  # still serving


def test_readyz_is_503_until_the_model_is_warm(model):
    with server(model, wait_ready=False) as (port, _):
        statuses = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            statuses.append(request(port, "GET", "/readyz")[0])
            if statuses[-1] == 200:
                break
        assert statuses[0] == 503 and statuses[-1] == 200
        assert set(statuses) == {503, 200}
        assert statuses.index(200) == len(statuses) - 1  # never back to 503


def test_sigterm_during_a_burst_loses_no_accepted_request(model):
    from serve.tagger import Tagger

    texts = ["，".join(TEXTS)] * 300  # each request busies the model a while
    expected = [[e.to_dict() for e in entities] for entities in Tagger.load(model).tag(texts)]
    with server(model, "--max-batch", 300, "--max-body-bytes", 10_000_000) as (port, process):
        answers, lock = [], threading.Lock()

        def one():
            try:
                result = post_texts(port, texts, timeout=120)
            except OSError as error:
                result = error
            with lock:
                answers.append(result)

        threads = [threading.Thread(target=one) for _ in range(12)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # all 12 accepted and waiting for their results
            metrics = request(port, "GET", "/metrics")[2].decode()
            if "ner_tag_requests_in_progress 12.0" in metrics:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the burst was not accepted in time")
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=120)
        assert process.wait(timeout=60) == 0
        assert len(answers) == 12
        for answer in answers:
            status, _, body = answer
            assert status == 200
            assert [r["entities"] for r in body["results"]] == expected
        with pytest.raises(OSError):  # no longer accepting
            request(port, "GET", "/healthz", timeout=5)


@pytest.mark.parametrize("flag", ["--max-batch", "--max-queue", "--max-body-bytes", "--threads"])
def test_cli_refuses_counts_below_one_before_loading_anything(flag, capsys):
    from serve.http import parse_args

    with pytest.raises(SystemExit) as stopped:
        parse_args([flag, "0"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        f"python -m serve.http: error: argument {flag}: 0: expected a positive number"
