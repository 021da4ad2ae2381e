"""`edgernn export --module my_model.py:build_model --weights weights.pt --input-shape 1,100,8 --out bundle/`.

``module_options`` adds the options for the user's own module to the ``export`` command and, when
``--module`` is given, runs ``edgernn.export.from_module.export_module`` instead of the checkpoint
export (CHECKPOINT becomes optional). Loading the module and its weights lives here; exporting is
the library's; this prints the lint (before conversion) and the result, or ``--json``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from pathlib import Path

import click

from edgernn.errors import BadInputError

MODULE_OPTIONS = [
    click.Option(["--module", "module_ref"], metavar="FILE.py:NAME",
                 help="your own model instead of a checkpoint: a factory function or nn.Module class in a file "
                      "(or an importable module)"),
    click.Option(["--weights", "weights_path"], type=click.Path(path_type=Path),
                 help="--module: its weights, a state_dict from torch.save (loaded with weights_only=True) "
                      "or a .safetensors file"),
    click.Option(["--input-shape"], metavar="B,T,F",
                 help="--module: the example input's shape in the layout forward takes, e.g. 1,100,8 "
                      "(B,T for token ids)"),
    click.Option(["--head", "module_head"], type=click.Choice(["regression", "forecast", "classification"]),
                 help="--module: what the outputs are (default: unknown; the runtime returns them as they are)"),
    click.Option(["--labels"], metavar="A,B,...", help="--module: class labels, with --head classification"),
    click.Option(["--split"], metavar="BACKBONE,HEAD",
                 help="--module: layer names of the RNN and of the per-step head, for a step graph of a module "
                      "edgernn does not recognise"),
    click.Option(["--best-effort"], is_flag=True,
                 help="write the variants that can be made and list the rest (stderr and the manifest's "
                      "not_written) instead of refusing the whole export"),
    click.Option(["--exporter"], type=click.Choice(["auto", "edgernn", "torchscript", "dynamo"]), default="auto",
                 show_default=True, help="--module: edgernn's own writers where it recognises the module, "
                                          "else torch.onnx.export (TorchScript, then dynamo)"),
]
MODULE_PARAMS = [o.name for o in MODULE_OPTIONS]


def module_options(command):
    """Decorate the ``export`` command (under ``@cli.command()``) with the ``--module`` options."""

    @functools.wraps(command)
    def export(*args, **kwargs):
        mine = {name: kwargs.pop(name) for name in MODULE_PARAMS}
        if mine["module_ref"] is None:
            if kwargs.get("checkpoint") is None:
                raise BadInputError("give a CHECKPOINT folder, or your own model with --module FILE.py:NAME "
                                    "--input-shape B,T,F")
            return command(*args, best_effort=mine["best_effort"], **kwargs)
        from edgernn.cli.options import split_list
        from edgernn.dependencies import export_needs, require

        require("export --module", ["torch", *export_needs(split_list(kwargs.get("formats")),
                                                           split_list(kwargs.get("precisions")), checkpoint=False)])
        return run(**mine, **kwargs)

    params = export.__dict__.setdefault("__click_params__", [])
    for p in params:
        if isinstance(p, click.Argument) and p.name == "checkpoint":
            p.required = False  # --module takes its place
    params[:0] = list(reversed(MODULE_OPTIONS))  # click lists params in reverse: these come last
    export.__doc__ = (command.__doc__ or "") + (
        "\n\n    Your own model: --module my_model.py:build_model --weights weights.pt --input-shape 1,100,8\n"
        "    (lint first, then edgernn's own writers or torch.onnx.export, parity against the module).")
    return export


# --------------------------------------------------------------------------------------------
# Loading the user's module
# --------------------------------------------------------------------------------------------


def load_module(ref: str):
    """``file.py:name`` or ``package.module:name`` → an nn.Module (a class is instantiated, a factory called)."""
    from torch import nn

    source, _, name = ref.rpartition(":")
    if not source or not name:
        raise BadInputError(f"--module expects FILE.py:NAME (a factory or nn.Module class), got {ref!r}")
    try:
        if source.endswith(".py"):
            path = Path(source)
            if not path.is_file():
                raise BadInputError(f"--module: no such file {source}")
            sys.path.insert(0, str(path.resolve().parent))  # so it can import its neighbours
            try:
                name_in_sys = path.stem if path.stem not in sys.modules else f"edgernn_user_{path.stem}"
                spec = importlib.util.spec_from_file_location(name_in_sys, path)
                pymod = importlib.util.module_from_spec(spec)
                sys.modules[name_in_sys] = pymod  # some tracers look classes up by their module
                spec.loader.exec_module(pymod)
            finally:
                sys.path.pop(0)
        else:
            pymod = importlib.import_module(source)
    except BadInputError:
        raise
    except Exception as e:
        raise BadInputError(f"--module: importing {source} failed ({type(e).__name__}: {_first(e)})") from None
    if not hasattr(pymod, name):
        found = [n for n in dir(pymod) if not n.startswith("_") and callable(getattr(pymod, n))]
        raise BadInputError(f"--module: {source} has no {name!r}; it defines: {', '.join(found) or 'nothing callable'}")
    try:
        module = getattr(pymod, name)()
    except Exception as e:
        raise BadInputError(f"--module: calling {name}() failed ({type(e).__name__}: {_first(e)}); "
                            "give a factory or class that takes no arguments") from None
    if not isinstance(module, nn.Module):
        raise BadInputError(f"--module: {name}() returned {type(module).__name__}, expected a torch.nn.Module")
    return module


def load_weights(module, path: Path) -> None:
    import torch

    if not Path(path).is_file():
        raise BadInputError(f"--weights: no such file {path}")
    try:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BadInputError(f"--weights: cannot read {path} as a state_dict or safetensors file "
                            f"({type(e).__name__}: {_first(e)})") from None
    for key in ("state_dict", "model_state_dict", "model"):  # common checkpoint layouts
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise BadInputError(f"--weights: {path} holds a {type(state).__name__}, expected a state_dict")
    own = module.state_dict()
    if state and all(k.startswith("module.") for k in state) and not any(k.startswith("module.") for k in own):
        state = {k[len("module."):]: v for k, v in state.items()}  # saved from DataParallel
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}"] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:4])}{' …' if len(unexpected) > 4 else ''}"] if unexpected else [])
        raise BadInputError(f"--weights: {path} does not fit {type(module).__name__} ({'; '.join(parts)})")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise BadInputError(f"--weights: {path} does not fit {type(module).__name__} ({_first(e)})") from None


def example_input(module, shape_text: str):
    """A random example of this shape: token ids when the module embeds and the shape is (B, T)."""
    import torch
    from torch import nn

    try:
        shape = tuple(int(v) for v in shape_text.replace("x", ",").split(","))
    except ValueError:
        raise BadInputError(f"--input-shape expects integers like 1,100,8, got {shape_text!r}") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise BadInputError(f"--input-shape expects B,T,F (or B,T for token ids), got {shape_text!r}")
    embeddings = [m for m in module.modules() if isinstance(m, nn.Embedding)]
    torch.manual_seed(0)
    if len(shape) == 2:
        if not embeddings:
            raise BadInputError(f"--input-shape {shape_text} has no feature axis and the module has no nn.Embedding; "
                                "give B,T,F")
        return torch.randint(0, min(e.num_embeddings for e in embeddings), shape)
    return torch.randn(shape)


def _first(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def run(*, module_ref, weights_path, input_shape, module_head, labels, split, exporter, best_effort, out,
        as_json=False, no_validate=False, opset=None, ir_version=None, target_runtime=None, precisions=None,
        formats="onnx", calibration_path=None, checkpoint=None, calibration_margin=0.0, keep_passing=False) -> None:
    from edgernn.cli.app import emit_json, fmt
    from edgernn.export.from_module import export_module
    from edgernn.export.graph_builder import DEFAULT_IR_VERSION, DEFAULT_OPSET

    if checkpoint is not None:
        raise BadInputError(f"give a CHECKPOINT folder or --module, not both (got {checkpoint} and {module_ref})")
    if input_shape is None:
        raise BadInputError("--module needs --input-shape B,T,F: the shape of an example input for its forward")
    for given, name in ((calibration_margin, "--calibration-margin"), (keep_passing, "--keep-passing")):
        if given:
            raise BadInputError(f"{name} is not taken with --module yet: export a checkpoint for it, or drop {name}")
    from edgernn.export.module_variants import check_formats

    format_names = check_formats(formats.split(","))
    module = load_module(module_ref)
    if weights_path is not None:
        load_weights(module, weights_path)
    options = {}
    if target_runtime is not None:
        from edgernn.export.targets import parse_target

        options["target"] = parse_target(target_runtime)
        ir_version, opset = options["target"].pick(ir_version, opset)
    if precisions:
        from edgernn.quantize import parse_precisions

        options["quantize"] = parse_precisions(precisions)
    example = example_input(module, input_shape)
    if calibration_path is not None:
        from edgernn.data import load_inputs

        if example.ndim != 3:
            raise BadInputError("--calibration takes float windows (N, T, F); this module's input is token ids")
        options["calibration"] = load_inputs(calibration_path, input_size=int(example.shape[-1]))
        options["calibration_source"] = f"{calibration_path} ({len(options['calibration'])} windows)"
    split_names = tuple(s.strip() for s in split.split(",")) if split else None
    label_names = tuple(s.strip() for s in labels.split(",")) if labels else ()

    def show_lint(items) -> None:
        if as_json:
            return
        click.echo("lint (before conversion):")
        for item in items:
            click.echo(f"  {'!' if item.level == 'warning' else '·'} {item.line()}")

    result = export_module(module, example, out, head=module_head, labels=label_names, formats=format_names,
                           best_effort=best_effort, split=split_names, exporter=exporter, validate=not no_validate,
                           ir_version=ir_version or DEFAULT_IR_VERSION, opset=opset or DEFAULT_OPSET,
                           on_lint=show_lint, **options)
    m = result.manifest
    for e in m.not_written:
        click.echo(f"not written: {e['variant']}: {e['reason']}", err=True)
    variants = [{"name": v.name, "file": v.file, "size": v.size, "precision": v.precision, "parity": v.parity}
                for v in m.variants]
    if as_json:
        emit_json({"bundle": str(out), "seconds": round(result.seconds, 3), "path": result.path,
                   "exporter": result.exporter, "validated": not no_validate, "variants": variants,
                   "not_written": list(m.not_written), "target": m.target, "streaming": m.streaming, "lint": [i.to_dict() for i in result.lint], "module": m.module})
        return
    how = "edgernn's own writers" if result.path == "recognised" else f"torch.onnx.export ({result.exporter})"
    click.echo(f"exported {m.module['class']} → {out}/ in {result.seconds:.2f} s via {how}")
    for v in variants:
        p = v["parity"]
        parity = "not validated" if not p else f"max abs {fmt(p['max_abs'])} vs module" + (
            f", {fmt(p['numpy']['max_abs'])} vs numpy" if "numpy" in p else "")
        click.echo(f"  {v['name']:<26} {v['file']:<24} {v['size'] / 1024:8.1f} KiB  {parity}")
    if m.target:
        click.echo(f"target {m.target['runtime']}: IR version {m.target['ir_version']}, opset {m.target['opset']}")
        for r in m.target.get("refused", []):
            click.echo(f"  refused {r['variant']}: {r['reason']}")
    s = m.streaming
    click.echo("streaming: " + ("yes (step graph)" if s.get("supported") else f"no — {s.get('reason', '')}"))
    if m.module.get("unknown"):
        click.echo(f"left out of the spec (not known from the module): {', '.join(m.module['unknown'])}")
