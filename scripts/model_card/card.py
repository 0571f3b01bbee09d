"""Prints the model card's FID tables: the headline (diffnotes/pretrained/fid/<ckpt>-headline.json, written by
headline.py) and the 2 000-sample tables (diffnotes/pretrained/fid/<ckpt>.json, written by fid_rows.py).

    .venv/bin/python scripts/model_card/card.py [--ckpt cifar10-cpu-3]

The tables are diffnotes.records.fid_tables (chapters 3 and 7 show the same); a row that is not in the file
yet reads "not measured".
"""
import argparse
import sys

from diffnotes.checkpoints import DEFAULT_MODEL
from diffnotes.records import fid_tables, headline_table, measurements


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default=DEFAULT_MODEL)
    args = p.parse_args()
    head = measurements("headline", args.ckpt)
    if head is not None:
        print(headline_table(args.ckpt))
        print(f"\n{head['protocol']}. Command: `{head['command']}`; CPU: {head['cpu']}, torch {head['torch']}.\n")
    tables = fid_tables(args.ckpt)
    if not tables:
        sys.exit(f"no FID rows for {args.ckpt}: run scripts/model_card/fid_rows.py --ckpt {args.ckpt} first")
    res = measurements("fid", args.ckpt)
    print("\n\n".join(tables))
    print(f"\n{res['protocol']}. Command: `{res['command']}`; CPU: {res['cpu']}, torch {res['torch']}.")


if __name__ == "__main__":
    main()
