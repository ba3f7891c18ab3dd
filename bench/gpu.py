"""GPU throughput and model FLOP utilisation (MFU): tl_toolkit against its peers, same settings.

Two workloads, each run through tl_toolkit's engine (``fit()``, exactly as
``tl run`` trains) and through its usual peer, side by side in one process:

* bert-base (random init from its config, sequence 128, synthetic tokens) vs a
  ``transformers.Trainer`` run;
* resnet50 (224 px, synthetic images) vs a plain timm + accelerate loop.

Both sides get the same batch, bf16 autocast (through accelerate on ours,
``bf16=True`` on the Trainer), ``torch.compile`` when ``--compile``, fused
AdamW, pinned-memory loaders. The first ``--warmup`` steps (compilation,
allocator growth) are left out of each timing.

MFU = model FLOPs per second / the device's peak dense bf16 FLOP/s, with model
FLOPs = 6 x (non-embedding) parameters x tokens for BERT and 3 x forward FLOPs (counted by
``FlopCounterMode``) for ResNet. On CPU the peak is a measured fp32 matmul,
so ``--tiny`` (small models, a few steps) exercises the whole path without a GPU.

Usage: python -m bench.gpu [--tiny] [--steps 60] [--warmup 15] [--compile/--no-compile] [--profile]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._common import bert_architecture_dir, table

#: Peak dense bf16 tensor-core FLOP/s by device name (vendor data sheets, without sparsity).
PEAK_BF16 = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100": 989e12,
             "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def device_peak(device: Any) -> tuple[float, str]:
    """The device's peak FLOP/s and where the figure comes from."""
    import torch

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in PEAK_BF16.items():
            if key in name:
                return peak, f"{name}: {peak / 1e12:.0f} TFLOP/s bf16 (data sheet)"
        raise SystemExit(f"no peak FLOP/s known for {name!r}; add it to PEAK_BF16 in bench/gpu.py")
    from bench.efficiency import matmul_flops_per_second

    peak = matmul_flops_per_second(2048, 10)
    return peak, f"CPU: {peak / 1e9:.1f} GFLOP/s measured fp32 matmul (fastest of 10)"


class _Synthetic:
    """A map-style dataset of random examples drawn once (no decoding cost on either side)."""

    def __init__(self, kind: str, n: int, size: int, vocab: int, labels: int = 10) -> None:
        import torch

        g = torch.Generator().manual_seed(0)
        self.labels = torch.randint(0, labels, (n,), generator=g)
        if kind == "text":
            self.inputs = {"input_ids": torch.randint(1000, vocab, (n, size), generator=g),
                           "attention_mask": torch.ones(n, size, dtype=torch.long)}
        else:
            self.inputs = {"pixel_values": torch.randn(n, 3, size, size, generator=g)}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.inputs.items()}, "labels": self.labels[i]}


def _collate(examples: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}


