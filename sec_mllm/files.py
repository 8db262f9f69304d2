"""File helpers: JSON / JSONL readers whose errors name the file and line (and a flag's JSON value), a
streaming reader of a JSON array, and atomic writes."""

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


MAX_ELEMENT_CHARS = 1 << 26  # a JSON array element still unparsed with this much text after its start is malformed


class _TextWindow:
    """A sliding window over a text file: ``text[pos:]`` is unread; lines and columns stay absolute."""

    def __init__(self, f: Any, chunk_chars: int) -> None:
        self.f, self.chunk_chars = f, chunk_chars
        self.text, self.pos, self.eof = "", 0, False
        self.lines_before, self.column_base = 0, 0  # newlines before text[0]; characters of its line before it

    def more(self) -> bool:
        """Drop the read text and append the next chunk; False (nothing changed) at the end of the file."""
        chunk = "" if self.eof else self.f.read(self.chunk_chars)
        if not chunk:
            self.eof = True
            return False
        done = self.text[: self.pos]
        newlines = done.count("\n")
        self.lines_before += newlines
        self.column_base = len(done) - done.rfind("\n") - 1 if newlines else self.column_base + len(done)
        self.text, self.pos = self.text[self.pos :] + chunk, 0
        return True

    def next_char(self) -> str:
        """The next character that is not whitespace (``pos`` moved onto it), or "" at the end of the file."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t\n\r":
                self.pos += 1
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return ""

    def error(self, path: Path, pos: int, message: str) -> ValueError:
        line = self.lines_before + self.text.count("\n", 0, pos) + 1
        last = self.text.rfind("\n", 0, pos)
        column = pos - last if last >= 0 else self.column_base + pos + 1
        return ValueError(f"{path}: malformed JSON at line {line}, column {column}: {message}")


def iter_json_array(path: str | os.PathLike, what: str = "list", chunk_chars: int = 1 << 22) -> Iterator[Any]:
    """The elements of a JSON file whose top level is an array, parsed one at a time from chunks of the file
    (never the whole file in memory). Malformed JSON raises naming the file, line and column, as
    ``read_json`` does; another top level raises ``"{path}: expected a JSON {what}, got {type}"``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as f:
        window = _TextWindow(f, chunk_chars)
        if window.next_char() != "[":
            raise ValueError(f"{path}: expected a JSON {what}, got {type(read_json(path)).__name__}")
        window.pos += 1
        if window.next_char() == "]":
            window.pos += 1
        else:
            while True:
                if window.next_char() == "":
                    raise window.error(path, window.pos, "Expecting value")
                while True:
                    try:
                        value, end = decoder.raw_decode(window.text, window.pos)
                    except json.JSONDecodeError as err:
                        if len(window.text) - window.pos < MAX_ELEMENT_CHARS and window.more():
                            continue  # the element may run past the window
                        raise window.error(path, err.pos, err.msg) from err
                    if len(window.text) - end > 8 or not window.more():
                        break  # else a number may go on in the next chunk ("12" of "12.5e3" stops at "."): again
                window.pos = end
                yield value
                following = window.next_char()
                if following == "]":
                    window.pos += 1
                    break
                if following != ",":
                    raise window.error(path, window.pos, "Expecting ',' delimiter")
                window.pos += 1
        if window.next_char() != "":
            raise window.error(path, window.pos, "Extra data")


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
