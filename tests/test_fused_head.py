"""The fused scoring head against the plain log-softmax path and a float64 log-softmax, tile sizes odd
and even, GPT-2's vocabulary of 50,257 included; and the heads models describe against their own logits."""

import pytest
import torch

from lldmix_core.models.fused_head import Head, observed_logprobs, plain_logprobs

V_GPT2 = 50257


@torch.no_grad()
def _exact(h, head, y):
    """float64 reference: the whole [N × V] logits and log-softmax in double precision."""
    z = torch.nn.functional.linear(h.double(), head.weight.double(),
                                   None if head.bias is None else head.bias.double()) * head.scale
    if head.softcap:
        z = torch.tanh(z / head.softcap) * head.softcap
    return torch.log_softmax(z, dim=-1).gather(1, y[:, None]).squeeze(1)


def _rel(a, b):
    return float(((a - b).abs() / b.abs().clamp(min=1.0)).max())


def _problem(n, d, v, seed=0, w_scale=0.5, bias=True):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g)
    w = torch.randn(v, d, generator=g) * w_scale
    b = torch.randn(v, generator=g) if bias else None
    y = torch.randint(0, v, (n,), generator=g)
    return h, w, b, y


@pytest.mark.parametrize("row_block, vocab_block", [(37, 1000), (512, 1024), (7, 50257), (300, 4099), (64, 50300)])
def test_gpt2_vocabulary_matches_plain_and_float64(row_block, vocab_block):
    h, w, b, y = _problem(300, 64, V_GPT2)
    y[:4] = torch.tensor([0, V_GPT2 - 1, 999, 1000])  # the first, last and tile-boundary ids
    head = Head(w, b)
    fused = observed_logprobs(h, head, y, row_block=row_block, vocab_block=vocab_block)
    plain = plain_logprobs(h, head.logits, y, row_chunk=128)
    exact = _exact(h, head, y)
    assert fused.dtype == torch.float64 and fused.shape == (300,)
    assert _rel(fused, exact) < 1e-6  # per token, as close to the truth as float32 logits allow
    # per text (sums of 10 tokens, as the scorer stores them): the 1e-6 against the plain path
    assert _rel(fused.view(30, 10).sum(1), plain.view(30, 10).sum(1)) < 1e-6
    assert bool((fused < 0).all())


@pytest.mark.parametrize("scale, softcap", [(1.0, None), (2.5, None), (1.0, 4.0), (0.5, 30.0)])
def test_scaled_and_softcapped_heads(scale, softcap):
    h, w, b, y = _problem(100, 32, 3001, seed=1)
    head = Head(w, b, scale=scale, softcap=softcap)
    fused = observed_logprobs(h, head, y, row_block=33, vocab_block=250)
    assert _rel(fused, _exact(h, head, y)) < 1e-6
    assert _rel(fused, plain_logprobs(h, head.logits, y)) < 2e-6


def test_logits_far_apart_across_tiles_need_the_running_maximum():
    # logits of ±~500: exp without the per-tile maximum and the running rescale overflows float32, and a
    # tile whose maximum is far below the running one must not disturb the sum
    h, w, b, y = _problem(50, 16, 5000, seed=2, w_scale=30.0, bias=False)
    w[4000:] *= 0.01  # the last tiles hold only small logits
    head = Head(w)
    fused = observed_logprobs(h, head, y, row_block=7, vocab_block=999)
    exact = _exact(h, head, y)
    assert bool(torch.isfinite(fused).all())
    assert float((fused - exact).abs().max()) < 1e-3 and _rel(fused, exact) < 1e-6


def test_single_row_single_column_tiles_and_empty_input():
    h, w, b, y = _problem(9, 8, 13, seed=3)
    head = Head(w, b)
    assert _rel(observed_logprobs(h, head, y, row_block=1, vocab_block=1), _exact(h, head, y)) < 1e-6
    empty = observed_logprobs(h[:0], head, y[:0])
    assert empty.shape == (0,)


