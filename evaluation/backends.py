"""Generation backends for the steering study: one protocol, four implementations.

- ``openai``: any OpenAI-compatible chat-completions server (vLLM, Ollama, TGI, llama.cpp server, OpenAI).
  ``concurrency`` requests in flight (threads on kept-alive connections, ``valueflow.chat_http``); retries
  transient failures (connection errors, timeouts, 408/409/425/5xx, a body that is not a chat completion) with
  exponential backoff, and honours ``Retry-After`` on 429/503. A request that still
  fails comes back with ``response=None`` and the error, so the run records it and a rerun retries it.
- ``transformers``: a local causal LM through its chat template, batched, on the GPU when there is one.
- ``oracle`` (control): answers with an exemplar-pool (VIDB) text whose intensity lies in the target's bin: a
  perfectly steerable "model". The analysis must call it strongly steerable.
- ``null`` (control): answers with a text chosen from the query alone, ignoring the target: the analysis must
  find no dose-response.

Backends call ``on_result`` as each answer arrives, so the caller can journal it at once (resume after a kill).
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from evaluation.prompts import ExemplarPool, stable_seed
from valueflow.chat_http import (
    DEFAULT_MAX_ANSWER_BYTES,
    ChatSessions,
    PermanentError,
    TransientError,
    endpoint_api_key,
    retry_delay,
)

BACKEND_KINDS = ("openai", "transformers", "oracle", "null")


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to answer; the target metadata is only read by the controls."""

    response_id: str
    messages: tuple[Mapping[str, str], ...]
    query_id: str = ""
    prompt_format: str = "default"
    targets: Mapping[str, int] = field(default_factory=dict)
    sample: int = 0
    seed: int = 0


@dataclass(frozen=True)
class GenerationResult:
    response_id: str
    response: str | None
    error: str | None = None
    attempts: int = 1
    finish_reason: str | None = None


OnResult = Callable[[GenerationResult], None]


@dataclass
class GenerationConfig:
    temperature: float = 1.0
    max_tokens: int = 150
    top_p: float | None = None


class Backend(abc.ABC):
    """Answers chat prompts. ``kind`` and ``model`` are recorded with every response."""

    kind: str
    model: str

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenerationRequest], on_result: OnResult) -> None:
        """Answer every request, calling ``on_result`` once per request as soon as its answer is final."""

    def close(self) -> None:
        """Release clients, GPU memory."""


# --------------------------------------------------------------------------------------------------------------
# OpenAI-compatible HTTP


@dataclass
class OpenAIBackend(Backend):
    """An OpenAI-compatible ``/chat/completions`` endpoint.

    The API key is read from the environment variable named by ``api_key_env`` at request time; it is never
    stored in params, results or logs. Unset, only OpenAI's own API gets ``$OPENAI_API_KEY``, and a key never
    travels over plain http to a host other than this machine unless ``allow_insecure_http`` is set
    (``valueflow.chat_http.endpoint_api_key``).
    """

    model: str
    base_url: str
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    api_key_env: str | None = None
    allow_insecure_http: bool = False
    concurrency: Annotated[int, Field(ge=1)] = 8
    max_retries: Annotated[int, Field(ge=0)] = 5
    timeout_s: Annotated[float, Field(gt=0)] = 120.0  # per request, from connect to the last byte
    backoff_s: Annotated[float, Field(ge=0)] = 1.0
    max_backoff_s: Annotated[float, Field(ge=0)] = 60.0
    max_answer_bytes: Annotated[int, Field(ge=1)] = DEFAULT_MAX_ANSWER_BYTES
    send_seed: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "openai"

    def __post_init__(self) -> None:
        self._headers()  # a key that may not go to this endpoint is refused before any prompt is sent

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = endpoint_api_key(self.base_url, self.api_key_env, allow_insecure_http=self.allow_insecure_http,
                               where=f"backend {self.model}")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _payload(self, req: GenerationRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in req.messages],
            "temperature": self.generation.temperature,
            "max_tokens": self.generation.max_tokens,
        }
        if self.generation.top_p is not None:
            payload["top_p"] = self.generation.top_p
        if self.send_seed:
            payload["seed"] = req.seed
        payload.update(self.extra_body)
        return payload

    def _answer(self, sessions: ChatSessions, req: GenerationRequest, rng: random.Random) -> GenerationResult:
        last = ""
        for attempt in range(1, self.max_retries + 2):
            try:
                content, finish = sessions.post(self.base_url, self._payload(req), headers=self._headers(),
                                                deadline_s=self.timeout_s, max_bytes=self.max_answer_bytes)
                return GenerationResult(req.response_id, content, None, attempt, finish)
            except PermanentError as err:
                return GenerationResult(req.response_id, None, str(err), attempt)
            except TransientError as err:
                last = str(err)
                if attempt > self.max_retries:
                    break
                time.sleep(retry_delay(attempt, err, self.backoff_s, self.max_backoff_s, rng))
        return GenerationResult(req.response_id, None, f"gave up after {self.max_retries + 1} attempts: {last}", self.max_retries + 1)

    def generate(self, requests: Sequence[GenerationRequest], on_result: OnResult) -> None:
        """``concurrency`` requests in flight, each answer handed to ``on_result`` (in this thread) as it arrives."""
        if not requests:
            return
        sessions, rng = ChatSessions(), random.Random(0)
        pool = ThreadPoolExecutor(max(1, self.concurrency))
        try:
            for fut in as_completed([pool.submit(self._answer, sessions, r, rng) for r in requests]):
                on_result(fut.result())
        finally:  # stopped early (a failed journal write, Ctrl-C): nothing more is asked
            pool.shutdown(wait=False, cancel_futures=True)
            sessions.close()


