"""The ``tl`` command line.

Exit codes: 0 success, 2 a problem the user can fix (printed one per line,
no traceback), 1 an internal error (its traceback, also written to a log file
whose path is printed). ``tl --help`` and
``tl list`` never import torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._cli_parser import build_parser
from ._errors import UserError
from ._quiet import quiet_libraries

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tl`` and ``python -m tl_toolkit``; returns the exit code."""
    import os

    for name in ("stdout", "stderr"):  # started with the stream closed (`tl predict ... >&-`): writes go nowhere
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `tl run R --resume train.epochs=1`: overrides may also follow an option.
    if extra and hasattr(args, "overrides") and not any(e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None and not args.version:
        parser.print_help()
        return 2
    try:
        if args.version:
            import tl_toolkit

            print(f"tl_toolkit {tl_toolkit.__version__}", flush=True)
            return 0
        return int(_COMMANDS[args.command](args) or 0)
    except BrokenPipeError:  # `tl list | head -2`: the reader is gone, which is no error of ours
        return _stdout_closed()
    except UserError as e:
        for problem in e.problems:
            print(f"tl {args.command}: error: {problem}", file=sys.stderr)
        return 2
    except OSError as e:
        from ._errors import os_error_message, storage_error

        full = storage_error(e)
        if e.filename is None and full is None:
            return _internal_error(args.command, argv)
        # A user's file or folder that cannot be read or written, or a full disk: the path and the cause.
        print(f"tl {args.command}: error: {os_error_message(full or e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        notes = getattr(e, "__notes__", [])
        then = notes[0] if notes else _INTERRUPTED.get(args.command, "nothing was written")
        print(f"tl {args.command}: interrupted; {then}", file=sys.stderr)
        return 130
    except Exception as e:
        from ._errors import os_error_message, storage_error

        full = storage_error(e)  # a library's own error for a full disk (safetensors, torch.save)
        if full is not None:
            print(f"tl {args.command}: error: {os_error_message(full)}", file=sys.stderr)
            return 2
        return _internal_error(args.command, argv)


def _internal_error(command: str, argv: Sequence[str] | None) -> int:
    from ._crash import report_internal_error

    report_internal_error(f"tl {command}", list(argv) if argv is not None else sys.argv[1:])
    return 1


#: What a Ctrl-C leaves, by verb (the others write their files only once they are complete).
_INTERRUPTED = {"run": "`tl run RECIPE --resume` continues it", "sweep": "`tl sweep RECIPE --resume` continues it",
                "compare": "run the same command again to continue: its finished runs are read back"}


def _stdout_closed() -> int:
    """End quietly once standard output is closed: later writes (and the final flush) go nowhere."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


def _at_least_one(option: str, value: int) -> None:
    if value < 1:
        raise UserError(f"{option}: must be at least 1, got {value}")


def _output_problems(option: str, path: str | None) -> None:
    from ._paths import output_dir_problems

    problems = output_dir_problems(option, path) if path else []
    if problems:
        raise UserError(problems)


def _cmd_run(args: argparse.Namespace) -> int:
    from ._pipeline import finetune

    if args.from_manifest:
        return _run_from_manifest(args)
    if args.recipe is None:
        raise UserError("run: give a recipe file, or --from-manifest MODEL_DIR to re-run a finished run")
    finetune(args.recipe, args.overrides, resume=args.resume, overwrite=args.overwrite, quiet=args.quiet)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ._compare import compare
    from ._sample_efficiency import parse_seeds, parse_sizes, sample_efficiency
    from ._validate import validate

    _output_problems("--output", args.output)
    # The flags first: a typo in them is found without loading the recipe's model.
    flag_sizes = parse_sizes(args.train_sizes) if args.train_sizes else None
    flag_seeds = parse_seeds(args.seeds) if args.seeds else None
    recipe = validate(args.recipe, args.overrides)
    quiet_libraries(args.quiet)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()] if args.strategies is not None else None
    if strategies == []:
        raise UserError(f"--strategies: {args.strategies!r} names no strategy; give a comma-separated list, "
                        f"e.g. head-only,lora,full,scratch")
    output = Path(args.output) if args.output else None
    sizes: list[int | str] = flag_sizes or list(recipe.compare.train_sizes)
    if sizes:
        seeds = flag_seeds or recipe.compare.seeds
        sample_efficiency(recipe, strategies, sizes, seeds, output, quiet=args.quiet)
        return 0
    if flag_seeds:
        raise UserError("--seeds: seeds apply to a sample-efficiency grid; give --train-sizes too")
    compare(recipe, strategies, output, quiet=args.quiet)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ._sweep import sweep

    quiet_libraries(True)  # trials run quietly; the sweep prints a line per epoch and per trial
    sweep(args.recipe, args.overrides, trials=args.trials, resume=args.resume, overwrite=args.overwrite,
          backend=args.backend, parallel=args.parallel, quiet=args.quiet)
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from ._plan import format_plan, plan
    from ._validate import validate

    _at_least_one("--steps", args.steps)
    recipe = validate(args.recipe, args.overrides)
    quiet_libraries(True)
    print(format_plan(plan(recipe, steps=args.steps)))
    return 0


def _run_from_manifest(args: argparse.Namespace) -> int:
    """Re-run the recipe a manifest holds; say when the data or the starting weights are not the ones it pinned."""
    from ._modelcard import read_manifest
    from ._pipeline import finetune

    if args.recipe is not None:
        # argparse put the first override in the recipe slot.
        if "=" not in args.recipe:
            raise UserError(f"run: give either a recipe ({args.recipe}) or --from-manifest, not both")
        args.overrides = [args.recipe, *args.overrides]
    before = read_manifest(args.from_manifest)
    result = finetune(before["recipe"], args.overrides, resume=args.resume, overwrite=args.overwrite,
                      quiet=args.quiet)
    after = read_manifest(result.model_dir)
    for section, key in (("data", "train_fingerprint"), ("data", "eval_fingerprint"),
                         ("backbone", "start_weights_sha256"), ("recipe_sha256", None)):
        old, new = (before.get(section), after.get(section)) if key is None else (
            before.get(section, {}).get(key), after.get(section, {}).get(key))
        if old != new:
            print(f"tl run: note: {section}{'.' + key if key else ''} differs from the manifest's "
                  f"({old} -> {new})", file=sys.stderr)
    for kind, was in before.get("plugins", {}).items():  # manifests from before plugin versions have none
        now = after.get("plugins", {}).get(kind, {})
        if (was.get("dist"), was.get("version")) != (now.get("dist"), now.get("version")):
            print(f"tl run: note: {kind} plugin {was.get('name')!r} was {was.get('dist')} {was.get('version')}, "
                  f"now {now.get('dist')} {now.get('version')}", file=sys.stderr)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from ._inherit import source_options_preview, taken_line
    from ._validate import validate

    recipe = validate(args.recipe, args.overrides)
    print(f"{args.recipe}: ok ({recipe.backbone.plugin} + {recipe.strategy.plugin}, output_dir {recipe.output_dir})")
    taken = source_options_preview(recipe)
    if taken:
        print(f"{args.recipe}: {taken_line(taken)}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ._registry import GROUPS, registry

    infos = registry.all()
    if args.json:
        rows = [
            {"kind": i.kind, "group": GROUPS[i.kind], "name": i.name, "dist": i.dist, "version": i.version,
             "value": i.value, "description": i.description, "error": i.error}
            for i in infos
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for kind, group in GROUPS.items():
        print(f"{kind} plugins ({group}):")
        ok = [i for i in infos if i.kind == kind and not i.error]
        width = max((len(i.name) for i in ok), default=0)
        for info in ok:
            desc = f"  {info.description}" if info.description else ""
            print(f"  {info.name:<{width}}  {info.dist} {info.version}{desc}")
        if not ok:
            print("  (none)")
    if args.verbose:
        chosen = [i for i in infos if i.name == args.verbose]
        if not chosen:
            from ._errors import suggest

            raise UserError(f"--verbose: no plugin named {args.verbose!r}."
                            f"{suggest(args.verbose, [i.name for i in infos])}")
        for info in chosen:
            print(f"\n{info.kind} {info.name} ({info.dist} {info.version}, {info.value})")
            doc = (getattr(info.obj, "__doc__", None) or "").strip()
            if doc:
                print("  " + doc.splitlines()[0])
            if not info.error:
                _print_options(info)
    failed = [i for i in infos if i.error]
    if failed:
        print("failed plugins:")
        for info in failed:
            print(f"  {info.kind} {info.name} ({info.dist} {info.version}): {info.error}")
    return 0


def _cmd_new_plugin(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ._scaffold import new_plugin

    _output_problems("--output", args.output)
    root = new_plugin(args.name, args.kind, Path(args.output))
    print(f"wrote {root}/: pip install -e {root} && pytest {root}/tests, then `tl list` shows {args.name!r}")
    return 0


def _print_options(info: Any) -> None:
    model = getattr(info.obj, "options_model", None)
    key = {"strategy": "strategy.options", "task": "data.task_options"}.get(info.kind, "backbone.options")
    if model is None:
        print(f"  {key}: not declared (any mapping is accepted)")
        return
    print(f"  {key}:")
    for field_name, field in model.model_fields.items():
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)!r}"
        desc = f"  {field.description}" if field.description else ""
        ann = field.annotation
        kind = ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")
        print(f"    {field_name}: {kind} ({default}){desc}")


def _cmd_predict(args: argparse.Namespace) -> int:
    quiet_libraries(True)
    from ._input_files import check_output_file, check_predict_inputs
    from ._predict import predict

    _at_least_one("--top-k", args.top_k)
    _at_least_one("--batch-size", args.batch_size)
    if args.output:
        check_output_file(args.output, args.run_dir, args.inputs)
    check_predict_inputs(args.run_dir, args.inputs, args.column)
    rows = predict(args.run_dir, args.inputs, column=args.column, batch_size=args.batch_size, top_k=args.top_k)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if args.output:
        from ._checkpoint import write_atomic

        try:
            write_atomic(Path(args.output), text)  # all the predictions or, on a full disk, the file as it was
        except OSError as e:
            from ._errors import os_error_message

            raise UserError(os_error_message(e, "--output", args.output)) from None
    else:
        sys.stdout.write(text)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    quiet_libraries(True)
    from ._export import export_run

    target = export_run(args.run_dir, args.format, args.output, merge_lora=args.merge_lora)
    merged = json.loads((target / "export.json").read_text()).get("merged_lora", False)
    note = ", LoRA merged" if merged else (", no LoRA adapters to merge: the run trained none" if args.merge_lora
                                           else "")
    print(f"wrote {target}/ ({args.format}{note})")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    quiet_libraries(True)
    from ._evaluate import evaluate_run

    _at_least_one("--batch-size", args.batch_size)
    metrics = evaluate_run(args.run_dir, args.overrides, batch_size=args.batch_size)
    print(json.dumps(metrics, indent=2))
    return 0


def _cmd_wise_ft(args: argparse.Namespace) -> int:
    quiet_libraries(True)
    from ._wise_ft import wise_ft

    try:
        alphas = [float(a) for a in args.alphas.split(",") if a.strip()]
    except ValueError:
        raise UserError(f"--alphas: {args.alphas!r} is not a comma-separated list of numbers, e.g. 0,0.5,1") from None
    result = wise_ft(args.run_dir, alphas, args.overrides, args.save)
    metric = result["metric"]
    for row in result["curve"]:
        print(f"alpha {row['alpha']:g}: " + "  ".join(f"{k} {v[metric]:.4f}" for k, v in row.items() if k != "alpha"))
    print(f"wrote {Path(result['saved']).parent}/wise_ft.md; alpha {result['chosen_alpha']:g} saved to {result['saved']}")
    return 0


_COMMANDS: dict[str, Any] = {
    "run": _cmd_run,
    "sweep": _cmd_sweep,
    "validate": _cmd_validate,
    "list": _cmd_list,
    "predict": _cmd_predict,
    "eval": _cmd_eval,
    "export": _cmd_export,
    "new-plugin": _cmd_new_plugin,
    "compare": _cmd_compare,
    "plan": _cmd_plan,
    "wise-ft": _cmd_wise_ft,
}
