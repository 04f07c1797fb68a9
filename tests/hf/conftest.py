from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")


def tiny_gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=64, n_positions=32, n_embd=16, n_layer=4, n_head=2, attn_implementation="eager"
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


def tiny_llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=32,
        attn_implementation="eager",
    )
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.fixture(params=["gpt2", "llama"])
def model(request):
    return {"gpt2": tiny_gpt2, "llama": tiny_llama}[request.param]()


@pytest.fixture
def batch():
    """Three rows, the second right-padded after 6 tokens."""
    ids = torch.randint(1, 64, (3, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """A tiny GPT-2 and a character-level tokenizer saved with save_pretrained."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    chars = list("0123456789+-*=() \nabcdefghijklmnopqrstuvwxyz.,")
    vocab = {"<unk>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=len(vocab), n_positions=256, n_embd=16, n_layer=4, n_head=2
    )
    net = transformers.GPT2LMHeadModel(cfg)
    out = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    net.save_pretrained(out)
    fast.save_pretrained(out)
    return out
