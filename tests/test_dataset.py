"""LLaVA datasets (both storages, Arrow and list): bad input named by file and sample, skipping with a count,
images, collator, sampler."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from PIL import Image

from sec_mllm.data import IGNORE_INDEX, LlavaCollator, LlavaDataset, ModalityLengthGroupedSampler


def conv(q="<image>\nWhat color?", a="red"):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


@pytest.fixture(params=["arrow", "list"])
def storage(request):
    return request.param


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "img" / "wide.png")
    Image.new("L", (16, 16), 80).save(tmp_path / "img" / "gray.png")
    Image.new("RGBA", (16, 16), (0, 0, 255, 128)).save(tmp_path / "img" / "rgba.png")
    Image.new("P", (16, 16), 3).save(tmp_path / "img" / "palette.png")
    (tmp_path / "img" / "broken.png").write_bytes(b"not an image")
    return tmp_path


def write(folder, records, name="data.json"):
    path = folder / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    else:
        path.write_text(json.dumps(records))
    return str(path)


def dataset(processor, folder, records, storage, **kw):
    return LlavaDataset(write(folder, records), processor, "v1", str(folder / "img"), storage=storage, **kw)


def test_samples_images_and_text_only(make_model, folder, storage):
    _, processor = make_model()
    records = [
        {"id": f"m{i}", "image": name, "conversations": conv()}
        for i, name in enumerate(["wide.png", "gray.png", "rgba.png", "palette.png"])
    ]
    records.append({"id": "t", "conversations": conv("Hi", "hello")})
    records.append({"id": "multi", "image": "wide.png", "conversations": conv() + conv("And?", "round")})
    ds = dataset(processor, folder, records, storage)
    assert len(ds) == 6 and ds.modality_lengths[4] < 0 < ds.modality_lengths[0]
    for i in range(4):
        item = ds[i]
        assert item["pixel_values"].shape == (3, 32, 32)
        assert (item["input_ids"] == processor.image_token_id).sum() == processor.num_image_tokens
    assert ds[4]["pixel_values"] is None
    # pad: the wide red image is padded with the image processor's mean colour, not black
    top_row = ds[0]["pixel_values"][:, 0, :]
    mean = torch.tensor(processor.image_processor.image_mean)
    std = torch.tensor(processor.image_processor.image_std)
    torch.testing.assert_close(top_row.mean(-1) * std + mean, mean, atol=0.01, rtol=0)
    batch = LlavaCollator(processor.tokenizer.pad_token_id)([ds[0], ds[4], ds[5]])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    short = int(batch["attention_mask"][1].sum())
    assert (batch["labels"][1, short:] == IGNORE_INDEX).all() and (
        batch["input_ids"][1, short:] == processor.tokenizer.pad_token_id
    ).all()


@pytest.mark.parametrize(
    "record,match",
    [
        (
            {"id": "s1", "image": "missing.png", "conversations": conv()},
            "sample s1: image file .*missing.png is missing",
        ),
        (
            {"id": "s2", "image": "wide.png", "conversations": conv("no placeholder")},
            r"sample s2: 0 '<image>' placeholder\(s\) for 1 image\(s\)",
        ),
        ({"id": "s3", "conversations": conv()}, r"sample s3: 1 '<image>' placeholder\(s\) for 0 image\(s\)"),
        ({"id": "s4", "conversations": [{"from": "human", "value": "hi"}]}, "sample s4: no assistant \\(gpt\\) turn"),
        ({"id": "s5", "conversations": [{"from": "robot", "value": "hi"}]}, "sample s5: turn 0 must be"),
        ({"id": "s6"}, "sample s6: no 'conversations' list"),
    ],
)
def test_bad_samples_name_file_and_id(make_model, folder, storage, record, match):
    _, processor = make_model()
    with pytest.raises(ValueError, match="data.json: " + match):
        dataset(processor, folder, [record, {"id": "ok", "conversations": conv("Hi", "yes")}], storage)


def test_malformed_json_names_file_and_line(make_model, folder, storage):
    _, processor = make_model()
    (folder / "bad.json").write_text('[{"id": 1,\n "conversations": [}')
    with pytest.raises(ValueError, match=r"bad.json: malformed JSON at line 2"):
        LlavaDataset(str(folder / "bad.json"), processor, "v1", str(folder / "img"), storage=storage)
    (folder / "bad.jsonl").write_text(json.dumps({"id": 1, "conversations": conv("a", "b")}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2: malformed JSON line"):
        LlavaDataset(str(folder / "bad.jsonl"), processor, "v1", str(folder / "img"), storage=storage)


def test_skip_bad_samples_logs_and_counts(make_model, folder, storage, caplog):
    _, processor = make_model()
    records = [
        {"id": "ok", "image": "wide.png", "conversations": conv()},
        {"id": "gone", "image": "missing.png", "conversations": conv()},
        {"id": "broken", "image": "broken.png", "conversations": conv()},
        {"id": "text", "conversations": conv("Hi", "yes")},
    ]
    with caplog.at_level(logging.WARNING):
        ds = dataset(processor, folder, records, storage, skip_bad_samples=True)
        assert len(ds) == 3 and ds.num_skipped == 1
        item = ds[1]  # the unreadable image: replaced by the next good sample, and counted
    assert item["id"] == "text" and ds.num_skipped == 2
    assert "sample gone" in caplog.text and "sample broken: cannot read image" in caplog.text
    with pytest.raises(ValueError, match="sample broken: cannot read image"):
        dataset(processor, folder, records[2:], storage)[0]


def test_fully_masked_sample_is_reported(make_model, folder, storage):
    _, processor = make_model()
    ds = dataset(
        processor,
        folder,
        [{"id": "long", "image": "wide.png", "conversations": conv(a="red " * 50)}],
        storage,
        max_length=8,
    )
    with pytest.raises(
        ValueError, match="sample long: .*truncation would cut the image tokens|sample long: no assistant token"
    ):
        ds[0]


def test_modality_sampler_never_mixes_modalities():
    lengths = [5, -3, 7, -2, 9, -8, 4, -6, 1, 2, -1, 3]
    sampler = ModalityLengthGroupedSampler(lengths, batch_size=2, world_size=1, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))
    for start in range(0, len(order) - 2, 2):  # the last batch holds the two modalities' remainders
        signs = {lengths[i] > 0 for i in order[start : start + 2]}
        assert len(signs) == 1
    sampler.set_epoch(1)
    assert list(sampler) != order
