"""File helpers: JSON / JSONL readers whose errors name the file and line (and a flag's JSON value), and atomic
writes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a ValueError names the file and position on malformed input."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line; malformed lines raise naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: malformed JSON line: {err.msg}") from err
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """A JSON object given on a command line (``what`` names the flag); malformed JSON or a non-object raises."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what}: malformed JSON {text!r}: {err.msg} at column {err.colno}") from err
    if not isinstance(value, dict):
        raise ValueError(f"{what}: expected a JSON object like '{{\"num_tokens\": 144}}', got {text!r}")
    return value


def require_keys(record: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{where}: missing key(s) {missing}")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text to a temporary file in the same folder, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON (indented, newline-terminated) atomically: see ``write_text_atomic``."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a fully written folder to ``target`` (same file system), replacing an existing ``target``: the
    old one is first renamed aside, so ``target`` is at every moment absent or a complete folder."""
    staging, target = Path(staging), Path(target)
    aside = staging.with_name(f"{staging.name}.replaced")
    if target.exists():
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(target, aside)
    os.replace(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


def publish_files(staging: str | os.PathLike, target: str | os.PathLike, last: tuple[str, ...] = ()) -> None:
    """Move every entry of a fully written ``staging`` folder into ``target`` by renames (each file appears
    whole), then remove ``staging``. The entries named in ``last`` are removed from ``target`` first and moved
    in last, in that order: while any of them is present, everything before it is in place. When ``target``
    does not exist the whole folder is renamed at once."""
    staging, target = Path(staging), Path(target)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)
        return
    for name in last:
        (target / name).unlink(missing_ok=True)
    entries = sorted(staging.iterdir(), key=lambda p: (p.name in last, last.index(p.name) if p.name in last else 0))
    for entry in entries:
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(entry, destination)
    staging.rmdir()


def save_pretrained_atomic(folder: str | os.PathLike, *parts: Any, last: tuple[str, ...] = ("config.json",)) -> None:
    """``part.save_pretrained`` for each part (model, processor, ...) into a staging folder beside ``folder``, then
    ``publish_files`` with ``last`` moved in last: a killed save leaves no half-written ``folder``."""
    folder = Path(folder)
    staging = folder.with_name(f".{folder.name}.in-progress")
    shutil.rmtree(staging, ignore_errors=True)
    for part in parts:
        part.save_pretrained(staging)
    publish_files(staging, folder, last)
