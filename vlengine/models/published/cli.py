"""`vlengine convert-checkpoint --from vlbert|uniter|lxmert SRC OUT.safetensors [--report REPORT.json]`."""

from __future__ import annotations

from vlengine._cli_errors import OneLineParser, enable_debug

SHOWN_FRESH = 8


def _parser() -> OneLineParser:
    p = OneLineParser(prog="vlengine convert-checkpoint",
                      description="convert a published VL-BERT, UNITER or LXMERT pretrained checkpoint to the "
                                  "engine's export format (read weights-only; nothing is unpickled)")
    p.add_argument("--from", dest="codebase", required=True, choices=("vlbert", "uniter", "lxmert"),
                   help="vlbert -> VLBert (vl-bert-*.model), uniter -> VLBert (uniter-*.pt), "
                        "lxmert -> SemVLP (Epoch20_LXRT.pth)")
    p.add_argument("src", help="the published checkpoint file")
    p.add_argument("out", help="output .safetensors file (vlengine.models.export.load_export reads it)")
    p.add_argument("--report", metavar="REPORT.json",
                   help="write what mapped, what did not (and why) and what starts fresh")
    p.add_argument("--num-heads", type=int, default=None,
                   help="attention heads (default: hidden size / 64, as BERT base and large)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fresh initialisation of unmapped parameters")
    p.add_argument("--debug", action="store_true", help="show full tracebacks (also: VLENGINE_DEBUG=1)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.debug:
        enable_debug()
    from . import convert_file, write_conversion

    conversion = convert_file(args.codebase, args.src, num_heads=args.num_heads, seed=args.seed)
    write_conversion(conversion, args.out, args.report)
    report, config = conversion.report, conversion.config
    print(f"{report.source} -> {args.out}: {conversion.architecture} {config.num_layers} x {config.hidden_size} "
          f"({config.num_heads} attention head{'s' if config.num_heads != 1 else ''})")
    print(f"  mapped {len(report.mapped)} published tensors, tied {len(report.tied)}, unmapped "
          f"{len(report.unmapped)}, engine tensors at fresh init {len(report.fresh)}")
    for reason, count in report.unmapped_groups().items():
        print(f"  unmapped ({count}): {reason}")
    if report.fresh:
        more = f", ... (+{len(report.fresh) - SHOWN_FRESH})" if len(report.fresh) > SHOWN_FRESH else ""
        print(f"  fresh: {', '.join(report.fresh[:SHOWN_FRESH])}{more}")
    for note in report.notes:
        print(f"  note: {note}")
    if args.report:
        print(f"  report: {args.report}")
    return 0
