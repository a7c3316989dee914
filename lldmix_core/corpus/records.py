"""Read (domain, text) records from Pile-format files or any dataset with a text and a domain column.

Formats: `.jsonl` / `.json` (one JSON object per line), `.jsonl.zst` / `.json.zst` (zstandard), and
`.parquet`; a folder or a glob reads every such file in sorted order. Pile records look like
`{"text": "...", "meta": {"pile_set_name": "Github"}}`; `domain_field` takes a dotted path.

JSON lines are read by a streaming reader of our own (constant memory, any size) so that a bad
line is reported with its file and line number. Parquet goes through Hugging Face `datasets`
(streaming for files over 64 MB), reporting the file and row.
"""

from __future__ import annotations

import io
import json
import unicodedata
from pathlib import Path
from typing import Iterator

from lldmix_core.errors import UserError
from lldmix_core.walk import expand_glob, glob_base, has_magic, walk_files, warn_duplicates

JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.zst", ".json.zst")
MAX_DOMAIN_CHARS = 200  # + "weight/" and a key's 9-character hash suffix stays within MLflow's 250
STREAMING_THRESHOLD = 64 * 1024 * 1024


def _files(path: str | Path) -> list[Path]:
    p = Path(path)
    if has_magic(path):  # each real folder and file once, bounded depth: a symlink loop cannot hang it
        found, duplicates = expand_glob(path)
        base = glob_base(path)[0]
        warn_duplicates(path, duplicates)
    elif p.is_dir():
        found, duplicates = walk_files(p)
        base = p
        warn_duplicates(path, duplicates)
    elif p.is_file():
        return [p]
    else:
        raise UserError(f"corpus file {p} does not exist")
    found = [f for f in found if f.name.endswith(JSON_SUFFIXES + (".parquet",))]
    root = base.resolve()
    for f in found:  # a symlink inside the folder must not import a file from elsewhere
        real = f.resolve()
        if real != root and root not in real.parents:
            raise UserError(f"corpus file {f} resolves to {real}, outside the corpus folder {root}: "
                            "copy the file in instead of linking it")
    if not found:
        raise UserError(f"corpus {path}: no .jsonl, .jsonl.zst or .parquet files found")
    return found


def corpus_files(path: str | Path) -> list[Path]:
    """The data files a corpus path names (a file, a folder or a glob), each confined to that folder."""
    return _files(path)


def _get(record: dict, dotted: str):
    cur = record
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _check(record, file: Path, where: str, text_field: str, domain_field: str) -> tuple[str, str]:
    if not isinstance(record, dict):
        raise UserError(f"{file}:{where}: a record must be a JSON object")
    text = _get(record, text_field)
    if text is None:
        raise UserError(f"{file}:{where}: record has no field {text_field!r}")
    if not isinstance(text, str):
        raise UserError(f"{file}:{where}: field {text_field!r} is not a string")
    domain = _get(record, domain_field)
    if domain is None or domain == "":
        raise UserError(f"{file}:{where}: record has no domain field {domain_field!r}")
    # one domain per name as people read it: "Café" typed two ways (é, or e + combining accent) is one
    domain = unicodedata.normalize("NFC", str(domain))
    if len(domain) > MAX_DOMAIN_CHARS:  # refused here, before any training, not at the first MLflow write
        raise UserError(f"{file}:{where}: domain name of {len(domain)} characters is longer than "
                        f"{MAX_DOMAIN_CHARS} (domain names become MLflow metric keys, at most 250 characters)")
    return domain, text


def _json_lines(file: Path) -> Iterator[tuple[int, bytes]]:
    raw = open(file, "rb")
    try:
        if file.name.endswith(".zst"):
            import zstandard

            stream = io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
        else:
            stream = raw
        lineno = 0
        try:
            for line in stream:
                lineno += 1
                yield lineno, line
        except Exception as e:  # zstandard.ZstdError and friends: a truncated or corrupt archive
            raise UserError(f"{file}: compressed data is corrupt or truncated after line {lineno} ({e})") from None
        if file.name.endswith(".zst"):
            # a truncated frame can end the stream without an error: check the frame ended cleanly
            _check_zst_complete(file)
    finally:
        raw.close()


def _check_zst_complete(file: Path) -> None:
    import zstandard

    with open(file, "rb") as f:
        d = zstandard.ZstdDecompressor().decompressobj()
        while chunk := f.read(1 << 20):
            try:
                d.decompress(chunk)
            except zstandard.ZstdError as e:
                raise UserError(f"{file}: compressed data is corrupt ({e})") from None
        if not d.eof:
            raise UserError(f"{file}: compressed data is truncated (the zstd frame does not end)")


def _iter_json(file: Path, text_field: str, domain_field: str) -> Iterator[tuple[str, str]]:
    for lineno, line in _json_lines(file):
        if not line.strip():
            continue
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{file}:{lineno}: invalid UTF-8 at byte {e.start}") from None
        try:
            record = json.loads(decoded)
        except json.JSONDecodeError as e:
            raise UserError(f"{file}:{lineno}: not valid JSON ({e.msg})") from None
        yield _check(record, file, str(lineno), text_field, domain_field)


def _iter_parquet(file: Path, text_field: str, domain_field: str, streaming: bool | None) -> Iterator[tuple[str, str]]:
    from datasets import load_dataset

    from lldmix_core.config import get_settings

    stream = streaming if streaming is not None else file.stat().st_size > STREAMING_THRESHOLD
    # `datasets` caches what it reads; under LLDMIX_HOME, not the user's ~/.cache, like every other file
    cache = get_settings().home / "cache" / "datasets"
    try:
        ds = load_dataset("parquet", data_files=str(file), split="train", streaming=stream, cache_dir=str(cache))
    except Exception as e:
        raise UserError(f"{file}: cannot read as parquet ({str(e).splitlines()[0]})") from None
    for row, record in enumerate(ds):
        yield _check(record, file, f"row {row}", text_field, domain_field)


def iter_records(path: str | Path, *, text_field: str = "text", domain_field: str = "meta.pile_set_name",
                 streaming: bool | None = None) -> Iterator[tuple[str, str]]:
    """Yield (domain, text) for every record of the file(s) at `path`, in file order."""
    for file in _files(path):
        if file.name.endswith(".parquet"):
            yield from _iter_parquet(file, text_field, domain_field, streaming)
        else:
            yield from _iter_json(file, text_field, domain_field)
