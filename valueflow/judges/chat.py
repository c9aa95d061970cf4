"""An OpenAI-compatible chat judge (vLLM, Ollama, TGI, llama.cpp server, OpenAI): the paper's LLM ranking judges.

Ranking prompt (paraphrasing the VALUEFLOW authors' prompt, PAPER_NOTES §5.3): the theory's name, the value's
label and definition, the numbered texts ``[1] ... [k]``; rank 1 = most supportive, rank k = most opposing,
neutral or unrelated texts in the middle; answer only with a list such as ``[3, 1, 4, 2]``.

What makes it safe to run at scale:
- presentation order is randomised per window (seeded by the window's content), and the answer is mapped back,
  so a judge's position bias becomes noise instead of a systematic error;
- parsing is strict: exactly one list that is a permutation of 1..k; anything else is re-asked (the reply and a
  correction are appended to the conversation) up to ``reasks`` times, then reported as an error, never guessed;
- transport errors, timeouts, 408/429/5xx answers and bodies that are no chat completion are retried, waiting
  as the server's ``Retry-After`` asks, else with jittered exponential backoff (``valueflow.chat_http``);
- windows are sent ``concurrency`` at a time;
- every reply that parses into a valid ranking or rating is cached on disk under ``cache_dir``, keyed by a hash of
  the full request (model, messages, sampling settings), so a rerun or a resumed collection never pays twice for
  the same prompt; a malformed reply is never cached, so a fixed server is asked again;
- one deadline per request (connect to last byte) and a cap on the answer's size (``valueflow.chat_http.post_chat``).

``rate()`` asks for a direct intensity in [-10, 10] (one text per call): the rating baseline the paper compares
ranking against.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from valueflow.chat_http import (
    DEFAULT_MAX_ANSWER_BYTES,
    ChatSessions,
    PermanentError,
    TransientError,
    endpoint_api_key,
    retry_delay,
)
from valueflow.io import seeded_rng, warn
from valueflow.judges.base import Judge, JudgeAnswer, register_judge
from valueflow.redact import redact
from valueflow.taxonomy import get_taxonomy

PROMPT_VERSION = "rank-v1"
RATE_PROMPT_VERSION = "rate-v1"

RANK_TEMPLATE = """You are an expert annotator of human values, using {theory_name}.

{label} Label: {value_name}
Definition: {definition}

Below are {k} texts. Rank them by how strongly each text supports or opposes this {label_lower}.
Rank 1 is the text that most strongly supports it and rank {k} the text that most strongly opposes it.
Texts that are neutral or unrelated to it belong in the middle.

{texts}

Answer only with the list of the {k} text numbers, from most supportive to most opposing, each number exactly
once, for example {example}. Do not write anything else."""

RATE_TEMPLATE = """You are an expert annotator of human values, using {theory_name}.

{label} Label: {value_name}
Definition: {definition}

Rate how strongly the following text supports or opposes this {label_lower}, on a scale from -10 (strongly
opposes) through 0 (neutral or unrelated) to 10 (strongly supports).

Text: {text}

