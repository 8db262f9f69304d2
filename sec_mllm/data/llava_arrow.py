"""One memory-mapped Arrow copy of a LLaVA JSON / JSONL training file, shared by every rank.

LLaVA parses its training JSON into Python objects in every rank: for the 665K-sample mix that is
several GB per rank and a slow start. Here the file is converted once into an Arrow file (the IPC stream
format ``datasets`` writes), and every rank opens it with ``datasets.Dataset.from_file``, which
memory-maps it: the pages live in the OS page cache, shared by all ranks of a node, and only the pages a
rank reads become resident.

The conversion reads the file one record at a time (``records.iter_records``: a window of the file and a
batch of rows in memory, not the file's Python objects), applies ``records.check_record`` to every record
(the list-based path's check) and stores the usable samples, already reworded (``<image>`` moved to the
front of the first turn as LLaVA does):

    id               string        the record's id, or its position in the file
    image            string        relative to the image folder; null for text-only samples
    values           list<string>  the turns' texts; turn 0 is human and the roles alternate
    modality_length  int32         word count, positive with an image, negative text-only

``meta.json`` beside it lists the bad samples in file order (position, id, reason), so that opening the
cache reports them as the list-based path would. Image existence is checked once, at conversion, and
stored: when an image recorded as missing exists at a later open, the entry is stale and is rebuilt; an
image deleted after the conversion is found when its sample is loaded (an unreadable image, reported and
skipped as before).

Cache layout: ``<root>/<file name>.arrow/<key>/{data.arrow, meta.json}``. The root is ``cache_dir``, else
the data file's folder, else (read-only folder) the ``datasets`` cache. The key hashes this converter's
format version, the file's absolute path, size, mtime and ctime (ns) and inode, the image token and the
image folder: a changed source gets a new key and is converted again, never reused, and its older entries
are removed. (Not caught: a rewrite in place to the same size within one tick of the filesystem's clock,
which leaves every one of these unchanged; a file replaced by rename always gets a new inode.)
An entry is written to a temporary folder and renamed into place under a file lock, so of several ranks
started together one converts and the others wait for it, then open the result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
from filelock import FileLock, Timeout
from tqdm import tqdm

from ..files import write_json_atomic
from .records import MissingImage, check_record, iter_records, modality_length, sample_id
from .templates import BadSample

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "image": datasets.Value("string"),
        "values": datasets.List(datasets.Value("string")),
        "modality_length": datasets.Value("int32"),
    }
)
BATCH_ROWS = 4096


@dataclass(frozen=True)
class SourceKey:
    """What an Arrow copy was made from; any change makes a new copy."""

    source: str
    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    image_token: str
    image_folder: str | None
    format: int = FORMAT_VERSION

    @classmethod
    def of(cls, data_path: str | os.PathLike, image_token: str, image_folder: str | os.PathLike | None) -> SourceKey:
        path = Path(data_path)
        if not path.is_file():
            raise FileNotFoundError(f"{data_path}: no such file")
        stat = path.stat()
        folder = str(Path(image_folder).resolve()) if image_folder else None
        return cls(
            str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, image_token, folder
        )

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ArrowSamples:
    """An opened cache entry: the usable samples (memory-mapped) and the bad ones found at conversion."""

    dataset: datasets.Dataset
    bad: list[dict[str, Any]]
    entry: Path
    converted: bool = False  # this call converted the file (False: opened an existing copy)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[str, list[tuple[str, str]], str | None]:
        row = self.dataset[index]
        turns = [("human" if i % 2 == 0 else "gpt", value) for i, value in enumerate(row["values"])]
        return row["id"], turns, row["image"]

    def modality_lengths(self) -> Any:
        return self.dataset.data.column("modality_length").to_numpy()  # [num_samples] int32


def cache_root(data_path: str | os.PathLike, cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir:
        return Path(cache_dir)
    folder = Path(data_path).resolve().parent
    if os.access(folder, os.W_OK):
        return folder
    fallback = Path(datasets.config.HF_DATASETS_CACHE) / "sec_mllm_llava"
    logger.info("%s is read-only; caching the Arrow copy of %s under %s", folder, data_path, fallback)
    return fallback


def open_llava_arrow(
    data_path: str | os.PathLike,
    image_token: str,
    image_folder: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> ArrowSamples:
    """The Arrow copy of ``data_path``, converted first if there is none for this exact source."""
    key = SourceKey.of(data_path, image_token, image_folder)
    group = cache_root(data_path, cache_dir) / f"{Path(data_path).name}.arrow"
    entry = group / key.digest()
    opened = _open(entry, key)
    if opened is not None:
        return opened
    group.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(group / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("waiting for another process to convert %s into %s", data_path, entry)
        lock.acquire()
    try:
        opened = _open(entry, key)
        if opened is None:
            _remove_leftovers(group, key)
            _build(data_path, image_folder, key, entry)
            opened = _open(entry, key)
            if opened is None:
                raise RuntimeError(f"{entry}: the Arrow copy of {data_path} was written but cannot be opened")
            opened.converted = True
    finally:
        lock.release()
    return opened


def _open(entry: Path, key: SourceKey) -> ArrowSamples | None:
    """The entry when it is complete, made from ``key``, and no image recorded missing has appeared."""
    try:
        meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        if meta.get("key") != asdict(key):
            return None
        appeared = [
            b["missing_image"] for b in meta["bad"] if b["missing_image"] and Path(b["missing_image"]).is_file()
        ]
        if appeared:
            logger.info("%s: image(s) recorded as missing now exist (e.g. %s); converting again", entry, appeared[0])
            return None
        dataset = datasets.Dataset.from_file(str(entry / "data.arrow"))
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, KeyError):
        return None  # absent, or replaced while we looked: the caller takes the lock and looks again
    return ArrowSamples(dataset, meta["bad"], entry)


def _remove_leftovers(group: Path, key: SourceKey) -> None:
    """Under the lock: temporary folders of interrupted conversions, and entries of older versions of the source."""
    for path in group.iterdir():
        if not path.is_dir():
            continue
        if path.name.startswith("."):
            shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            old = json.loads((path / "meta.json").read_text(encoding="utf-8"))["key"]
        except (OSError, json.JSONDecodeError, KeyError):
            continue
        if old["source"] == key.source and any(
            old[k] != getattr(key, k) for k in ("size", "mtime_ns", "ctime_ns", "inode")
        ):
            logger.info("removing the Arrow copy of an older version of %s: %s", key.source, path)
            shutil.rmtree(path, ignore_errors=True)


def _build(data_path: str | os.PathLike, image_folder: str | os.PathLike | None, key: SourceKey, entry: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.tmp-", dir=entry.parent))
    try:
        meta = convert(data_path, image_folder, key, tmp / "data.arrow")
        write_json_atomic(tmp / "meta.json", meta)
        if entry.exists():  # same key, but stale (a missing image appeared): swap it out
            old = entry.with_name(f".{entry.name}.old-{os.getpid()}")
            os.rename(entry, old)
            os.rename(tmp, entry)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert(
    data_path: str | os.PathLike, image_folder: str | os.PathLike | None, key: SourceKey, out: Path
) -> dict[str, Any]:
    """Write the usable samples of ``data_path`` to the Arrow file ``out``; return the metadata (bad samples)."""
    start = time.perf_counter()
    folder = Path(image_folder) if image_folder else None
    schema = FEATURES.arrow_schema
    columns: dict[str, list[Any]] = {name: [] for name in FEATURES}
    bad: list[dict[str, Any]] = []
    num_records = num_samples = 0
    with pa.OSFile(str(out), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:

        def flush() -> None:
            if columns["id"]:
                writer.write_batch(pa.RecordBatch.from_pydict(columns, schema=schema))
                for values in columns.values():
                    values.clear()

        records = tqdm(iter_records(data_path), desc=f"converting {Path(data_path).name} to Arrow", unit=" samples")
        for index, record in enumerate(records):
            num_records += 1
            sid = sample_id(record, index)
            try:
                turns, image = check_record(record, key.image_token, folder)
            except BadSample as err:
                missing = os.path.abspath(err.path) if isinstance(err, MissingImage) else None
                bad.append({"index": index, "id": sid, "reason": str(err), "missing_image": missing})
                continue
            columns["id"].append(sid)
            columns["image"].append(image)
            columns["values"].append([value for _, value in turns])
            columns["modality_length"].append(modality_length(turns, image is not None))
            num_samples += 1
            if len(columns["id"]) >= BATCH_ROWS:
                flush()
        flush()
    return {
        "key": asdict(key),
        "num_records": num_records,
        "num_samples": num_samples,
        "conversion_seconds": round(time.perf_counter() - start, 3),
        "bad": bad,
    }