# --------------------------------------------------------------------------------------------------------------
# local transformers


@dataclass
class TransformersBackend(Backend):
    """A local causal LM (a folder or a Hub id) answering through its chat template, in batches.

    Left padding so that every prompt ends where generation starts; prompts sorted by length so a batch wastes
    little padding; sampling seeded per batch so a rerun with the same plan gives the same answers.
    """

    model: str
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    batch_size: int = 8
    device: str | None = None
    dtype: str = "auto"
    revision: str | None = None
    kind: str = "transformers"

    def __post_init__(self) -> None:
        self._tok = None
        self._lm = None

    def _load(self) -> None:
        if self._lm is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = {"auto": torch.bfloat16 if device.startswith("cuda") else torch.float32,
                 "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[self.dtype]
        tok = AutoTokenizer.from_pretrained(self.model, revision=self.revision)
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        lm = AutoModelForCausalLM.from_pretrained(self.model, revision=self.revision, dtype=dtype).to(device)
        lm.eval()
        self._tok, self._lm, self._device = tok, lm, device

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The chat template applied; templates without a system role get the system text prepended to the user turn."""
        self._load()
        msgs = [dict(m) for m in messages]
        try:
            return self._tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        except Exception:  # noqa: BLE001  (jinja raises its own errors for "system role not supported")
            system = " ".join(m["content"] for m in msgs if m["role"] == "system")
            rest = [m for m in msgs if m["role"] != "system"]
            if system and rest:
                rest[0] = {"role": rest[0]["role"], "content": f"{system}\n\n{rest[0]['content']}"}
            return self._tok.apply_chat_template(rest, tokenize=False, add_generation_prompt=True)

    def generate(self, requests: Sequence[GenerationRequest], on_result: OnResult) -> None:
        if not requests:
            return
        import torch

        self._load()
        tok, lm = self._tok, self._lm
        rendered = [(self.render(r.messages), r) for r in requests]
        rendered.sort(key=lambda pr: len(pr[0]))
        sampling = self.generation.temperature > 0
        for start in range(0, len(rendered), max(1, self.batch_size)):
            batch = rendered[start : start + self.batch_size]
            try:
                enc = tok([p for p, _ in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(self._device)
                torch.manual_seed(batch[0][1].seed)
                kwargs: dict[str, Any] = {"max_new_tokens": self.generation.max_tokens, "do_sample": sampling,
                                          "pad_token_id": tok.pad_token_id}
                if sampling:
                    kwargs["temperature"] = self.generation.temperature
                    if self.generation.top_p is not None:
                        kwargs["top_p"] = self.generation.top_p
                with torch.no_grad():
                    out = lm.generate(**enc, **kwargs)
                new = out[:, enc["input_ids"].shape[1] :]
                eos = tok.eos_token_id
                for row, (_, req) in zip(new, batch):
                    text = tok.decode(row, skip_special_tokens=True).strip()
                    ids = row.tolist()
                    finish = "stop" if eos is not None and eos in ids else "length"
                    on_result(GenerationResult(req.response_id, text, None, 1, finish))
            except (RuntimeError, ValueError) as err:  # e.g. CUDA out of memory: record, keep going
                for _, req in batch:
                    on_result(GenerationResult(req.response_id, None, f"{type(err).__name__}: {err}"[:500], 1))

    def close(self) -> None:
        self._lm = None
        self._tok = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


# --------------------------------------------------------------------------------------------------------------
# controls


@dataclass
class OracleBackend(Backend):
    """A perfectly steerable control: for each (value, level) target, a pool text whose intensity is in that bin.

    Several targets: one text per target, joined. No target (``default``): a neutral-bin text of a value chosen
    from the query, standing for an unsteered answer.
    """

    pool: ExemplarPool
    model: str = "oracle"
    kind: str = "oracle"

    def answer(self, req: GenerationRequest) -> str:
        key = f"oracle|{req.query_id}|{req.sample}|{req.prompt_format}"
        if not req.targets:
            values = self.pool.values
            value = values[stable_seed(f"{key}|value") % len(values)]
            return str(self.pool.sample(value, 0, 1, key)["text"].iloc[0])
        parts = [str(self.pool.sample(v, lvl, 1, f"{key}|{v}|{lvl}")["text"].iloc[0]) for v, lvl in req.targets.items()]
        return " ".join(parts)

    def generate(self, requests: Sequence[GenerationRequest], on_result: OnResult) -> None:
        for r in requests:
            on_result(GenerationResult(r.response_id, self.answer(r), None, 1, "stop"))


@dataclass
class NullBackend(Backend):
    """An unsteerable control: the answer depends on the query and the sample only, never on the target."""

    pool: ExemplarPool
    model: str = "null"
    kind: str = "null"

    def answer(self, req: GenerationRequest) -> str:
        frame = self.pool.frame
        return str(frame["text"].iloc[stable_seed(f"null|{req.query_id}|{req.sample}") % len(frame)])

    def generate(self, requests: Sequence[GenerationRequest], on_result: OnResult) -> None:
        for r in requests:
            on_result(GenerationResult(r.response_id, self.answer(r), None, 1, "stop"))


# --------------------------------------------------------------------------------------------------------------
# construction from params


@dataclass(frozen=True)
class BackendSpec:
    """One entry of ``steer.backends`` in params.yaml.

    ``name`` labels the rows (defaults to the model); ``kind`` is one of :data:`BACKEND_KINDS`. HTTP backends need
    ``base_url`` and ``model``; transformers backends need ``model`` (a folder or Hub id).
    """

    kind: str
    name: str
    model: str
    options: Mapping[str, Any]

    @classmethod
    def from_params(cls, entry: Mapping[str, Any] | str, where: str = "steer.backends") -> BackendSpec:
        if isinstance(entry, str):  # shorthand: "oracle", "null"
            entry = {"kind": entry}
        entry = dict(entry)
        kind = str(entry.pop("kind", "") or "")
        if kind not in BACKEND_KINDS:
            raise ValueError(f"{where}: unknown backend kind {kind!r}; valid kinds: {', '.join(BACKEND_KINDS)}")
        model = str(entry.pop("model", "") or (kind if kind in ("oracle", "null") else ""))
        if not model:
            raise ValueError(f"{where}: backend of kind {kind!r} needs a 'model'")
        if kind == "openai" and not entry.get("base_url"):
            raise ValueError(f"{where}: backend {model!r} of kind 'openai' needs a 'base_url' (e.g. http://localhost:8000/v1)")
        name = str(entry.pop("name", "") or model)
        if kind in ("openai", "transformers"):  # unknown, mistyped or out-of-range options fail here, before any work
            from valueflow.params import check_options

            target = OpenAIBackend if kind == "openai" else TransformersBackend
            entry = check_options(target, entry, where=f"{where} ({name})")
        return cls(kind, name, model, entry)

    def build(self, generation: GenerationConfig, pool: ExemplarPool | None) -> Backend:
        opts = dict(self.options)
        if self.kind == "openai":
            return OpenAIBackend(model=self.model, generation=generation, **opts)
        if self.kind == "transformers":
            return TransformersBackend(model=self.model, generation=generation, **opts)
        if pool is None:
            raise ValueError(f"backend {self.name!r}: the {self.kind} control needs an exemplar pool")
        return (OracleBackend if self.kind == "oracle" else NullBackend)(pool=pool, model=self.model)