class _Workload:
    def __init__(self, args: argparse.Namespace, kind: str) -> None:
        import torch

        self.kind, self.args = kind, args
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.precision = "bf16" if self.device.type == "cuda" else "no"
        if kind == "bert":
            self.batch, self.size = (8, 32) if args.tiny else (args.bert_batch, 128)
            self.model_name = "bert-tiny" if args.tiny else "bert-base"
        else:
            self.batch, self.size = (8, 64) if args.tiny else (args.resnet_batch, 224)
            self.model_name = "resnet18" if args.tiny else "resnet50"
        self.n = self.batch * (args.steps + args.warmup)

    def model_dir(self, root: Path) -> str:
        """What the recipe's ``backbone.model`` names: a timm name, or a directory with a BERT config.

        The BERT directory holds bert-base's architecture (or a tiny one), built offline.
        """
        if self.kind != "bert":
            return self.model_name
        tiny = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        return bert_architecture_dir(root, **(tiny if self.args.tiny else {}))

    def build(self, model: str) -> Any:
        """A freshly initialised model for the peers (the same seed and architecture as tl_toolkit's)."""
        import torch

        torch.manual_seed(0)
        if self.kind == "bert":
            from transformers import AutoConfig, AutoModelForSequenceClassification

            config = AutoConfig.from_pretrained(model, num_labels=10, attn_implementation="sdpa")
            return AutoModelForSequenceClassification.from_config(config)
        import timm

        return timm.create_model(model, num_classes=10)

    def dataset(self, model: Any) -> _Synthetic:
        vocab = model.config.vocab_size if self.kind == "bert" else 0
        return _Synthetic("text" if self.kind == "bert" else "image", self.n, self.size, vocab)

    def model_flops_per_step(self, model: Any) -> float:
        """6 x non-embedding params x tokens (BERT) or 3 x counted forward FLOPs (ResNet), for one batch."""
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        if self.kind == "bert":
            # Non-embedding parameters: a lookup costs no multiply-adds (the usual convention for 6 N T).
            embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))
            return 6.0 * (sum(p.numel() for p in model.parameters()) - embedding) * self.batch * self.size
        x = torch.randn(self.batch, 3, self.size, self.size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        return 3.0 * counter.get_total_flops()

    # -- the sides -----------------------------------------------------------

    def tl_toolkit(self) -> float:
        """Seconds per step through tl_toolkit's engine (the recipe a user would write for this run)."""
        import json

        import torch

        from tl_toolkit import Recipe, Task
        from tl_toolkit._engine import fit, make_accelerator
        from tl_toolkit._registry import registry

        plugin = "bert" if self.kind == "bert" else "resnet"
        with tempfile.TemporaryDirectory() as out:
            recipe = Recipe.model_validate({
                "name": f"gpu-{self.kind}", "seed": 0,
                "backbone": {"plugin": plugin, "model": self.model_dir(Path(out) / "base"), "pretrained": False},
                "data": {"format": "csv" if self.kind == "bert" else "imagefolder", "train": "-"},
                "strategy": {"plugin": "full"},
                "train": {"epochs": 1, "batch_size": self.batch, "lr": 1e-4, "mixed_precision": self.precision,
                          "compile": self.args.compile, "num_workers": self.args.workers, "log_every_steps": 1,
                          "max_grad_norm": None, "group_by_length": False},
            })
            backbone = registry.get("backbone", plugin)(recipe.backbone, recipe.data)
            torch.manual_seed(0)
            model = backbone.build(Task([str(i) for i in range(10)]))
            backbone.collate = _collate  # the synthetic examples are tensors already: no tokenizer or transform
            ds = self.dataset(model)
            accelerator = make_accelerator(recipe)
            strategy = registry.get("strategy", "full")(recipe.strategy.options)
            model = strategy.apply(model, backbone)
            fit(recipe, backbone, strategy, model, ds, _Head(ds, self.batch), Path(out), accelerator, quiet=True)
            rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
        times = [r["train_seconds"] for r in rows if r["kind"] == "train"]
        return (times[-1] - times[self.args.warmup - 1]) / (len(times) - self.args.warmup)

    def peer(self) -> float:
        return self._trainer() if self.kind == "bert" else self._plain_loop()

    def _trainer(self) -> float:
        """Seconds per step of a ``transformers.Trainer`` run with the same settings."""
        from transformers import Trainer, TrainerCallback, TrainingArguments

        stamps: list[float] = []

        class _Clock(TrainerCallback):
            def on_step_end(self, *_: Any, **__: Any) -> None:
                stamps.append(time.perf_counter())

        cuda = self.device.type == "cuda"
        with tempfile.TemporaryDirectory() as out:
            model = self.build(self.model_dir(Path(out) / "base"))
            targs = TrainingArguments(
                output_dir=out, per_device_train_batch_size=self.batch, learning_rate=1e-4, max_steps=self.n // self.batch,
                bf16=cuda, torch_compile=self.args.compile, optim="adamw_torch_fused",
                dataloader_num_workers=self.args.workers, dataloader_pin_memory=cuda, max_grad_norm=0.0,
                logging_strategy="no", save_strategy="no", report_to=[], use_cpu=not cuda, disable_tqdm=True,
                seed=0,
            )
            Trainer(model=model, args=targs, train_dataset=self.dataset(model), data_collator=_collate,
                    callbacks=[_Clock()]).train()
        return _per_step(stamps, self.args.warmup)

    def _plain_loop(self) -> float:
        """Seconds per step of the loop a timm user writes with accelerate: bf16, channels_last, fused AdamW."""
        import torch
        import torch.nn.functional as F
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState
        from accelerate.utils import TorchDynamoPlugin
        from torch.utils.data import DataLoader

        AcceleratorState._reset_state()
        accelerator = Accelerator(mixed_precision=self.precision,
                                  dynamo_plugin=TorchDynamoPlugin(backend="inductor" if self.args.compile else "no"))
        model = self.build(self.model_name)
        cuda = self.device.type == "cuda"
        if cuda:
            model = model.to(memory_format=torch.channels_last)
            torch.backends.cudnn.benchmark = True  # as timm's train.py does
        loader = DataLoader(self.dataset(model), batch_size=self.batch, shuffle=True, collate_fn=_collate,
                            num_workers=self.args.workers, pin_memory=cuda)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        model.train()
        stamps = []
        for batch in loader:
            pixels = batch["pixel_values"].contiguous(memory_format=torch.channels_last) if cuda else batch["pixel_values"]
            loss = F.cross_entropy(model(pixels), batch["labels"])
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss.item()  # one sync per step, as tl_toolkit's loop and the Trainer's logging do
            stamps.append(time.perf_counter())
        return _per_step(stamps, self.args.warmup)


class _Head:
    """A two-batch evaluation set: fit() evaluates once at the end; that is not what is measured here."""

    def __init__(self, ds: _Synthetic, batch: int) -> None:
        self.ds, self.n = ds, min(len(ds), 2 * batch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.ds[i]


def _per_step(stamps: list[float], warmup: int) -> float:
    return (stamps[-1] - stamps[warmup - 1]) / (len(stamps) - warmup)


def profile(args: argparse.Namespace) -> None:
    """Where tl_toolkit's step time goes on the device: kernel time per step against wall time per step.

    A kernel total close to the wall time means the model's arithmetic and memory
    traffic set the pace; a gap means the device waits on the host (launches, syncs, data).
    """
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for kind in args.workloads.split(","):
        work = _Workload(args, kind)
        with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
            wall = work.tl_toolkit()
        events = prof.key_averages()
        steps = args.steps + args.warmup
        # Copies are listed apart: the end-of-run checkpoint's device-to-host copies are not step time.
        copies = sum(e.self_device_time_total for e in events if e.key.startswith(("Memcpy", "Memset")))
        kernels = sum(e.self_device_time_total for e in events) - copies
        print(f"\n{work.model_name} b{work.batch}: wall {wall * 1000:.1f} ms/step (profiled); kernels "
              f"{kernels / 1000 / steps:.1f} ms/step averaged over all {steps} steps; copies {copies / 1000:.0f} ms "
              f"in all")
        print(events.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=70))


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    peak, where = device_peak(device)
    print(f"peak: {where}")
    rows = []
    for kind in args.workloads.split(","):
        work = _Workload(args, kind)
        with tempfile.TemporaryDirectory() as tmp:
            flops = work.model_flops_per_step(work.build(work.model_dir(Path(tmp))))
        peer_name = "transformers.Trainer" if kind == "bert" else "timm + accelerate loop"
        seconds = {"tl_toolkit": [], "peer": []}  # type: dict[str, list[float]]
        for _ in range(args.repeats):  # alternate, so drift in the device's state falls on both
            seconds["tl_toolkit"].append(work.tl_toolkit())
            seconds["peer"].append(work.peer())
        for side, name in (("tl_toolkit", "tl_toolkit"), ("peer", peer_name)):
            step = sorted(seconds[side])[len(seconds[side]) // 2]
            rows.append({"workload": f"{work.model_name} b{work.batch} x{work.size}", "side": name,
                         "step_ms": step * 1000, "samples_s": work.batch / step, "mfu": flops / step / peak})
        rows[-2]["vs_peer"] = rows[-1]["step_ms"] / rows[-2]["step_ms"]
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="small models and sizes: the CPU check of this path")
    parser.add_argument("--workloads", default="bert,resnet")
    parser.add_argument("--steps", type=int, default=60, help="measured steps per side")
    parser.add_argument("--warmup", type=int, default=15, help="steps left out of the timing")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--bert-batch", type=int, default=128)
    parser.add_argument("--resnet-batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--profile", action="store_true",
                        help="print tl_toolkit's device time per step and its top kernels instead of the comparison")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile both sides (default: on with a GPU)")
    args = parser.parse_args(argv)
    import torch

    from tl_toolkit._quiet import quiet_libraries

    quiet_libraries(True)
    if args.compile is None:
        args.compile = torch.cuda.is_available()
    if args.tiny:
        args.workers = 0
    if args.profile:
        profile(args)
        return []
    rows = run(args)
    print(table(rows, [("workload", "workload", ""), ("side", "side", ""), ("step_ms", "step ms", ".1f"),
                       ("samples_s", "samples/s", ".1f"), ("mfu", "MFU", ".1%"), ("vs_peer", "vs peer", ".2f")]))
    return rows


if __name__ == "__main__":
    main()
