"""`vidlens export`: a checkpoint to ONNX / TorchScript, optionally int8-quantised and pruned, with a report.

Writes into `--out`: `model.onnx`, `model.int8.onnx`, `model.torchscript.pt`, `model.prunedNN.pt`
(as asked), and `report.json`, `report.csv`, `report.png` comparing size, CPU latency per clip
and (with `--val-data`) top-1 of each variant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vidlens.cli.common import console, print_skipped
from vidlens.errors import ConfigError

FORMATS = ("onnx", "torchscript", "all")


def export_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A vidlens checkpoint (.pt) to export."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    format: str = typer.Option("onnx", "--format", help="onnx | torchscript | all."),
    quantize: Optional[str] = typer.Option(None, "--quantize", help="int8: also write int8 ONNX models (dynamic, and static QDQ calibrated on --val-data); the report says which to deploy."),
    prune: Optional[list[float]] = typer.Option(None, "--prune", help="Also write a pruned checkpoint at this sparsity (0-1; repeatable)."),
    val_data: Optional[Path] = typer.Option(None, "--val-data", help="Dataset (class folders or manifest) for top-1 in the report."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset (default 17)."),
    repeats: int = typer.Option(10, "--repeats", help="Timed forwards per variant for the latency median."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for PyTorch and ONNX Runtime (default: torch's)."),
    max_videos: Optional[int] = typer.Option(None, "--max-videos", help="Use at most this many validation videos."),
    exclude: Optional[Path] = typer.Option(None, "--exclude", help="bad_files.csv from `vidlens data scan`: skip these validation videos."),
) -> None:
    """Export a checkpoint for deployment and report size / latency / top-1 of each variant.

    Unreadable validation videos are skipped and listed (and in report.json "skipped"); the files
    land in --out only when the whole export succeeds.
    """
    from vidlens.deploy import compression_report, export_onnx, export_torchscript, max_abs_diff, write_report
    from vidlens.outputs import staged_output

    if format not in FORMATS:
        raise ConfigError(None, f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if quantize not in (None, "int8"):
        raise ConfigError(None, f"--quantize supports int8 only, got {quantize!r}")
    if quantize and format == "torchscript":
        raise ConfigError(None, "--quantize int8 quantises the ONNX model: use --format onnx or all")
    bad: dict[str, str] = {}
    with staged_output(out) as stage:
        written: list[Path] = []
        extra: dict = {"checkpoint": str(checkpoint)}
        onnx_path = None
        if format in ("onnx", "all"):
            onnx_path = export_onnx(checkpoint, stage.path / "model.onnx", opset=opset)
            extra["onnx_max_abs_diff"] = max_abs_diff(checkpoint, onnx_path)
            written.append(onnx_path)
            console.print(f"ONNX: {stage.final(onnx_path)} (max |ONNX - PyTorch| on batch 1 and 3: {extra['onnx_max_abs_diff']:.2e})")
        if format in ("torchscript", "all"):
            written.append(export_torchscript(checkpoint, stage.path / "model.torchscript.pt"))
            console.print(f"TorchScript: {stage.final(written[-1])}")
        if onnx_path is not None:
            rows = compression_report(checkpoint, val_data, out_dir=stage.path, onnx_path=onnx_path, quantize=quantize,
                                      prune=tuple(prune or ()), repeats=repeats, threads=threads, max_videos=max_videos,
                                      exclude=exclude, bad=bad)
            for r in rows:  # the report names the files where they will be, not in the staging folder
                r.file = str(stage.final(r.file))
            if bad:
                extra["skipped"] = [{"path": p, "reason": reason} for p, reason in bad.items()]
            files = write_report(rows, stage.path, extra)
            from rich.table import Table

            table = Table(title="export report", title_justify="left")
            for col in ("variant", "size MB", "zipped MB", "sparsity", "latency ms/clip", "top-1", "top-1 drop"):
                table.add_column(col, justify="left" if col == "variant" else "right")
            for r in rows:
                table.add_row(r.variant, f"{r.size_mb:.2f}", f"{r.zipped_mb:.2f}", f"{r.sparsity:.2f}", f"{r.latency_ms:.1f}",
                              "-" if r.top1 is None else f"{r.top1:.3f}", "-" if r.top1_drop is None else f"{r.top1_drop:+.3f}")
            console.print(table)
            from vidlens.deploy import recommend_variant

            choice = recommend_variant(rows)
            if choice:
                console.print(f"deploy: {choice['variant']} ({choice['reason']})", highlight=False, soft_wrap=True)
            written += [Path(r.file) for r in rows[2:]] + [stage.final(p) for p in files.values()]
        elif prune:
            from vidlens.deploy import prune_checkpoint

            for amount in prune:
                written.append(prune_checkpoint(checkpoint, stage.path / f"model.pruned{int(round(amount * 100))}.pt", amount))
    print_skipped(bad)
    console.print(f"wrote {', '.join(str(stage.final(p)) for p in written)}")


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
