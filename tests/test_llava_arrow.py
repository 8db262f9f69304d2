"""The Arrow storage of LLaVA training data against the list-based path: the same batches, lengths and
bad-sample reports on the synthetic data; one conversion shared by ranks started together; stale copies
converted again, never reused."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sec_mllm.data import LlavaCollator, LlavaDataset, ModalityLengthGroupedSampler
from sec_mllm.data.llava_arrow import open_llava_arrow
from sec_mllm.experiments.synthetic import SyntheticSizes, generate

SMALL = SyntheticSizes(gqa_test=1, textvqa_test=1, gqa_train=80, textvqa_train=40, captions=24, text_only=12)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return generate(str(tmp_path_factory.mktemp("syn")), SMALL, seed=0)


def conv(q="<image>\nWhat color?", a="red"):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def both(data_path, processor, template, image_folder, **kw):
    return [
        LlavaDataset(str(data_path), processor, template, str(image_folder), storage=storage, **kw)
        for storage in ("list", "arrow")
    ]


def assert_same_batches(old: LlavaDataset, new: LlavaDataset, pad_id: int, batch_size: int = 4) -> None:
    assert len(old) == len(new)
    np.testing.assert_array_equal(old.modality_lengths, new.modality_lengths)
    orders = [list(ModalityLengthGroupedSampler(ds.modality_lengths, batch_size, 2, seed=3)) for ds in (old, new)]
    assert orders[0] == orders[1] and sorted(orders[0]) == list(range(len(old)))
    collate = LlavaCollator(pad_id)
    for start in range(0, len(old), batch_size):
        indices = orders[0][start : start + batch_size]
        items = [[ds[i] for i in indices] for ds in (old, new)]
        assert [x["id"] for x in items[0]] == [x["id"] for x in items[1]]
        a, b = collate(items[0]), collate(items[1])
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


@pytest.mark.parametrize("name,template", [("instructions.json", "v1"), ("captions.json", "plain")])
def test_identical_batches_on_synthetic_data(bench, make_model, name, template):
    _, processor = make_model()
    old, new = both(bench / "train" / name, processor, template, bench / "train" / "images")
    assert (old.modality_lengths < 0).any() == (template == "v1")  # the instructions have text-only samples
    assert_same_batches(old, new, processor.tokenizer.pad_token_id)


def test_identical_batches_from_jsonl(bench, make_model, tmp_path):
    _, processor = make_model()
    records = json.loads((bench / "train" / "instructions.json").read_text())
    path = tmp_path / "instructions.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    old, new = both(path, processor, "v1", bench / "train" / "images")
    assert_same_batches(old, new, processor.tokenizer.pad_token_id)


def test_same_bad_sample_reports(make_model, tmp_path, caplog):
    _, processor = make_model()
    (tmp_path / "img").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "img" / "ok.png")
    records = [
        {"id": "good", "image": "ok.png", "conversations": conv()},
        {"id": "gone", "image": "missing.png", "conversations": conv()},
        "not a record",
        {"id": "nogpt", "conversations": [{"from": "human", "value": "hi"}]},
        {"conversations": conv("no id", "then its position is the id")},
        {"id": "two", "image": "ok.png", "conversations": conv("<image> <image>")},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records))
    messages = {}
    for storage in ("list", "arrow"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            ds = LlavaDataset(
                str(path), processor, "v1", str(tmp_path / "img"), skip_bad_samples=True, storage=storage
            )
        messages[storage] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(ds) == 2 and ds.num_skipped == 4 and [ds[i]["id"] for i in range(2)] == ["good", "4"]
        with pytest.raises(ValueError) as err:
            LlavaDataset(str(path), processor, "v1", str(tmp_path / "img"), storage=storage)
        messages[storage].append(str(err.value))
    assert messages["list"] == messages["arrow"]
    assert "data.json: sample gone: image file" in messages["arrow"][0]
    assert messages["arrow"][-1] == messages["arrow"][0].split("): ", 1)[1]  # the first bad sample stops the run


@pytest.mark.parametrize("storage", ["arrow", "list"])
def test_json_that_is_not_a_list_names_the_file(make_model, tmp_path, storage):
    _, processor = make_model()
    (tmp_path / "data.json").write_text(json.dumps({"conversations": conv("a", "b")}))
    with pytest.raises(ValueError, match=r"data.json: expected a JSON list of samples, got dict"):
        LlavaDataset(str(tmp_path / "data.json"), processor, "v1", storage=storage)


def test_changed_source_is_converted_again(tmp_path):
    path = tmp_path / "data.json"

    def write(prefix: str, mtime: float) -> None:
        path.write_text(json.dumps([{"id": f"{prefix}{i}", "conversations": conv("hi", "yo")} for i in range(3)]))
        os.utime(path, (mtime, mtime))

    write("a", 1_000_000_000)
    first = open_llava_arrow(path, "<image>")
    assert first.converted and [first[i][0] for i in range(3)] == ["a0", "a1", "a2"]
    again = open_llava_arrow(path, "<image>")
    assert not again.converted and again.entry == first.entry
    write("b", 1_000_000_000)  # same size, same mtime: the rewrite still changes the ctime
    changed = open_llava_arrow(path, "<image>")
    assert changed.converted and [changed[i][0] for i in range(3)] == ["b0", "b1", "b2"]
    entries = [p for p in (tmp_path / "data.json.arrow").iterdir() if p.is_dir()]
    assert entries == [changed.entry]  # the copy of the older version is gone, no temporary folder is left
    assert [first[i][0] for i in range(3)] == ["a0", "a1", "a2"]  # an open copy stays readable (memory-mapped)


def test_image_that_appears_makes_the_copy_stale(make_model, tmp_path):
    _, processor = make_model()
    (tmp_path / "img").mkdir()
    path = tmp_path / "data.json"
    path.write_text(
        json.dumps([{"id": "later", "image": "later.png", "conversations": conv()}, {"conversations": conv("a", "b")}])
    )
    ds = LlavaDataset(str(path), processor, "v1", str(tmp_path / "img"), skip_bad_samples=True)
    assert len(ds) == 1 and ds.num_skipped == 1
    Image.new("RGB", (20, 20)).save(tmp_path / "img" / "later.png")
    ds = LlavaDataset(str(path), processor, "v1", str(tmp_path / "img"), skip_bad_samples=True)
    assert len(ds) == 2 and ds.num_skipped == 0 and ds.samples.converted


def test_cache_dir_elsewhere(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.json").write_text(json.dumps([{"id": "x", "conversations": conv("a", "b")}]))
    opened = open_llava_arrow(data / "d.json", "<image>", cache_dir=tmp_path / "cache")
    assert opened.entry.parent == tmp_path / "cache" / "d.json.arrow" and sorted(os.listdir(data)) == ["d.json"]


def _open_as_rank(path: str, barrier, results) -> None:
    barrier.wait()
    opened = open_llava_arrow(path, "<image>")
    results.put((opened.converted, len(opened), opened[len(opened) - 1][0]))


def test_ranks_started_together_convert_once(tmp_path):
    path = tmp_path / "big.json"
    n = 20000
    path.write_text(
        json.dumps([{"id": f"s{i}", "conversations": conv(f"q {i}", "a " * (i % 7 + 1))} for i in range(n)])
    )
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    ranks = [ctx.Process(target=_open_as_rank, args=(str(path), barrier, results)) for _ in range(2)]
    for p in ranks:
        p.start()
    got = sorted(results.get(timeout=300) for _ in ranks)
    for p in ranks:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert got == [(False, n, f"s{n - 1}"), (True, n, f"s{n - 1}")]
    group = tmp_path / "big.json.arrow"
    assert len([p for p in group.iterdir() if p.is_dir()]) == 1


def test_arrow_rows_are_not_held_in_python(bench, make_model):
    """The Arrow dataset keeps no per-sample Python objects: its samples are a memory-mapped table."""
    _, processor = make_model()
    ds = LlavaDataset(str(bench / "train" / "instructions.json"), processor, "v1", str(bench / "train" / "images"))
    table = ds.samples.dataset.data
    assert type(table).__name__ == "MemoryMappedTable"
    assert Path(table.path) == ds.samples.entry / "data.arrow"
