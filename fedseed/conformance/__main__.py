"""Regenerate docs/spec/conformance.json, or (--check) say whether it matches the reference implementation."""

from __future__ import annotations

import argparse
import pathlib
import sys

from fedseed.conformance import PATH, build, render


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m fedseed.conformance", description=__doc__)
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    ap.add_argument("--out", type=pathlib.Path, default=PATH, help=f"the vector file (default {PATH})")
    args = ap.parse_args()
    text = render(build())
    if not args.check:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out} ({len(text)} bytes)")
        return 0
    if not args.out.exists():
        print(f"no vector file at {args.out}: run this from a source checkout, or name the file with --out",
              file=sys.stderr)
        return 2
    if args.out.read_text() != text:
        print(f"{args.out} differs from what the reference implementation computes: regenerate it with "
              "python -m fedseed.conformance, and say in the change why the vectors moved", file=sys.stderr)
        return 1
    print(f"{args.out} matches the reference implementation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
