"""The LLM judge (adapterflow.eval.judge) against a real HTTP server on 127.0.0.1 speaking the
OpenAI chat-completions protocol, the local-LM path through an injected chat function, and once
end to end with a tiny random chat LM."""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapterflow.errors import ConfigError, DataError
from adapterflow.eval.judge import (
    DEFAULT_PROMPT,
    JudgeError,
    JudgeSettings,
    build_messages,
    cache_key,
    judge_answers,
    parse_verdict,
)

_REFERENCE = re.compile(r"^Reference answer: (.*)$", re.M)
_ANSWER = re.compile(r"^Answer to grade: (.*)$", re.M)


class FakeJudge(ThreadingHTTPServer):
    """An OpenAI-compatible server: records every request and grades 9 when the answer holds the
    reference's first word, else 2; an answer with GARBAGE gets a reply without a score.
    ``failures`` are (status, body) answers sent first, one per request; ``always`` one
    sent to every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests: list[dict] = []
        self.failures: list[tuple[int, str, dict]] = []
        self.always: tuple[int, str] | None = None
        self.raw_reply: str | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def grade(self, body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        reference, answer = _REFERENCE.search(prompt)[1], _ANSWER.search(prompt)[1]
        if "GARBAGE" in answer:
            return "I would rather not say."
        word = re.sub(r"\W", "", reference.split()[0]).lower()
        score = 9 if word in answer.lower() else 2
        return f'Here you go:\n```json\n{{"score": {score}, "reason": "graded {score}"}}\n```'


class Handler(BaseHTTPRequestHandler):
    server: FakeJudge

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def _send(self, status: int, body: str, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body}
            )
            failure = self.server.failures.pop(0) if self.server.failures else None
            always, raw = self.server.always, self.server.raw_reply
        if failure or always:
            status, text, *extra = failure or always
            self._send(status, text, *extra)
        elif self.path != "/v1/chat/completions":
            self._send(404, '{"error": "no such route"}')
        elif raw is not None:
            self._send(200, raw)
        else:
            message = {"role": "assistant", "content": self.server.grade(body)}
            self._send(200, json.dumps({"choices": [{"index": 0, "message": message}]}))


@pytest.fixture(scope="module")
def server():
    httpd = FakeJudge()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def judge(server, monkeypatch):
    """The server, emptied, and settings pointing at it with the key in JUDGE_TEST_KEY."""
    server.reset()
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-test-123")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy in the environment must not interfere
    settings = {
        "base_url": server.base_url,
        "model": "judge-model",
        "api_key_env": "JUDGE_TEST_KEY",
        "backoff_s": 0.01,
        "retries": 2,
        "timeout_s": 10,
    }
    return server, settings


ITEMS = [
    {
        "question": "Who built the clock?",
        "reference": "Harrowick.",
        "answer": "It was Harrowick.",
        "criteria": "Names Harrowick.",
    },
    {
        "question": "What hangs in the hall?",
        "reference": "Barometer of brass.",
        "answer": "A painting.",
        "criteria": "",
    },
    {"question": "How tall is the tower?", "reference": "212 metres.", "answer": "212 m"},
]


def test_scores_request_shape_and_auth_header(judge, tmp_path):
    server, settings = judge
    rows = judge_answers(ITEMS, settings, cache_path=tmp_path / "judge.jsonl")
    assert [r["judge_score"] for r in rows] == [0.9, 0.2, 0.9]
    assert [r["judge_reason"] for r in rows] == ["graded 9", "graded 2", "graded 9"]
    assert not any(r["judge_cached"] for r in rows)
    assert len(server.requests) == 3
    for request in server.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["headers"]["Authorization"] == "Bearer sk-test-123"
        body = request["body"]
        assert body["model"] == "judge-model"
        assert body["temperature"] == 0 and body["max_tokens"] == 256
        assert [m["role"] for m in body["messages"]] == ["user"]
    prompts = sorted(r["body"]["messages"][0]["content"] for r in server.requests)
    assert "Evaluation criteria: (none)" in prompts[1]  # the item without criteria
    assert "Question: Who built the clock?" in prompts[2]


def test_a_rerun_is_served_from_the_cache_and_a_changed_answer_asks_once(judge, tmp_path):
    server, settings = judge
    cache = tmp_path / "cache" / "judge.jsonl"  # its folder is made
    first = judge_answers(ITEMS, settings, cache_path=cache)
    assert len(server.requests) == 3
    assert len(cache.read_text().splitlines()) == 3
    again = judge_answers(ITEMS, settings, cache_path=cache)
    assert len(server.requests) == 3  # zero new requests
    assert all(r["judge_cached"] for r in again)
    assert [r["judge_score"] for r in again] == [r["judge_score"] for r in first]
    changed = [dict(ITEMS[0], answer="Nobody knows."), *ITEMS[1:]]
    rows = judge_answers(changed, settings, cache_path=cache)
    assert len(server.requests) == 4  # exactly one more
    assert [r["judge_cached"] for r in rows] == [False, True, True]
    assert rows[0]["judge_score"] == 0.2
    assert len(cache.read_text().splitlines()) == 4


def test_the_cache_key_covers_the_judge_and_every_field():
    base = JudgeSettings.from_block({"base_url": "http://h/v1", "model": "a"})
    key = cache_key(base, ITEMS[0])
    for field in ("question", "reference", "criteria", "answer"):
        assert cache_key(base, {**ITEMS[0], field: ITEMS[0][field] + "!"}) != key
    others = [
        {"base_url": "http://h/v1", "model": "b"},
        {"base_url": "http://other/v1", "model": "a"},
        {"base_url": "http://h/v1", "model": "a", "prompt": "{answer}"},
        {"base_url": "http://h/v1", "model": "a", "system": "Be strict."},
        {"kind": "local", "lm": "a"},
    ]
    assert all(cache_key(JudgeSettings.from_block(o), ITEMS[0]) != key for o in others)
    # Request settings do not change a verdict's key: a rerun with a longer timeout is cached.
    same = {"base_url": "http://h/v1/", "model": "a", "timeout_s": 5, "api_key_env": None}
    assert cache_key(JudgeSettings.from_block(same), ITEMS[0]) == key
    # A missing criteria is the same as an empty one.
    assert cache_key(base, ITEMS[2]) == cache_key(base, {**ITEMS[2], "criteria": ""})


def test_equal_items_are_asked_once_and_blank_answers_not_at_all(judge, tmp_path):
    server, settings = judge
    items = [ITEMS[0], dict(ITEMS[0]), {**ITEMS[1], "answer": "  "}]
    rows = judge_answers(items, settings, cache_path=tmp_path / "judge.jsonl")
    assert len(server.requests) == 1
    assert [r["judge_score"] for r in rows] == [0.9, 0.9, 0.0]
    assert rows[2]["judge_reason"] == "empty answer"


def test_many_items_concurrently_keep_their_order(judge, tmp_path):
    server, settings = judge
    items = [
        {"question": f"Q{i}?", "reference": f"word{i}", "answer": f"word{i}" if i % 3 else "no"}
        for i in range(23)
    ]
    settings = {**settings, "concurrency": 4, "batch_size": 5}
    rows = judge_answers(items, settings, cache_path=tmp_path / "judge.jsonl")
    assert [r["judge_score"] for r in rows] == [0.9 if i % 3 else 0.2 for i in range(23)]
    assert len(server.requests) == 23


def test_server_errors_are_retried(judge, tmp_path, caplog):
    server, settings = judge
    server.failures = [(500, "boom"), (503, "busy")]
    with caplog.at_level(logging.WARNING, logger="adapterflow.eval.judge"):
        rows = judge_answers(ITEMS[:1], settings, cache_path=tmp_path / "judge.jsonl")
    assert rows[0]["judge_score"] == 0.9
    assert len(server.requests) == 3
    assert "retry 1/2" in caplog.text and "retry 2/2" in caplog.text


def test_429_waits_for_retry_after(judge, tmp_path):
    server, settings = judge
    server.failures = [(429, "slow down", {"Retry-After": "0"})]
    rows = judge_answers(ITEMS[:1], {**settings, "backoff_s": 30}, cache_path=tmp_path / "j")
    assert rows[0]["judge_score"] == 0.9 and len(server.requests) == 2


def test_a_server_that_keeps_failing_is_an_error_naming_the_url(judge, tmp_path):
    server, settings = judge
    server.always = (500, "internal trouble " + "x" * 500)
    cache = tmp_path / "judge.jsonl"
    with pytest.raises(JudgeError) as err:
        judge_answers(ITEMS[:1], settings, cache_path=cache)
    message = str(err.value)
    assert f"{server.base_url}/chat/completions" in message
    assert "HTTP 500" in message and "after 3 attempt(s)" in message
    assert "internal trouble" in message and "x" * 300 not in message  # the body is cut
    assert len(server.requests) == 3
    assert not cache.exists()  # nothing judged, nothing cached


def test_a_client_error_is_not_retried(judge, tmp_path):
    server, settings = judge
    server.always = (401, '{"error": "invalid api key"}')
    with pytest.raises(JudgeError, match=r"HTTP 401.*invalid api key"):
        judge_answers(ITEMS[:1], settings, cache_path=tmp_path / "judge.jsonl")
    assert len(server.requests) == 1


def test_a_reply_that_is_not_a_chat_completion_is_an_error(judge, tmp_path):
    server, settings = judge
    server.raw_reply = '{"object": "error"}'
    with pytest.raises(JudgeError, match="not a chat completion"):
        judge_answers(ITEMS[:1], settings, cache_path=tmp_path / "judge.jsonl")


def test_nothing_listens_is_an_error_after_retries(judge, tmp_path):
    _, settings = judge
    # A port nobody listens on: bind one, note it, close it.
    probe = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = probe.server_address[1]
    probe.server_close()
    settings = {**settings, "base_url": f"http://127.0.0.1:{port}/v1", "retries": 1}
    with pytest.raises(JudgeError, match=rf"127.0.0.1:{port}/v1/chat/completions.*2 attempt"):
        judge_answers(ITEMS[:1], settings, cache_path=tmp_path / "judge.jsonl")


def test_an_unset_api_key_variable_fails_before_any_request(judge, tmp_path, monkeypatch):
    server, settings = judge
    monkeypatch.delenv("JUDGE_TEST_KEY")
    with pytest.raises(ConfigError, match="JUDGE_TEST_KEY is not set"):
        judge_answers(ITEMS, settings, cache_path=tmp_path / "judge.jsonl")
    monkeypatch.setenv("JUDGE_TEST_KEY", " ")
    with pytest.raises(ConfigError, match="JUDGE_TEST_KEY is empty"):
        judge_answers(ITEMS, settings, cache_path=tmp_path / "judge.jsonl")
    assert server.requests == []


def test_no_api_key_for_a_server_without_auth(judge, tmp_path, monkeypatch):
    server, settings = judge
    monkeypatch.delenv("JUDGE_TEST_KEY")
    judge_answers(ITEMS[:1], {**settings, "api_key_env": None}, cache_path=tmp_path / "j")
    assert "Authorization" not in server.requests[0]["headers"]


def test_an_unparseable_reply_is_none_counted_and_asked_again(judge, tmp_path, caplog):
    server, settings = judge
    items = [ITEMS[0], {**ITEMS[1], "answer": "GARBAGE"}]
    cache = tmp_path / "judge.jsonl"
    with caplog.at_level(logging.INFO, logger="adapterflow.eval.judge"):
        rows = judge_answers(items, settings, cache_path=cache)
    assert rows[0]["judge_score"] == 0.9
    assert rows[1]["judge_score"] is None
    assert "I would rather not say" in rows[1]["judge_reason"]
    assert "2 requested, 1 unparseable" in caplog.text
    # Kept in the cache with its raw reply, but not a hit: the next run asks again.
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert [line["score"] for line in lines] == [0.9, None]
    assert lines[1]["reply"] == "I would rather not say."
    again = judge_answers(items, settings, cache_path=cache)
    assert [r["judge_cached"] for r in again] == [True, False]
    assert len(server.requests) == 3


def test_a_torn_cache_line_is_skipped_and_not_glued_to_new_lines(judge, tmp_path, caplog):
    server, settings = judge
    cache = tmp_path / "judge.jsonl"
    judge_answers(ITEMS[:1], settings, cache_path=cache)
    with open(cache, "a") as handle:
        handle.write('{"key": "abc", "rep')  # a job killed mid-write
    with caplog.at_level(logging.WARNING, logger="adapterflow.eval.judge"):
        rows = judge_answers(ITEMS[:2], settings, cache_path=cache)
    assert "skipped 1 unreadable line" in caplog.text
    assert [r["judge_cached"] for r in rows] == [True, False]
    lines = cache.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["score"] == 0.2
    judge_answers(ITEMS[:2], settings, cache_path=cache)
    assert len(server.requests) == 2  # both cached now


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("Grade {answer} with {score}", r"unknown placeholder \{score\}"),
        ('{answer} Reply {"score": 1}', r"unknown placeholder \{\"score\"\}.*write a literal"),
        ("{answer} {}", r"unknown placeholder \{\}"),
        ("{answer} {0}", r"unknown placeholder \{0\}"),
        ("{answer.upper}", r"unknown placeholder \{answer.upper\}"),
        ("{answer} }", "Single '}'"),
        ("{question} {reference}", r"no \{answer\}"),
    ],
)
def test_bad_prompt_templates_fail_when_parsed(prompt, message):
    with pytest.raises(ConfigError, match=rf"^judge: prompt: .*{message}"):
        JudgeSettings.from_block({"kind": "local", "lm": "x", "prompt": prompt})


def test_the_default_prompt_and_escaped_braces():
    assert set(re.findall(r"(?<!\{)\{(\w+)\}(?!\})", DEFAULT_PROMPT)) == {
        "question",
        "reference",
        "answer",
        "criteria",
    }
    settings = JudgeSettings.from_block(
        {"kind": "local", "lm": "x", "prompt": 'A: {answer!r} R: {reference} {{"score": n}}'}
    )
    messages = build_messages(settings, {"reference": "{x}", "answer": "a"})
    assert messages == [{"role": "user", "content": "A: 'a' R: {x} {\"score\": n}"}]
    default = build_messages(JudgeSettings(kind="local", lm="x"), ITEMS[0])[0]["content"]
    assert default.endswith('{"score": <integer from 0 (wrong) to 10 (fully correct)>, '
                            '"reason": "<one short sentence>"}')  # fmt: skip
    assert "Answer to grade: It was Harrowick." in default


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"model": "m"}, "judge: kind 'openai' needs base_url$"),
        ({"base_url": "http://h/v1"}, "judge: kind 'openai' needs model$"),
        ({"kind": "local"}, "judge: kind 'local' needs lm$"),
        ({"kind": "remote", "lm": "x"}, "judge: kind: Input should be 'openai' or 'local'"),
        ({"base_url": "localhost:8000/v1", "model": "m"}, "judge: base_url: .*http://"),
        ({"kind": "local", "lm": "x", "max_token": 5}, "judge: max_token: Extra inputs"),
        ({"kind": "local", "lm": "x", "retries": -1}, "judge: retries: .*greater than or equal"),
        ({"kind": "local", "lm": "x", "timeout_s": 0}, "judge: timeout_s: .*greater than 0"),
    ],
)
def test_bad_settings_are_config_errors(block, message):
    with pytest.raises(ConfigError, match=message):
        JudgeSettings.from_block(block)


def test_bad_items_are_data_errors(tmp_path):
    settings = {"kind": "local", "lm": "x"}
    with pytest.raises(DataError, match=r"<judge items>:2: field 'answer': missing"):
        judge_answers(
            [ITEMS[0], {"reference": "r"}], settings, cache_path=tmp_path / "j", chat=list
        )
    with pytest.raises(DataError, match=r":1: field 'criteria': expected a string, got list"):
        judge_answers([{**ITEMS[0], "criteria": ["x"]}], settings, cache_path=tmp_path / "j")


@pytest.mark.parametrize(
    ("reply", "score", "reason"),
    [
        ('{"score": 7, "reason": "Close."}', 0.7, "Close."),
        ('```json\n{"score": 10, "reason": "Exact."}\n```', 1.0, "Exact."),
        (
            'Sure! Here it is: {"reason": "Wrong city.", "score": 0} Anything else?',
            0.0,
            "Wrong city.",
        ),
        (
            'Format: {"score": "0-10"}. Verdict: {"score": 6, "explanation": "Partly."}',
            0.6,
            "Partly.",
        ),
        ('{"score": "7/10", "reason": "ok"}', 0.7, "ok"),
        ('{"verdict": {"score": 8}}', 0.8, None),  # nested: the plain-text fallback finds it
        ("Score: 7/10\nReason: misses the year.", 0.7, "misses the year."),
        ("**Score:** 4 out of 10. The year is wrong.", 0.4, None),
        ("I'd give it 3/10.", 0.3, None),
        ("{'score': 5, 'reason': 'half right'}", 0.5, "half right"),
        ('<think>Maybe {"score": 1}?</think>{"score": 9, "reason": "Right."}', 0.9, "Right."),
        ('{"score": 11}', None, None),
        ('{"score": true}', None, None),
        ("The answer looks fine to me.", None, None),
        ("", None, None),
    ],
)
def test_parse_verdict(reply, score, reason):
    got_score, got_reason = parse_verdict(reply)
    assert got_score == score
    if score is None:
        assert got_reason.startswith("no score from 0 to 10 in the reply")
    elif reason is not None:
        assert got_reason == reason


# --- the local judge ---------------------------------------------------------------------------


def test_a_local_judge_through_an_injected_chat(tmp_path):
    asked = []

    def chat(conversations):
        asked.append(conversations)
        return [
            "Score: 8/10" if "Harrowick" in c[-1]["content"] else '{"score": 1}'
            for c in conversations
        ]

    settings = {"kind": "local", "lm": "./no/such/model", "system": "Be strict.", "batch_size": 2}
    cache = tmp_path / "judge.jsonl"
    rows = judge_answers(ITEMS, settings, cache_path=cache, chat=chat)
    assert [r["judge_score"] for r in rows] == [0.8, 0.1, 0.1]
    assert [len(batch) for batch in asked] == [2, 1]  # batch_size items per call
    assert asked[0][0][0] == {"role": "system", "content": "Be strict."}
    # Fully cached: neither the injected chat nor the (missing) model is needed.
    rows = judge_answers(ITEMS, settings, cache_path=cache)
    assert all(r["judge_cached"] for r in rows) and len(asked) == 2
    with pytest.raises(ConfigError, match="does not exist"):
        judge_answers([{**ITEMS[0], "answer": "new"}], settings, cache_path=cache)


def test_a_chat_returning_the_wrong_number_of_replies_is_an_error(tmp_path):
    with pytest.raises(JudgeError, match="1 replies to 3 questions"):
        judge_answers(
            ITEMS, {"kind": "local", "lm": "x"}, cache_path=tmp_path / "j", chat=lambda c: ["x"]
        )


def test_the_real_local_path_with_a_tiny_random_lm(tmp_path, caplog):
    from adapterflow.generate.llm import build_tiny_lm

    lm = build_tiny_lm(tmp_path / "lm")
    settings = {"kind": "local", "lm": str(lm), "max_tokens": 8}
    cache = tmp_path / "judge.jsonl"
    with caplog.at_level(logging.INFO, logger="adapterflow"):
        rows = judge_answers(ITEMS[:2], settings, cache_path=cache)
    # A random model's reply is noise, so no score; what matters is the path ran end to end.
    assert all(r["judge_score"] is None or 0 <= r["judge_score"] <= 1 for r in rows)
    assert "judge: 2 prompts" in caplog.text  # generated by lms.generate_chat
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(lines) == 2 and all(isinstance(line["reply"], str) for line in lines)
    # Greedy decoding: the same replies again.
    judge_answers(ITEMS[:2], settings, cache_path=cache)
    more = [json.loads(line) for line in cache.read_text().splitlines()]
    replies = {line["key"]: line["reply"] for line in lines}
    assert all(replies[line["key"]] == line["reply"] for line in more)
