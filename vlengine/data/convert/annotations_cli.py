"""``vlengine data convert --from vqa|gqa|nlvr2|karpathy|refcoco|vcr``: the annotation sources' arguments and run.

SRC per format: ``vqa`` QUESTIONS.json [ANNOTATIONS.json]; ``gqa`` QUESTIONS.json;
``nlvr2`` one or more JSON-lines files; ``karpathy`` dataset_{flickr30k,coco}.json
with ``--split``; ``refcoco`` refs(unc).p instances.json with ``--split`` (and
``--proposals`` for the detected-box track); ``vcr`` one or more {train,val,test}.jsonl. ``--out`` is the annotation set directory to create.
"""

from __future__ import annotations

ANNOTATION_FORMATS = ("vqa", "gqa", "nlvr2", "karpathy", "refcoco", "vcr")
HELP = ("  vqa         VQA v2 questions JSON [+ annotations JSON]: an annotation set\n"
        "  gqa         GQA {split}_balanced_questions.json: an annotation set\n"
        "  nlvr2       NLVR2 JSON lines: an annotation set (two images per example)\n"
        "  karpathy    Karpathy split JSON (Flickr30K/COCO retrieval) + --split: an annotation set\n"
        "  refcoco     refs(unc).p + instances.json (RefCOCO/+/g) + --split: an annotation set\n"
        "  vcr         VCR {train,val,test}.jsonl: an annotation set (mentions as names/classes + region indices)")


def add_annotation_arguments(p) -> None:
    g = p.add_argument_group("annotation sources (vqa, gqa, nlvr2, karpathy, refcoco)")
    g.add_argument("--split", help="karpathy, refcoco: the splits to keep, comma-separated (e.g. test, "
                                   "train,restval; refcoco: train, val, testA, testB)")
    g.add_argument("--proposals", default=None, metavar="DETECTIONS.json",
                   help="refcoco: detected boxes [{image_id, box [x, y, w, h]}] for the detected-box track "
                        "(default: the region store's own boxes are the candidates)")
    g.add_argument("--max-captions-per-image", type=int, default=None,
                   help="karpathy: keep the first N captions of each image (the field uses 5)")
    g.add_argument("--image-id-template", default=None,
                   help="how the region store names an image, e.g. 'COCO_{data_subtype}_{image_id:012d}' for VQA "
                        "with LXMERT's features (fields: image_id; vqa also data_subtype; karpathy also filename; "
                        "refcoco also file_stem, COCO's file_name without extension)")
    g.add_argument("--images", default=None, metavar="STORE",
                   help="a region store: check that it holds every image the annotations name")


def make_annotation_source(args):
    fmt, src = args.fmt, list(args.src)
    template = args.image_id_template
    if fmt == "vqa":
        from .vqa import VqaSource
        if len(src) > 2:
            raise ValueError(f"--from vqa takes QUESTIONS.json [ANNOTATIONS.json], got {len(src)} files")
        return VqaSource(src[0], src[1] if len(src) == 2 else None, image_id_template=template)
    if fmt == "refcoco":
        from .refcoco import RefcocoSource
        if len(src) != 2 or not args.split:
            raise ValueError("--from refcoco takes REFS.p INSTANCES.json and --split (e.g. --split val), "
                             f"got {len(src)} files" + ("" if args.split else " and no --split"))
        return RefcocoSource(src[0], src[1], [s.strip() for s in args.split.split(",") if s.strip()],
                             image_id_template=template, proposals=args.proposals)
    if args.proposals:
        raise ValueError(f"--proposals applies to --from refcoco, not --from {fmt}")
    if fmt == "vcr":
        from .vcr import VcrSource
        return VcrSource(src)
    if fmt == "nlvr2":
        from .nlvr2 import Nlvr2Source
        return Nlvr2Source(src, image_id_template=template)
    if len(src) != 1:
        raise ValueError(f"--from {fmt} takes one source file, got {len(src)}")
    if fmt == "gqa":
        from .gqa import GqaSource
        return GqaSource(src[0], image_id_template=template)
    from .karpathy import KarpathySource
    if not args.split:
        raise ValueError("--from karpathy needs --split (e.g. --split test, or --split train,restval)")
    return KarpathySource(src[0], [s.strip() for s in args.split.split(",") if s.strip()], image_id_template=template,
                          max_captions=args.max_captions_per_image)


def run_annotation_convert(args) -> int:
    from .annotation_base import convert_annotations
    stray = [flag for flag, value in (("--captions", args.captions), ("--vocab", args.vocab), ("--boxes", args.boxes),
                                      ("--image-sizes", args.image_sizes)) if value]
    if stray:
        raise ValueError(f"{', '.join(stray)} apply to region stores, not to --from {args.fmt}")
    out = convert_annotations(make_annotation_source(args), args.out, images=args.images, overwrite=args.overwrite,
                              progress=not args.no_progress)
    print(f"wrote {out}")
    return 0
