"""The fast CPU dropout and the BERT attention that uses it: same distribution and gradients as dropout, less memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tl_toolkit import cpu_dropout
from tl_toolkit._dropout import FastDropout, use_fast_dropout


def _scale(p: float) -> float:
    return 65536 / round((1 - p) * 65536)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drops_a_share_p_and_keeps_the_expectation(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(1_000_000)
    y = cpu_dropout(x, p)
    kept = y != 0
    assert float(kept.float().mean()) == pytest.approx(1 - p, abs=0.002)  # 4 standard deviations at p = 0.5
    assert torch.equal(y[kept], torch.full_like(y[kept], _scale(p)))
    assert float(y.mean()) == pytest.approx(1.0, abs=0.01)
    # the mask is not one lane of the 64-bit draw repeated: neighbours are independent
    pairs = kept.view(-1, 4)
    assert float((pairs[:, 0] & pairs[:, 1]).float().mean()) == pytest.approx((1 - p) ** 2, abs=0.003)


def test_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 300, requires_grad=True)
    y = cpu_dropout(x, 0.2)
    y.backward(torch.full_like(y, 2.0))
    assert x.grad is not None
    assert torch.equal(x.grad != 0, y != 0)
    assert torch.allclose(x.grad[y != 0], torch.tensor(2.0 * _scale(0.2)))


def test_reproducible_from_the_seed() -> None:
    x = torch.randn(10_000)
    torch.manual_seed(3)
    a = cpu_dropout(x, 0.3)
    torch.manual_seed(3)
    b = cpu_dropout(x, 0.3)
    c = cpu_dropout(x, 0.3)
    assert torch.equal(a, b)
    assert not torch.equal(b, c)


def test_no_dropout_when_off_and_plain_dropout_at_p_one() -> None:
    x = torch.randn(100)
    assert cpu_dropout(x, 0.5, training=False) is x
    assert cpu_dropout(x, 0.0) is x
    assert torch.equal(cpu_dropout(x, 1.0), torch.zeros(100))


def test_keeps_a_bool_mask_for_backward() -> None:
    # A quarter of the memory of PyTorch's CPU dropout, which keeps a float tensor of the input's size.
    x = torch.randn(32, 128, 384, requires_grad=True)
    kept: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        cpu_dropout(x, 0.1)
    assert [(t.dtype, t.shape) for t in kept] == [(torch.bool, x.shape)]


def test_use_fast_dropout_changes_plain_dropouts_only() -> None:
    class Alpha(torch.nn.Dropout):
        pass

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.3), Alpha(0.2), torch.nn.Dropout(0.1))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = model[1]
    assert use_fast_dropout(model) == 2
    assert model[1] is first and type(first) is FastDropout and first.p == 0.3
    assert type(model[2]) is Alpha
    assert model.state_dict().keys() == state.keys()
    model.eval()
    x = torch.randn(3, 4)
    assert torch.equal(model(x), model[0](x))


def test_bert_attention_is_dropout_of_softmax(tiny_bert_dir: Path, tmp_path: Path) -> None:
    # The tl_sdpa attention: in training on the CPU, softmax(q k^T / sqrt(d)) with the fast dropout, times v;
    # without dropout, transformers' own SDPA, output for output. The name never reaches a saved config.
    from tl_toolkit_plugins.bert_attention import attention
    from transformers import AutoModel
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from tl_toolkit import BackboneConfig, DataConfig, Task
    from tl_toolkit._registry import registry

    backbone = registry.get("backbone", "bert")(BackboneConfig(plugin="bert", model=str(tiny_bert_dir)),
                                                DataConfig(format="csv", train="-"))
    model = backbone.build(Task(["a", "b"]))
    assert model.config._attn_implementation == "tl_sdpa"

    module = next(m for m in model.modules() if type(m).__name__.endswith("SelfAttention"))
    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool)
    mask[0, :, :, 4:] = False  # the first sequence has two padding tokens
    # train.cpu_dropout: false leaves the model's nn.Dropout layers: PyTorch's SDPA and its dropout, draw for draw
    torch.manual_seed(5)
    torch_out, _ = attention(module, q, k, v, mask, dropout=0.25, scaling=8**-0.5)
    torch.manual_seed(5)
    torch_reference, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.25, scaling=8**-0.5)
    assert torch.equal(torch_out, torch_reference)

    use_fast_dropout(model)  # as the engine prepares a model (train.cpu_dropout: true)
    torch.manual_seed(5)
    out, _ = attention(module, q, k, v, mask, dropout=0.25, scaling=8**-0.5)
    torch.manual_seed(5)
    probs = torch.softmax((q @ k.transpose(-1, -2) / 8**0.5).masked_fill(~mask, float("-inf")), dim=-1)
    expected = (cpu_dropout(probs, 0.25) @ v).transpose(1, 2)
    assert torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(out, (probs @ v).transpose(1, 2), atol=1e-3)  # dropout did drop

    plain, _ = attention(module, q, k, v, mask, dropout=0.0, scaling=8**-0.5)
    reference, _ = sdpa_attention_forward(module, q, k, v, mask, dropout=0.0, scaling=8**-0.5)
    assert torch.equal(plain, reference)

    model.save_pretrained(tmp_path / "saved")
    assert "tl_sdpa" not in json.dumps(json.loads((tmp_path / "saved" / "config.json").read_text()))
    assert AutoModel.from_pretrained(tmp_path / "saved").config._attn_implementation == "sdpa"
