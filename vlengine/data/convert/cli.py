"""``vlengine data convert``: argument parsing for the converters."""

from __future__ import annotations

import argparse
import json
import os

from .annotations_cli import ANNOTATION_FORMATS, HELP as ANNOTATION_HELP, add_annotation_arguments, run_annotation_convert


def add_convert_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert region features from a published format into a store",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Formats:\n"
                                   "  tsv         LXMERT/BUTD TSV files (base64 arrays)\n"
                                   "  vlbert-zip  VL-BERT JSON lines (name.zip@/member paths allowed)\n"
                                   "  lmdb        UNITER-style LMDB (msgpack-numpy or npz values)\n"
                                   "  npz         a directory of per-image .npz files\n"
                                   "  images      raw images (SRC = image directory) + --boxes JSON lines: a raw-image store\n"
                                   "  vcr-images  VCR: vcr1images directory + {train,val,test}.jsonl: a raw-image store\n"
                                   + ANNOTATION_HELP)
    p.add_argument("--from", dest="fmt", required=True,
                   choices=["tsv", "vlbert-zip", "lmdb", "npz", "images", "vcr-images", *ANNOTATION_FORMATS],
                   help="the source format (see above)")
    p.add_argument("src", nargs="+", help="source file(s) / database / directory")
    p.add_argument("--out", required=True, help="store directory to create")
    p.add_argument("--captions", help="JSON lines {\"image_id\", \"caption\"} to store with the regions")
    p.add_argument("--vocab", help="WordPiece vocab.txt (bert-base-uncased format) for the captions")
    p.add_argument("--feature-dim", type=int, default=2048, help="region feature size (default 2048)")
    p.add_argument("--soft-classes", type=int, default=None,
                   help="size of soft label vectors to keep (vlbert-zip default 1601; lmdb: taken from the data)")
    p.add_argument("--tsv-fields", default="lxmert", choices=["lxmert", "butd"],
                   help="tsv: the column layout (LXMERT's or bottom-up-attention's)")
    p.add_argument("--image-sizes", help="lmdb: JSON {image_id: [height, width]} to turn normalised boxes into pixels")
    p.add_argument("--boxes", help="images: JSON lines {\"image\", \"boxes\", \"labels\"} per image")
    p.add_argument("--no-whole-image-box", action="store_true", help="images: do not add the whole image as region 0")
    p.add_argument("--max-text-len", type=int, default=None, help="truncate captions to this many tokens")
    p.add_argument("--shard-mb", type=int, default=256, help="size of one shard file in MB (default 256)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store at --out")
    p.add_argument("--no-resume", action="store_true", help="ignore an interrupted conversion's partial output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_annotation_arguments(p)
    p.set_defaults(run=run_convert)


def make_source(args):
    if args.fmt == "tsv":
        from .tsv import TsvSource
        return TsvSource(args.src, fields=args.tsv_fields, feature_dim=args.feature_dim), args.soft_classes
    if args.fmt == "vlbert-zip":
        from .vlbert import VlbertSource
        soft = 1601 if args.soft_classes is None else args.soft_classes
        return VlbertSource(args.src, feature_dim=args.feature_dim, num_classes=soft or None), soft or None
    if args.fmt == "vcr-images":
        from .vcr import VcrImageSource
        return VcrImageSource(args.src[0], args.src[1:]), None
    if len(args.src) != 1:
        raise ValueError(f"--from {args.fmt} takes one source, got {len(args.src)}")
    if args.fmt == "lmdb":
        from .uniter_lmdb import LmdbSource
        sizes = None
        if args.image_sizes:
            with open(args.image_sizes, encoding="utf-8") as f:
                sizes = {k: tuple(v) for k, v in json.load(f).items()}
        src = LmdbSource(args.src[0], image_sizes=sizes)
        soft = args.soft_classes
        if soft is None:  # peek at the first record
            first = next(iter(src.records()), None)
            soft = None if first is None or first.soft_labels is None else first.soft_labels.shape[1]
        return src, soft or None
    if args.fmt == "images":
        from .images_dir import ImageDirSource
        if not args.boxes:
            raise ValueError("--from images needs --boxes FILE")
        return ImageDirSource(args.src[0], args.boxes, whole_image_box=not args.no_whole_image_box), None
    from .npz_dir import NpzDirSource
    return NpzDirSource(args.src[0], feature_dim=args.feature_dim, num_soft_classes=args.soft_classes), args.soft_classes


def _check_sources(args) -> None:
    """Every SRC exists (the part before '@' of a zip member path)."""
    for src in args.src:
        path = src.split("@", 1)[0] if args.fmt == "vlbert-zip" else src
        if not os.path.exists(path):
            raise ValueError(f"--from {args.fmt}: {path} does not exist")
        if args.fmt in ("tsv", "vlbert-zip") and os.path.isdir(path):  # these read files, not folders
            kind = ".tsv files" if args.fmt == "tsv" else "a .zip file (ZIP@member/dir)"
            raise ValueError(f"--from {args.fmt}: {path} is a folder; pass {kind}, e.g. {os.path.join(path, '*')}")


def run_convert(args) -> int:
    if args.fmt in ANNOTATION_FORMATS:
        return run_annotation_convert(args)
    from .runner import convert
    _check_sources(args)
    source, soft = make_source(args)
    if source.total() == 0:
        raise ValueError(f"--from {args.fmt}: no input records in {' '.join(args.src)} "
                         "(wrong folder, or wrong --from?)")
    out = convert(source, args.out, feature_dim=args.feature_dim, num_soft_classes=soft, vocab_file=args.vocab,
                  captions_file=args.captions, max_text_len=args.max_text_len, shard_bytes=args.shard_mb << 20,
                  overwrite=args.overwrite, resume=not args.no_resume, progress=not args.no_progress)
    from ..store import open_store
    if len(open_store(out, verify="size").regions) == 0:
        raise ValueError(f"--from {args.fmt}: no records read from {' '.join(args.src)}; {out} is empty "
                         "(wrong files, or wrong --from?)")
    print(f"wrote {out}")
    return 0
