"""Models for the lessons the embedded Gemma cannot show by itself, made offline in a few seconds.

    python docs/examples/course_models.py /tmp/llmscope-course

writes four folders there:

- ``phi3``, ``mixtral``: the configs of Phi-3 Mini 4K and Mixtral 8x7B (transformers' own defaults for
  ``Phi3Config`` and ``MixtralConfig`` are those models; Mixtral's context set to its 32,768), no weights: ``llmscope inspect`` and
  ``llmscope memory`` read a config alone.
- ``bert-tiny``: a 2-layer BERT with random weights and a WordPiece vocabulary trained on the
  sentences below: a bidirectional model, to see its attention as a square and its ``[MASK]``.
- ``mixtral-tiny``: a 2-layer Mixtral-shaped model (8 experts, 2 per token) with random weights and a
  byte-level BPE vocabulary: to watch a router choose experts.

Random weights compute real shapes, masks and routing, not meaning: the predictions are noise.
"""

from __future__ import annotations

import sys
from pathlib import Path

SENTENCES = [
    "The cat sat on the mat because it was tired.",
    "The animal did not cross the street because it was too tired.",
    "Paris is the capital of France.",
    "Once upon a time there was a king, a queen, a man and a woman.",
    "I sat on the river bank and then I paid at the bank.",
]


def _wordpiece():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=200, special_tokens=special,
                                                                         show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[
        ("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def _byte_bpe():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")


def main(out: Path) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM, MixtralConfig, MixtralForCausalLM, Phi3Config

    torch.manual_seed(0)
    Phi3Config().save_pretrained(out / "phi3")
    MixtralConfig(max_position_embeddings=32768).save_pretrained(out / "mixtral")  # 8x7B's context
    bert = _wordpiece()
    config = BertConfig(vocab_size=len(bert), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64)
    BertForMaskedLM(config).save_pretrained(out / "bert-tiny")
    bert.save_pretrained(out / "bert-tiny")
    bpe = _byte_bpe()
    config = MixtralConfig(vocab_size=len(bpe), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2,
                           max_position_embeddings=256, bos_token_id=bpe.bos_token_id, eos_token_id=bpe.eos_token_id)
    MixtralForCausalLM(config).save_pretrained(out / "mixtral-tiny")
    bpe.save_pretrained(out / "mixtral-tiny")
    print(f"wrote phi3, mixtral (configs), bert-tiny, mixtral-tiny (random weights) under {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "llmscope-course"))
