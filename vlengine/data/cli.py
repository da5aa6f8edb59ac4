"""vlengine data: build the embedded corpus, convert feature files, inspect stores.

    vlengine data corpus OUT_DIR [--seed S] [--num-train N] [--num-heldout N]
    vlengine data convert --from {tsv,vlbert-zip,lmdb,npz} SRC... --out STORE [--captions FILE] [--vocab FILE]
    vlengine data verify STORE        sizes, offsets and sha256 of every shard file
    vlengine data info STORE          record counts and columns
"""

from __future__ import annotations

import argparse
import json
import sys


def _parser() -> argparse.ArgumentParser:
    from vlengine._cli_errors import OneLineParser

    p = OneLineParser(prog="vlengine data", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = sub.add_parser("corpus", help="generate the embedded, visually grounded corpus")
    c.add_argument("out_dir", help="folder to create (train/, heldout/, vocab.txt, text/, MANIFEST.json)")
    c.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    c.add_argument("--num-train", type=int, default=4000, help="training images (default 4000)")
    c.add_argument("--num-heldout", type=int, default=500, help="held-out images (default 500)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing corpus in out_dir")
    v = sub.add_parser("verify", help="check every file of a store against its index (sizes and sha256)")
    v.add_argument("store", help="a store folder (e.g. CORPUS/train)")
    i = sub.add_parser("info", help="print a store's record counts, columns and attributes")
    i.add_argument("store", help="a store folder (e.g. CORPUS/train)")
    try:
        from .convert.cli import add_convert_parser
    except ImportError:  # converters not installed in this build
        pass
    else:
        add_convert_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``vlengine data``; returns the exit code."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "corpus":
            from .corpus import build_embedded_corpus
            build_embedded_corpus(args.out_dir, seed=args.seed, num_train=args.num_train,
                                  num_heldout=args.num_heldout, overwrite=args.overwrite, verbose=True)
            return 0
        if args.command in ("verify", "info"):
            from .store import open_store
            store = open_store(args.store, verify="full" if args.command == "verify" else "size")
            if args.command == "verify":
                print(f"{store.path}: OK ({len(store.regions)} images, {len(store.captions)} captions)")
            else:
                print(json.dumps({"path": store.path, "images": len(store.regions), "captions": len(store.captions),
                                  "region_columns": sorted(store.regions.columns),
                                  "shards": len(store.regions.shards), "attrs": store.attrs}, indent=1))
            return 0
        return args.run(args)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        print(f"vlengine data {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
