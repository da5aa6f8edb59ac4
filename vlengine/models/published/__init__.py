"""Converters from the published VL-BERT, UNITER and LXMERT checkpoints to the engine's export format.

    from vlengine.models.published import convert_file, write_conversion
    conversion = convert_file("vlbert", "vl-bert-base-prec.model")
    write_conversion(conversion, "vlbert-base.safetensors", report_path="report.json")
    conversion.report.unmapped      # published key -> why it has no counterpart

Checkpoints are read with ``torch.load(weights_only=True)``: no code is unpickled. The sizes
(layers, hidden, FFN, vocabulary, region classes) come from the tensor shapes; the head count
from BERT's 64-d heads unless given. Every engine parameter the checkpoint lacks is written with
the fresh initialisation of a seeded model and listed in ``report.fresh``, so ``load_export``
builds the model strictly. One file per codebase names the source files its key names come from.
"""

from __future__ import annotations

import os

from .assembly import Conversion, Report
from .lxmert import convert_lxmert, read_lxmert
from .reading import PublishedCheckpointError
from .uniter import convert_uniter, read_uniter
from .vlbert import convert_vlbert, read_vlbert

CODEBASES = {  # --from name -> (reader, converter, display name)
    "vlbert": (read_vlbert, convert_vlbert, "VL-BERT"),
    "uniter": (read_uniter, convert_uniter, "UNITER"),
    "lxmert": (read_lxmert, convert_lxmert, "LXMERT"),
}


def convert_file(codebase: str, path: str, num_heads: int | None = None, seed: int = 0) -> Conversion:
    """Read ``path`` as a ``codebase`` checkpoint and map it onto the engine's names."""
    if codebase not in CODEBASES:
        raise PublishedCheckpointError(f"unknown codebase {codebase!r} (one of {', '.join(CODEBASES)})")
    read, convert, name = CODEBASES[codebase]
    return convert(read(path), source=f"{name} checkpoint {os.path.basename(path)}", num_heads=num_heads,
                   seed=seed)


def write_conversion(conversion: Conversion, out: str, report_path: str | None = None) -> None:
    """The export file (``load_export`` reads it) and, optionally, the report as JSON."""
    from vlengine.atomic import write_json

    from ..export import ExportInfo, write_export

    info = ExportInfo(conversion.architecture, conversion.config, backbone_prefix="model.",
                      source=conversion.report.source, extra={"converted_from": conversion.report.codebase})
    write_export(out, conversion.tensors, info)
    if report_path:
        write_json(report_path, conversion.report.to_dict(), indent=2)


__all__ = ["CODEBASES", "Conversion", "PublishedCheckpointError", "Report", "convert_file", "convert_lxmert",
           "convert_uniter", "convert_vlbert", "write_conversion"]
