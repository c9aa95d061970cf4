"""A local transformers causal-LM judge for GPU machines, with exactly the chat judge's prompts and parsing.

It is the chat judge (``valueflow.judges.chat.ChatJudge``) with the HTTP transport replaced by local generation:
the same ranking and rating prompts (rendered through the model's chat template), the same randomised
presentation order, the same strict permutation parsing and re-asks with the correction appended. Windows are
generated in batches (left padding, greedy decoding by default); only windows whose first answer is malformed
go through the one-at-a-time re-ask conversation, whose first turn is served from the batch's replies.

Spec: ``transformers:<model name or folder>``; options ``device``, ``dtype``, ``batch_size``, ``max_tokens``,
``temperature``, ``reasks``, ``seed``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from valueflow.judges.base import JudgeAnswer, register_judge
from valueflow.judges.chat import PROMPT_VERSION, ChatJudge, MalformedAnswer, parse_permutation


class TransformersJudge(ChatJudge):
    """Ranks (and rates) texts with a local ``AutoModelForCausalLM``.

    Args:
        model: a Hub model id or a local folder (a local folder never touches the network).
        device: torch device; default ``cuda`` when available, else ``cpu``.
        dtype: torch dtype name (``auto``, ``bfloat16``, ``float32`` ...).
        batch_size: windows generated together.
        max_tokens: new tokens per reply (the paper's evaluator used 50).
        temperature: 0 means greedy decoding (the paper's setting).
        reasks: re-asks of a malformed reply before the window is given up.
        seed: seeds presentation order and sampling.
        shuffle: randomise presentation order per window.
    """

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str = "auto",
        batch_size: int = 8,
        max_tokens: int = 50,
        temperature: float = 0.0,
        reasks: int = 2,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        # ChatJudge.__init__ would open an HTTP client; set the attributes its prompt/parse/re-ask code uses
        self.model = model
        self.device, self.dtype, self.batch_size = device, dtype, max(1, int(batch_size))
        self.max_tokens, self.temperature, self.reasks = int(max_tokens), float(temperature), int(reasks)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.concurrency, self.cache_dir = 1, None
        self.name = f"transformers:{model}@{PROMPT_VERSION}"
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "reasks": 0, "failures": 0}
        self._lm = None
        self._tok = None
        self._memo: dict[str, str] = {}

    # -- the model ------------------------------------------------------------------------------------------
    def _load(self):
        if self._lm is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            tok = AutoTokenizer.from_pretrained(self.model)
            tok.padding_side = "left"  # batched generation continues every prompt from its own last token
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            dtype = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
            lm = AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype).to(device).eval()
            self._lm, self._tok, self.device = lm, tok, device
        return self._lm, self._tok

    def _render(self, messages: list[dict]) -> str:
        _, tok = self._load()
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\n"

    def _generate(self, conversations: list[list[dict]]) -> list[str]:
        import torch

        lm, tok = self._load()
        prompts = [self._render(c) for c in conversations]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        kwargs = {"max_new_tokens": self.max_tokens, "pad_token_id": tok.pad_token_id}
        if self.temperature > 0:
            torch.manual_seed(self.seed)
            kwargs.update(do_sample=True, temperature=self.temperature)
        else:
            kwargs.update(do_sample=False)
        with torch.no_grad():
            out = lm.generate(**enc, **kwargs)
        self._count("requests", len(conversations))
        new = out[:, enc["input_ids"].shape[1] :]
        return [s.strip() for s in tok.batch_decode(new, skip_special_tokens=True)]

    def complete(self, messages: list[dict]) -> str:
        """One reply; a reply already generated in a batch for this exact conversation is reused."""
        key = self.request_hash(self._payload(messages))
        if key in self._memo:
            self._count("cache_hits")
            return self._memo.pop(key)
        return self._generate([messages])[0]

    # -- the judge protocol ---------------------------------------------------------------------------------
    def rank_windows(self, value: str, windows: Sequence[Sequence[str]]) -> list[JudgeAnswer]:
        answers: list[JudgeAnswer | None] = [None] * len(windows)
        for start in range(0, len(windows), self.batch_size):
            batch = list(range(start, min(start + self.batch_size, len(windows))))
            shown = [self._presentation(value, windows[i]) for i in batch]
            convs = [[{"role": "user", "content": self.ranking_prompt(value, [windows[i][p] for p in s])}] for i, s in zip(batch, shown)]
            replies = self._generate(convs)
            for i, s, conv, reply in zip(batch, shown, convs, replies):
                prompt_hash = self.request_hash(self._payload(conv))[:16]
                try:
                    parsed = parse_permutation(reply, len(windows[i]))
                except MalformedAnswer:
                    self._memo[self.request_hash(self._payload(conv))] = reply
                    answers[i] = self._rank_one(value, windows[i])  # re-ask conversation; first turn from memo
                    continue
                answers[i] = JudgeAnswer(tuple(int(s[p]) for p in parsed), raw=reply, prompt_hash=prompt_hash)
        return answers  # type: ignore[return-value]

    def rate(self, value: str, texts: Sequence[str]) -> list[float | None]:
        return [self._rate_one(value, t) for t in texts]

    def close(self) -> None:
        self._lm = None


@register_judge("transformers", options_of=TransformersJudge)
def _make(model: str = "", **options: object) -> TransformersJudge:
    """``transformers:<model name or folder>``."""
    if not model:
        raise ValueError("transformers judge needs a model: transformers:<model name or folder>")
    return TransformersJudge(model=model, **options)  # type: ignore[arg-type]
