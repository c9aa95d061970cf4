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
- every successful reply is cached on disk under ``cache_dir``, keyed by a hash of the full request (model,
  messages, sampling settings), so a rerun or a resumed collection never pays twice for the same prompt.

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

import numpy as np

from valueflow.chat_http import PermanentError, TransientError, endpoint_api_key, read_response, retry_delay
from valueflow.io import seeded_rng
from valueflow.judges.base import Judge, JudgeAnswer, register_judge
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


class ChatJudge(Judge):
    transport_options = frozenset({"timeout", "max_retries", "backoff", "max_backoff", "reasks", "concurrency",
                                   "cache_dir", "api_key_env", "allow_insecure_http"})

    """Ranks (and rates) texts with an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the served model name, e.g. ``google/gemma-3-27b-it``.
        base_url: the API root, e.g. ``http://localhost:8000/v1`` (default ``$OPENAI_BASE_URL`` or OpenAI's).
        api_key_env: the environment variable holding this endpoint's key; unset, only OpenAI's own API gets
            ``$OPENAI_API_KEY`` (``valueflow.chat_http.endpoint_api_key``). The key is never written to the cache
            or the logs.
        allow_insecure_http: send the key over plain http to a host other than this machine (off: refused).
        timeout: seconds per HTTP request.
        max_retries: retries after a timeout, a transport error, a 408/429/5xx answer or a body that is no reply.
        backoff: first retry delay in seconds (jittered); doubles with every retry. A ``Retry-After`` header wins.
        max_backoff: the longest wait before a retry, whatever the server asks.
        reasks: how many times a malformed answer is re-asked before the window is given up.
        concurrency: windows in flight at once.
        cache_dir: on-disk reply cache (``None`` disables it); default ``data/cache/chat``.
        seed: seeds the presentation shuffle and is sent to the server (servers that honour it are reproducible).
        temperature: sampling temperature (default 0, as in the paper's evaluator).
        max_tokens: reply length limit.
        shuffle: randomise presentation order per window (answers are mapped back to the window's order).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = None,
        allow_insecure_http: bool = False,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        reasks: int = 2,
        concurrency: int = 4,
        cache_dir: str | Path | None = "data/cache/chat",
        seed: int = 0,
        temperature: float = 0.0,
        max_tokens: int = 64,
        shuffle: bool = True,
    ) -> None:
        import httpx

        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1").rstrip("/")
        api_key = endpoint_api_key(self.base_url, api_key_env, allow_insecure_http=allow_insecure_http,
                                   where=f"judge chat:{model}")
        self.timeout, self.max_retries, self.backoff = float(timeout), int(max_retries), float(backoff)
        self.max_backoff = float(max_backoff)
        self._jitter = random.Random(seed)
        self.reasks, self.concurrency = int(reasks), max(1, int(concurrency))
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.seed, self.temperature, self.max_tokens, self.shuffle = int(seed), float(temperature), int(max_tokens), bool(shuffle)
        self.name = f"chat:{model}@{PROMPT_VERSION}"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # no redirects: a 30x must not carry the key to another host
        self._client = httpx.Client(timeout=self.timeout, headers=headers, follow_redirects=False)
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "reasks": 0, "failures": 0}

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

    def _cache_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir else None

    def complete(self, messages: list[dict]) -> str:
        """One chat completion, from the cache when this exact request was answered before."""
        import httpx

        from valueflow.io import write_json

        payload = self._payload(messages)
        key = self.request_hash({**payload, "endpoint": self.base_url})  # two servers may serve one model name
        path = self._cache_path(key)
        if path is not None and path.exists():
            self._count("cache_hits")
            return json.loads(path.read_text(encoding="utf-8"))["content"]
        last_error = TransientError("no attempt made")
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
                time.sleep(retry_delay(attempt, last_error, self.backoff, self.max_backoff, self._jitter))
            try:
                self._count("requests")
                content, _ = read_response(self._client.post(f"{self.base_url}/chat/completions", json=payload))
            except httpx.TimeoutException:
                last_error = TransientError(f"timeout after {self.timeout:g} s")
                continue
            except httpx.TransportError as err:
                last_error = TransientError(f"transport error: {type(err).__name__}")
                continue
            except TransientError as err:  # 408/429/5xx (with the server's Retry-After) or a body that is no reply
                last_error = err
                continue
            except PermanentError as err:
                raise PermanentError(f"{self.base_url}: {err}") from None
            if path is not None:
                write_json({"model": self.model, "content": content, "prompt_hash": key}, path)
            return content
        raise ConnectionError(f"{self.base_url}: gave up after {self.max_retries + 1} attempts ({last_error})")

    def _ask(self, prompt: str, parse, k_hint: str) -> tuple[object | None, str | None, str | None, str]:
        """Ask, re-asking on a malformed reply; returns (parsed, error, raw reply, prompt hash)."""
        messages = [{"role": "user", "content": prompt}]
        prompt_hash = self.request_hash(self._payload(messages))[:16]
        raw = None
        for attempt in range(self.reasks + 1):
            if attempt:
                self._count("reasks")
            try:
                raw = self.complete(messages)
            except (ConnectionError, RuntimeError) as err:
                self._count("failures")
                return None, str(err), raw, prompt_hash
            try:
                return parse(raw), None, raw, prompt_hash
            except MalformedAnswer as err:
                problem = str(err)
                messages = messages + [
                    {"role": "assistant", "content": raw},
                    {"role": "user", "content": f"Your answer {problem}. {k_hint} Do not write anything else."},
                ]
        self._count("failures")
        return None, f"malformed answer after {self.reasks} re-ask(s): {problem}", raw, prompt_hash

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

    def close(self) -> None:
        self._client.close()


@register_judge("chat")
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
