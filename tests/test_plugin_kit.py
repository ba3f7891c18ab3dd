"""What plugin authors build on: ``tl_toolkit.testing``, ``PeftStrategy`` from outside, export formats, hooks."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, run_tl

from tl_toolkit import finetune, load_recipe
from tl_toolkit.testing import StubBackbone, check_plugin, registered, tiny_recipe, weights_must_fit


def _dora_example() -> Any:
    spec = importlib.util.spec_from_file_location("tl_dora", ROOT / "docs" / "examples" / "tl_dora.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DoraStrategy


def test_guide_template_and_example_tests_use_no_private_module(tmp_path: Path) -> None:
    assert run_tl("new-plugin", "kit-s", "--kind", "strategy", "--output", tmp_path).returncode == 0
    assert run_tl("new-plugin", "kit-b", "--kind", "backbone", "--output", tmp_path).returncode == 0
    files = [*tmp_path.glob("*/tests/*.py"), *tmp_path.glob("*/tl_*/*.py"), ROOT / "docs" / "writing-plugins.md",
             ROOT / "docs" / "examples" / "tl_dora.py", *(ROOT / "plugins" / "tl-bitfit").rglob("*.py")]
    assert len(files) >= 6
    private = {str(f): re.findall(r"tl_toolkit\._\w+", f.read_text()) for f in files}
    assert {f: hits for f, hits in private.items() if hits} == {}


def test_dora_plugin_on_the_base_trains_saves_and_reloads_with_plain_peft(tmp_path: Path) -> None:
    import timm
    import torch
    from peft import PeftModel

    from tl_toolkit import load_model_dir

    dora = _dora_example()
    check_plugin("strategy", dora)
    assert len((ROOT / "docs" / "examples" / "tl_dora.py").read_text().splitlines()) <= 40
    with registered("strategy", "dora", dora):
        result = finetune(tiny_recipe(tmp_path / "run", strategy="dora", weight_decay=0.5), quiet=True)
        loaded = load_model_dir(result.output_dir)
    model_dir = result.model_dir
    assert json.loads((model_dir / "adapter_config.json").read_text())["use_dora"] is True
    with weights_must_fit("plain timm + peft"):
        plain = PeftModel.from_pretrained(timm.create_model(f"local-dir:{model_dir / 'base'}", pretrained=True),
                                          str(model_dir)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), loaded.model(x))
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["plugins"]["strategy"] == {"name": "dora", "dist": "test", "version": "0"}
    assert manifest["plugins"]["backbone"]["dist"] == "tl-toolkit"


def test_registered_restores_the_registry_and_checks_the_contract() -> None:
    from tl_toolkit import PluginError, Strategy
    from tl_toolkit.testing import load_plugin

    class Broken(Strategy):
        def apply(self, model, backbone, extra):  # type: ignore[override]
            return model

    with pytest.raises(AssertionError, match="does not match the contract"):
        check_plugin("strategy", Broken)
    with registered("strategy", "lora", _dora_example()):
        from tl_toolkit._registry import registry

        assert registry.get("strategy", "lora").__name__ == "DoraStrategy"
    assert registry.get("strategy", "lora").__name__ == "LoraStrategy"
    assert load_plugin("strategy", "ia3").__name__ == "IA3Strategy"
    with pytest.raises(PluginError):
        load_plugin("strategy", "dora")


def test_stub_backbone_unit_tests_a_peft_strategy() -> None:
    from collections import OrderedDict

    import torch
    from torch import nn

    from tl_toolkit.testing import load_plugin

    model = nn.Sequential(OrderedDict(body=nn.Linear(4, 8), act=nn.ReLU(), head=nn.Linear(8, 2)))
    wrapped = load_plugin("strategy", "lokr")({"r": 2}).apply(model, StubBackbone(head=["head"], targets=["body"]))
    trainable = {n for n, p in wrapped.named_parameters() if p.requires_grad}
    assert any("lokr" in n for n in trainable) and any(".head." in n for n in trainable)
    assert wrapped(torch.randn(3, 4)).shape == (3, 2)


def test_plugin_switch_by_override_uses_exactly_the_new_options(tmp_path: Path) -> None:
    import yaml

    recipe = tmp_path / "r.yaml"
    data = tiny_recipe(tmp_path / "run", strategy="lora")
    data["strategy"]["options"] = {"r": 4, "alpha": 8}
    recipe.write_text(yaml.safe_dump(data))
    switched = load_recipe(recipe, ["strategy.plugin=ia3", "strategy.options.feedforward_modules=[]"])
    assert switched.strategy.plugin == "ia3" and switched.strategy.options == {"feedforward_modules": []}
    same = load_recipe(recipe, ["strategy.plugin=lora", "strategy.options.r=16"])
    assert same.strategy.options == {"r": 16, "alpha": 8}  # the same plugin: options merge as before
    proc = run_tl("validate", recipe, "strategy.plugin=ia3", "strategy.options.feedforward_modules=[]")
    assert proc.returncode == 0, proc.stderr


def test_export_takes_a_format_the_backbone_declares(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from tl_toolkit._cli import main
    from tl_toolkit.testing import load_plugin

    resnet = load_plugin("backbone", "resnet")

    class NpzResNet(resnet):  # type: ignore[misc, valid-type]
        export_formats = ("timm", "onnx", "weights-only")

        def export(self, model, directory, fmt, task):  # type: ignore[no-untyped-def]
            if fmt != "weights-only":
                return super().export(model, directory, fmt, task)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "w.safetensors"))
            return {"tensors": len(model.state_dict())}

    with registered("backbone", "resnet-w", NpzResNet):
        run = finetune(tiny_recipe(tmp_path / "run", strategy="head-only", backbone="resnet-w"), quiet=True)
        assert main(["export", str(run.output_dir), "--format", "weights-only"]) == 0
        assert json.loads((run.output_dir / "export" / "weights-only" / "export.json").read_text())["tensors"] > 0
        assert main(["export", str(run.output_dir), "--format", "tflite"]) == 2


def test_validate_runs_the_backbones_model_check(tmp_path: Path) -> None:
    import yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "run", model="resnet1B")))
    proc = run_tl("validate", recipe)
    assert proc.returncode == 2 and "backbone.model: unknown timm model 'resnet1B'" in proc.stderr
    assert "Did you mean 'resnet18'" in proc.stderr
