"""Write ``localisation.csv``: a four-class localisation task made from the bundled Swiss-Prot 2014
sample, the worked example of a user's own task in the README.

A protein is kept when its GO cellular-component terms name exactly one of nucleus (GO:0005634),
mitochondrion (GO:0005739), plasma membrane (GO:0005886) or extracellular region (GO:0005576,
"secreted"); the columns are the ones a UniProt export has (``Entry``, ``Sequence``) plus
``compartment``, so the probe needs ``--label-col compartment``.

Usage: ``python examples/localisation_task.py [OUT.csv]`` (default ``localisation.csv``).
"""

from __future__ import annotations

import csv
import lzma
import sys

from lsdkit.data.fasta import read_fasta
from lsdkit.data.bundle import SAMPLE_FASTA, SAMPLE_GO, SAMPLE_SOURCE
from lsdkit.data.sources import default_data_dir
from lsdkit.io import atomic_open

COMPARTMENTS = {"GO:0005634": "nucleus", "GO:0005739": "mitochondrion", "GO:0005886": "plasma_membrane",
                "GO:0005576": "secreted"}


def main(out: str = "localisation.csv") -> None:
    folder = default_data_dir() / SAMPLE_SOURCE
    with lzma.open(folder / SAMPLE_GO, "rt") as f:
        go_cc = {r["accession"]: set(r["go_cc"].split(";")) for r in csv.DictReader(f, delimiter="\t")}
    rows = []
    for rec in read_fasta(folder / SAMPLE_FASTA):
        named = [COMPARTMENTS[t] for t in go_cc.get(rec.id, ()) if t in COMPARTMENTS]
        if len(named) == 1:
            rows.append((rec.id, rec.sequence, named[0]))
    with atomic_open(out, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["Entry", "Sequence", "compartment"])
        w.writerows(rows)
    print(f"wrote {len(rows)} proteins to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
