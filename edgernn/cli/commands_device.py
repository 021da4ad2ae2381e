"""Device commands: verify. Only numpy, onnxruntime and edgernn's runtime are imported (no torch, no onnx)."""

from __future__ import annotations

from pathlib import Path

import click

from edgernn.cli.app import cli, emit_json, fmt
from edgernn.cli.options import THREADS


def _print_report(report, verbose: bool = False) -> None:
    rt = report.runtime
    packages = ", ".join(f"{k} {rt[k]}" for k in ("onnxruntime", "ai-edge-litert", "tflite-runtime", "numpy") if k in rt)
    click.echo(f"bundle   {report.bundle}")
    click.echo(f"runtime  {packages}, python {rt['python']} on {rt['system']} {rt['machine']}")
    ew = report.exported_with
    if ew:
        click.echo("exported " + ", ".join(f"{k} {v}" for k, v in ew.items()))
    if report.target:
        click.echo(f"target   {report.target.get('runtime', '')}")
    ok = [f for f in report.files if f.status == "ok"]
    if not verbose and ok:
        click.echo(f"files    {len(ok)} of {len(report.files)} match the manifest's sha256"
                   + ("" if len(ok) == len(report.files) else "; not these:"))
    else:
        click.echo("files")
    for f in report.files if verbose else [f for f in report.files if f.status != "ok"]:
        size = f"{f.size / 1024:8.1f} KiB" if f.size is not None else " " * 12
        if f.status == "missing":
            detail = "listed in the manifest but not in the folder"
        elif f.status == "unreadable":
            detail = "cannot be read (permission denied?)"
        else:
            detail = f"sha256 {f.sha256[:16]}…"
            if f.status == "mismatch":
                detail += f" but the manifest says {f.expected_sha256[:16]}…"
        click.echo(f"  {f.status:<8} {f.file:<28} {size}  {detail}")
    p = report.probe
    click.echo(f"self-test on the stored probe ({p['batch']} windows × {p['length']} steps; "
               "expected outputs from the float64 reference at export)")
    for v in report.variants:
        head = f"  {v.status:<8} {v.variant:<26} {v.precision:<13} {v.mode:<7}"
        if v.outputs:
            figures = "  ".join(f"{o.output} {fmt(o.max_abs)}" for o in v.outputs)
            tol = f"(tolerance atol {v.tolerance['atol']:g}, rtol {v.tolerance['rtol']:g})"
            click.echo(f"{head} max abs  {figures}  {tol}")
        else:
            click.echo(head.rstrip())
        if v.reason and v.status != "skipped":
            click.echo(f"           {v.reason}")
    skipped: dict[str, list[str]] = {}  # one line per reason, however many variants it skips
    for v in report.variants:
        if v.status == "skipped":
            skipped.setdefault(v.reason, []).append(v.variant)
    for reason, names in skipped.items():
        click.echo(f"skipped {len(names)} variant{'s' if len(names) > 1 else ''}: {reason}")
    click.echo("verify: " + ("passed" if report.passed else "FAILED"))


@cli.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--variant", "variants", multiple=True, help="check only this variant (repeatable; default: all)")
@click.option("--threads", type=THREADS, help="onnxruntime intra-op threads")
@click.option("--save-outputs", type=click.Path(path_type=Path),
              help="also write every variant's probe outputs to this .npz (to compare devices)")
@click.option("--verbose", "-v", is_flag=True, help="list every file with its checksum")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def verify(bundle, variants, threads, save_outputs, verbose, as_json):
    """Check a bundle on this device: file checksums, runtime versions, and a self-test.

    The self-test runs the inputs stored in the manifest at export time through every variant
    (step graphs one step at a time) and compares with the stored reference outputs within each
    variant's precision tolerance. Needs only numpy and the runtime: no torch.

    Exit code 0 when everything passed, 1 when a self-test failed, 2 for a missing or damaged
    bundle (including a model file whose checksum does not match).
    """
    import numpy as np

    from edgernn.errors import CheckFailedError, ModelFileError
    from edgernn.verify import verify_bundle

    sink: dict | None = {} if save_outputs is not None else None
    report = verify_bundle(bundle, variants=tuple(variants), threads=threads, outputs_sink=sink)
    if as_json:
        emit_json(report.to_dict())
    else:
        _print_report(report, verbose)
    if sink is not None:
        from edgernn.bundle import atomic_write_bytes
        import io

        buf = io.BytesIO()
        np.savez(buf, **sink)
        atomic_write_bytes(save_outputs, buf.getvalue())
        click.echo(f"wrote {len(sink)} output arrays to {save_outputs}", err=True)
    bad_files = [f for f in report.files if f.status != "ok"]
    if bad_files:
        raise ModelFileError("bundle files do not match the manifest: "
                             + ", ".join(f"{f.file} ({f.status})" for f in bad_files)
                             + "; copy the bundle again or export it again")
    if not report.passed:
        failed = [v.variant for v in report.variants if v.status == "failed"]
        if failed:
            raise CheckFailedError("self-test failed for: " + ", ".join(failed))
        raise CheckFailedError("no variant could be run on this device: "
                               + "; ".join(v.reason for v in report.variants))
