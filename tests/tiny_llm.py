"""A tiny Qwen2-architecture causal language model, built here with no download: a
byte-level BPE tokenizer trained on a few sentences (ChatML specials and template) and
seeded random weights. Run with the interpreter of the vLLM environment, which has
transformers, tokenizers and torch:

    .venv-vllm/bin/python tests/tiny_llm.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

CORPUS = [
    "The bank approved the loan because the applicant had a long credit history.",
    "The loan was refused: the income was low and the debts were high.",
    "Paris is the capital of France. Rome is the capital of Italy.",
    "Explain why the model answered as it did, word by word.",
    "A good answer names the reasons, and a bad answer hides them.",
    "What is the capital of France? The capital of France is Paris.",
    "Regulated teams must say why a model decided, and show the evidence.",
    "The weather was cold, so the river froze and the children skated on it.",
]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(CORPUS * 4, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIALS[1:],
    )
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=512,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
    )
    model = Qwen2ForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