Answer only with one number between -10 and 10. Do not write anything else."""

_LIST = re.compile(r"\[([^\[\]]*)\]")
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


class MalformedAnswer(ValueError):
    """The reply is not what the prompt asked for; the message says what is wrong (it is sent back on re-ask)."""


def parse_permutation(reply: str, k: int) -> tuple[int, ...]:
    """Strictly parse a ranking reply into 0-based positions; raise :class:`MalformedAnswer` otherwise."""
    lists = _LIST.findall(reply or "")
    if len(lists) != 1:
        raise MalformedAnswer(f"contained {len(lists)} bracketed lists instead of exactly one")
    items = [x.strip() for x in lists[0].split(",") if x.strip()]
    if not all(re.fullmatch(r"\d+", x) for x in items):
        raise MalformedAnswer("the list must contain only whole numbers")
    numbers = [int(x) for x in items]
    if sorted(numbers) != list(range(1, k + 1)):
        raise MalformedAnswer(f"{numbers} is not a permutation of the numbers 1 to {k}")
    return tuple(n - 1 for n in numbers)


def parse_rating(reply: str) -> float:
    """Strictly parse a rating reply: exactly one number in [-10, 10]."""
    numbers = _NUMBER.findall(reply or "")
    if len(numbers) != 1:
        raise MalformedAnswer(f"contained {len(numbers)} numbers instead of exactly one")
    x = float(numbers[0])
    if not -10 <= x <= 10:
        raise MalformedAnswer(f"{x:g} is outside [-10, 10]")
    return x


Seconds = Annotated[float, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]

#: how much of a rejected reply goes back to the model on a re-ask: enough to see the mistake, never a flood
REASK_ECHO_CHARS = 1000


class ChatJudge(Judge):
    transport_options = frozenset({"timeout", "max_retries", "backoff", "max_backoff", "reasks", "concurrency",
                                   "cache_dir", "api_key_env", "allow_insecure_http", "max_answer_bytes"})

    """Ranks (and rates) texts with an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the served model name, e.g. ``google/gemma-3-27b-it``.
        base_url: the API root, e.g. ``http://localhost:8000/v1`` (default ``$OPENAI_BASE_URL`` or OpenAI's).
        api_key_env: the environment variable holding this endpoint's key; unset, only OpenAI's own API gets
            ``$OPENAI_API_KEY`` (``valueflow.chat_http.endpoint_api_key``). The key is never written to the cache
            or the logs.
        allow_insecure_http: send the key over plain http to a host other than this machine (off: refused).
        timeout: seconds per HTTP request, from connect to the answer's last byte (one deadline, not per read).
        max_retries: retries after a timeout, a transport error, a 408/429/5xx answer or a body that is no reply.
        backoff: first retry delay in seconds (jittered); doubles with every retry. A ``Retry-After`` header wins.
        max_backoff: the longest wait before a retry, whatever the server asks.
        reasks: how many times a malformed answer is re-asked before the window is given up.
        concurrency: windows in flight at once.
        cache_dir: on-disk cache of valid answers (``None`` disables it); default ``data/cache/chat``.
        seed: seeds the presentation shuffle and is sent to the server (servers that honour it are reproducible).
        temperature: sampling temperature (default 0, as in the paper's evaluator).
        max_tokens: reply length limit.
        shuffle: randomise presentation order per window (answers are mapped back to the window's order).
        max_answer_bytes: an answer body above this size is refused unread (``chat_http.AnswerTooLarge``).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        allow_insecure_http: bool = False,
        timeout: Seconds = 60.0,
        max_retries: Count = 4,
        backoff: Annotated[float, Field(ge=0)] = 1.0,
        max_backoff: Annotated[float, Field(ge=0)] = 60.0,
        reasks: Count = 2,
        concurrency: Positive = 4,
        cache_dir: str | Path | None = "data/cache/chat",
        seed: int = 0,
        temperature: Annotated[float, Field(ge=0, le=2)] = 0.0,
        max_tokens: Positive = 64,
        shuffle: bool = True,
        max_answer_bytes: Positive = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        api_key = endpoint_api_key(self.base_url, api_key_env, allow_insecure_http=allow_insecure_http,
                                   where=f"judge chat:{model}")
        self.timeout, self.max_retries, self.backoff = float(timeout), int(max_retries), float(backoff)
        self.max_backoff = float(max_backoff)
        self._jitter = random.Random(seed)
        self._sessions = ChatSessions()
        self.reasks, self.concurrency = int(reasks), max(1, int(concurrency))
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.seed, self.temperature, self.max_tokens, self.shuffle = int(seed), float(temperature), int(max_tokens), bool(shuffle)
        self.max_answer_bytes = int(max_answer_bytes)
        self.name = f"chat:{model}@{PROMPT_VERSION}"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "reasks": 0, "failures": 0, "cache_dropped": 0}

    def answer_settings(self) -> dict:
        return {"base_url": self.base_url, "temperature": self.temperature, "seed": self.seed,
                "max_tokens": self.max_tokens, "shuffle": self.shuffle, "prompt": PROMPT_VERSION}

    # -- transport ------------------------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] += n

    def _payload(self, messages: list[dict]) -> dict:
        return {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
        }

    @staticmethod
    def request_hash(payload: dict) -> str:
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _cache_path(self, messages: list[dict]) -> Path | None:
        if not self.cache_dir:
            return None
        key = self.request_hash({**self._payload(messages), "endpoint": self.base_url})  # two servers, one model name
        return self.cache_dir / key[:2] / f"{key}.json"

    def _recall(self, messages: list[dict], parse) -> tuple[str, object] | None:
        """(reply, parsed) from the cache, or None. An entry that cannot be read or no longer parses (a truncated
        file, a bad answer cached by an older version) is dropped with a warning naming it, and asked again."""
        path = self._cache_path(messages)
        if path is None or not path.exists():
            return None
        try:
            content = json.loads(path.read_text(encoding="utf-8"))["content"]
            result = content, parse(content)
        except (OSError, ValueError, KeyError, TypeError) as err:  # MalformedAnswer is a ValueError
            warn(f"{path}: unusable cached answer dropped and asked again ({type(err).__name__}: {str(err)[:120]})")
            path.unlink(missing_ok=True)
            self._count("cache_dropped")
            return None
        self._count("cache_hits")
        return result

    def _remember(self, messages: list[dict], content: str) -> None:
        """Cache a reply that parsed: only a valid answer is ever kept (a bad one would be served forever)."""
        from valueflow.io import write_json

        path = self._cache_path(messages)
        if path is not None:
            write_json({"model": self.model, "content": content, "prompt_hash": path.stem}, path)

    def complete(self, messages: list[dict]) -> str:
        """One chat completion from the server (retried on transient failures); the cache is :meth:`_ask`'s."""
        last_error = TransientError("no attempt made")
        payload = self._payload(messages)
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(retry_delay(attempt, last_error, self.backoff, self.max_backoff, self._jitter))
            try:
                self._count("requests")
                content, _ = self._sessions.post(self.base_url, payload, headers=self._headers,
                                                 deadline_s=self.timeout, max_bytes=self.max_answer_bytes)
            except TransientError as err:  # timeout, transport, 408/429/5xx (with Retry-After), a body that is no reply
                last_error = err
                continue
            except PermanentError as err:
                raise PermanentError(f"{redact(self.base_url)}: {err}") from None
            return content
        raise ConnectionError(f"{redact(self.base_url)}: gave up after {self.max_retries + 1} attempts ({last_error})")

    def _ask(self, prompt: str, parse, k_hint: str) -> tuple[object | None, str | None, str | None, str]:
        """Ask, re-asking on a malformed reply; returns (parsed, error, raw reply, prompt hash)."""
        messages = [{"role": "user", "content": prompt}]
        prompt_hash = self.request_hash(self._payload(messages))[:16]
        raw = None
        for attempt in range(self.reasks + 1):
            if attempt:
                self._count("reasks")
            hit = self._recall(messages, parse)
            if hit is not None:
                return hit[1], None, hit[0], prompt_hash
            try:
                raw = self.complete(messages)
            except (ConnectionError, RuntimeError) as err:
                self._count("failures")
                return None, str(err), raw, prompt_hash
            try:
                parsed = parse(raw)
            except MalformedAnswer as err:
                problem = str(err)
                shown = raw if len(raw) <= REASK_ECHO_CHARS else raw[:REASK_ECHO_CHARS] + " [...]"
                messages = messages + [
                    {"role": "assistant", "content": shown},
                    {"role": "user", "content": f"Your answer {problem}. {k_hint} Do not write anything else."},
                ]
                continue
            self._remember(messages, raw)
            return parsed, None, raw, prompt_hash
        self._count("failures")
        shown = raw if raw is None or len(raw) <= REASK_ECHO_CHARS else raw[:REASK_ECHO_CHARS] + " [...]"
        return None, f"malformed answer after {self.reasks} re-ask(s): {problem}", shown, prompt_hash

    # -- prompts --------------------------------------------------------------------------------------------
    @staticmethod
    def _value_fields(value: str) -> dict:
        tax = get_taxonomy()
        v = tax.value(value)
        label = tax.theory_labels[v.theory]
        return {
            "theory_name": tax.theory_names[v.theory],
            "label": label,
            "label_lower": label.lower(),
            "value_name": v.name,
            "definition": v.definition,
        }

    def ranking_prompt(self, value: str, texts: Sequence[str]) -> str:
        k = len(texts)
        # a fixed scrambled example (an identity example would invite copying the presentation order)
        example = "[" + ", ".join(str(i + 1) for i in np.random.default_rng(7).permutation(k)) + "]"
        listing = "\n".join(f"[{i + 1}] {' '.join(str(t).split())}" for i, t in enumerate(texts))
        return RANK_TEMPLATE.format(k=k, texts=listing, example=example, **self._value_fields(value))

    def rating_prompt(self, value: str, text: str) -> str:
        return RATE_TEMPLATE.format(text=" ".join(str(text).split()), **self._value_fields(value))

    def _presentation(self, value: str, window: Sequence[str]) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(window))
        return seeded_rng(self.seed, value, *window).permutation(len(window))

    # -- the judge protocol ---------------------------------------------------------------------------------
    def _rank_one(self, value: str, window: Sequence[str]) -> JudgeAnswer:
        shown = self._presentation(value, window)  # shown[i] = window position presented as [i + 1]
        k = len(window)
        prompt = self.ranking_prompt(value, [window[i] for i in shown])
        hint = f"Answer only with a list of the numbers 1 to {k}, each exactly once, most supportive first."
        parsed, error, raw, prompt_hash = self._ask(prompt, lambda r: parse_permutation(r, k), hint)
        if parsed is None:
            return JudgeAnswer(None, error=error, raw=raw, prompt_hash=prompt_hash)
        return JudgeAnswer(tuple(int(shown[p]) for p in parsed), raw=raw, prompt_hash=prompt_hash)

    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        if self.concurrency == 1 or len(windows) <= 1:
            return [self._rank_one(value, w) for w in windows]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda w: self._rank_one(value, w), windows))

    def _rate_one(self, value: str, text: str) -> float | None:
        hint = "Answer only with one number between -10 and 10."
        parsed, _, _, _ = self._ask(self.rating_prompt(value, text), parse_rating, hint)
        return None if parsed is None else float(parsed)  # type: ignore[arg-type]

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        if self.concurrency == 1 or len(texts) <= 1:
            return [self._rate_one(value, t) for t in texts]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda t: self._rate_one(value, t), texts))

    @classmethod
    def checked_options(cls, options: dict, where: str) -> dict:
        """The options checked against this class's signature, or, when ``base_url`` is a list of endpoints, the
        fleet's own (``base_url``, ``revive_after``) against ``ChatFleet`` and the rest, which every endpoint
        shares, against this class."""
        from valueflow.params import check_options

        if not isinstance(options.get("base_url"), (list, tuple)):
            return check_options(cls, options, where=where)
        from valueflow.judges.fleet import fleet_settings

        fleet = {k: v for k, v in options.items() if k in ("base_url", "revive_after")}
        shared = {k: v for k, v in options.items() if k not in fleet}
        return {**check_options(fleet_settings, fleet, where=where), **check_options(cls, shared, where=where)}

    def close(self) -> None:
        """Close the kept-alive connections (``ChatSessions``)."""
        self._sessions.close()


@register_judge("chat", options_of=ChatJudge)
def _make(spec: str = "", **options: object) -> Judge:
    """``chat:<model>@<base_url>``; ``@<base_url>`` is optional (then ``base_url`` option or $OPENAI_BASE_URL).

    A list of base URLs in the options is a fleet of endpoints serving the model (``valueflow.judges.fleet``)."""
    model, _, base_url = spec.partition("@")
    model = model or str(options.pop("model", ""))
    if not model:
        raise ValueError("chat judge needs a model: chat:<model>@<base_url>")
    options.pop("model", None)
    if isinstance(options.get("base_url"), (list, tuple)):
        from valueflow.judges.fleet import ChatFleet

        if base_url:
            raise ValueError(f"chat:{spec}: give the endpoints either in the spec or as a base_url list, not both")
        return ChatFleet(model=model, **options)  # type: ignore[arg-type]
    if base_url:
        options["base_url"] = base_url
    return ChatJudge(model=model, **options)  # type: ignore[arg-type]