def test_bad_inputs_are_refused():
    h, w, b, y = _problem(4, 8, 10, seed=4)
    with pytest.raises(ValueError):
        observed_logprobs(h, Head(w), torch.tensor([0, 1, 2, 10]))
    with pytest.raises(ValueError):
        observed_logprobs(h[:, :5], Head(w), y)
    with pytest.raises(ValueError):
        observed_logprobs(h, Head(w), y, vocab_block=0)


def _tiny_hf(model_type: str):
    transformers = pytest.importorskip("transformers")
    common = dict(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=2, max_position_embeddings=64)
    if model_type == "gemma2":
        cfg = transformers.Gemma2Config(**common, head_dim=16, final_logit_softcapping=3.0)
        cls = transformers.Gemma2ForCausalLM
    elif model_type == "cohere":
        cfg, cls = transformers.CohereConfig(**common, logit_scale=0.25), transformers.CohereForCausalLM
    elif model_type == "granite":
        cfg, cls = transformers.GraniteConfig(**common, logits_scaling=4.0), transformers.GraniteForCausalLM
    else:
        cfg, cls = transformers.GPT2Config(vocab_size=320, n_embd=32, n_layer=1, n_head=2, n_positions=64), \
            transformers.GPT2LMHeadModel
    torch.manual_seed(0)
    module = cls(cfg).eval()
    from lldmix_core.models.hf import HFLanguageModel
    from lldmix_core.tokenizers import get_tokenizer

    return HFLanguageModel(kind="hf", module=module, tokenizer=get_tokenizer("bytes"), max_context=64)


@pytest.mark.parametrize("model_type", ["gpt2", "gemma2", "cohere", "granite"])
def test_hf_heads_reproduce_the_models_own_logits(model_type):
    lm = _tiny_hf(model_type)
    head = lm.head()
    assert head is not None
    ids = torch.randint(0, 300, (2, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        own = lm.module(input_ids=ids).logits  # the model's forward: its scaling and softcapping included
        ours = lm.logits(ids)
        assert torch.allclose(ours, own, atol=1e-5, rtol=1e-5)
        h = lm.hidden(ids).reshape(-1, 32)
        y = ids.roll(-1, dims=1).reshape(-1)
        ref = torch.log_softmax(own.double().reshape(-1, 320), -1).gather(1, y[:, None]).squeeze(1)
        assert _rel(observed_logprobs(h, head, y, row_block=7, vocab_block=100), ref) < 1e-5


def test_an_output_layer_that_is_not_linear_has_no_head():
    lm = _tiny_hf("gpt2")
    lm.module.set_output_embeddings(torch.nn.Sequential(lm.module.get_output_embeddings()))
    assert lm.head() is None
    lm2 = _tiny_hf("gpt2")
    lm2.module.config.logit_scale = 2.0  # a scaling of a model type we do not know how to apply
    assert lm2.head() is None


def test_worker_threads_do_not_change_values_and_need_no_grad_mode():
    # a trainable output layer (requires_grad) outside inference mode, as a model being trained has
    h, w, b, y = _problem(1100, 16, 700, seed=6)
    head = Head(torch.nn.Parameter(w), torch.nn.Parameter(b))
    one = observed_logprobs(h, head, y, row_block=100, threads=1)
    three = observed_logprobs(h, head, y, row_block=100, threads=3)
    assert torch.equal(one, three) and not one.requires_grad
    assert _rel(one, _exact(h, head, y)) < 1e-6
    assert torch.get_num_threads() >= 1  # the caller's thread count is left alone


def test_a_subclass_with_its_own_logits_takes_the_plain_path():
    from lldmix_core.models import NanoGPTConfig, new_nanogpt
    from lldmix_core.models.base import LanguageModel

    lm = new_nanogpt(NanoGPTConfig(vocab_size=320, block_size=16, n_layer=1, n_head=2, n_embd=16), "bytes", seed=0)
    assert lm.head() is not None and lm.head().weight is lm.module.lm_head.weight

    class Doubled(LanguageModel):
        def logits_from_hidden(self, h):
            return 2 * super().logits_from_hidden(h)

    assert Doubled(kind="nanogpt", module=lm.module, tokenizer=lm.tokenizer, max_context=16).head() is None
