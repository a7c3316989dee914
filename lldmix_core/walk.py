"""Folder walks and `**` globs that read each real file once and always end.

`glob.glob(recursive=True)` follows symlinked folders without remembering where it has been: a
`sub/up -> ..` link reads every file once per level it can climb, and `sub/here -> .` never ends.
Here every folder is resolved to its real path and walked at most once, every file is returned at
most once (by real path), and no walk goes deeper than `MAX_DEPTH` folders. Symlinked folders are
walked after the plain ones, so when a file is reachable both ways the plain path is the one kept.
The paths returned are the ones found (not resolved): messages show what the user wrote.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from pathlib import Path

from lldmix_core.errors import UserError

MAX_DEPTH = 64  # folders below the walk's root; real trees of data are far shallower
_MAGIC = "*?["
_warned: set[str] = set()  # one warning per walked root and process (a path is walked several times)


def walk_files(root: Path, *, descend_to: int = MAX_DEPTH) -> tuple[list[Path], list[Path]]:
    """(files, duplicates) under the folder `root`, files sorted. `descend_to`: folders deeper than
    this many levels below `root` are not read (a glob without `**` needs only its own depth).
    `duplicates` are the paths skipped because they reach a folder or file already seen."""
    seen_folders: set[str] = set()
    seen_files: set[str] = set()
    files: list[Path] = []
    duplicates: list[Path] = []
    plain: list[tuple[Path, int]] = [(Path(root), 0)]
    linked: list[tuple[Path, int]] = []  # symlinked folders, read after every plain one
    while plain or linked:
        folder, depth = plain.pop() if plain else linked.pop(0)
        real = os.path.realpath(folder)
        if real in seen_folders:
            duplicates.append(folder)
            continue
        seen_folders.add(real)
        if depth > MAX_DEPTH:
            raise UserError(f"folder {root}: more than {MAX_DEPTH} levels of folders below it (at {folder})")
        for entry in _entries(folder):
            path = folder / entry.name
            if _is_dir(entry):
                if depth < descend_to:
                    (linked if entry.is_symlink() else plain).append((path, depth + 1))
            elif _is_file(entry):
                real_file = os.path.realpath(path)
                if real_file in seen_files:
                    duplicates.append(path)
                    continue
                seen_files.add(real_file)
                files.append(path)
    return sorted(files), duplicates


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []  # a dangling or unreadable folder holds nothing to read, as for glob


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file(follow_symlinks=True)
    except OSError:
        return False


def has_magic(path: str | Path) -> bool:
    return any(c in str(path) for c in _MAGIC)


def glob_base(pattern: str | Path) -> tuple[Path, tuple[str, ...]]:
    """(the folder before the first wildcard segment, the remaining pattern segments)."""
    parts = Path(pattern).parts
    first = next((i for i, p in enumerate(parts) if has_magic(p)), len(parts))
    return (Path(*parts[:first]) if first else Path(".")), parts[first:]


def expand_glob(pattern: str | Path) -> tuple[list[Path], list[Path]]:
    """(matching files, duplicates) for a glob with `*`, `?`, `[...]` and `**` (zero or more
    folders), matched as `glob.glob(recursive=True)` does (a wildcard does not match a leading
    dot), through `walk_files`, so each real file appears once."""
    base, rest = glob_base(pattern)
    if not base.is_dir():
        return [], []
    descend_to = MAX_DEPTH if "**" in rest else max(len(rest) - 1, 0)
    files, duplicates = walk_files(base, descend_to=descend_to)
    return [f for f in files if _matches(f.relative_to(base).parts, rest)], duplicates


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head, tail = pattern[0], pattern[1:]
    if head == "**" and not tail:  # everything below, as glob: nothing hidden
        return bool(parts) and not any(p.startswith(".") for p in parts)
    if head == "**":  # zero folders, or one (not hidden) and still inside the `**`
        if _matches(parts, tail):
            return True
        return len(parts) > 1 and not parts[0].startswith(".") and _matches(parts[1:], pattern)
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _matches(parts[1:], tail)


def warn_duplicates(root: str | Path, duplicates: list[Path]) -> None:
    """One `warning:` line on stderr per root and process when a walk skipped repeated paths."""
    if not duplicates or str(root) in _warned:
        return
    _warned.add(str(root))
    print(f"warning: {root}: skipped {len(duplicates)} path(s) that reach a folder or file already read "
          f"(e.g. {duplicates[0]}, through a symlink); each file is read once", file=sys.stderr)
