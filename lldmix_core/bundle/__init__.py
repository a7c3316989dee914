"""Portable result bundles: `lldmix db export` writes a spec's (or every) finished runs and the rows they
need to one SQLite file at the schema's head revision; `lldmix db import` merges such a file into any
lldmix database (SQLite or PostgreSQL) by natural keys, so imported work is found, not recomputed.

    selection.py  which rows travel (finished groups and their closure)    export.py  write the file
    open.py       check a file is a bundle at this revision                merge.py   merge it, ids remapped
    keys.py       a trained run's key re-derived for the importing database's target id

Checkpoints, token streams, samples files and MLflow runs do not travel: only database rows.
"""

from lldmix_core.bundle.export import ExportReport, export_bundle
from lldmix_core.bundle.merge import ImportReport, import_bundle

__all__ = ["ExportReport", "ImportReport", "export_bundle", "import_bundle"]
