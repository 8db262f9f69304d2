"""GQA and TextVQA from local Hugging Face datasets in the lmms-lab layouts: the synthetic sets converted to
those layouts give the same answers files and the same scores as LLaVA's JSONL + image folder path."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sec_mllm.evaluation import run_gqa, run_textvqa
from sec_mllm.evaluation.hf_sets import GqaDataset, TextVqaDataset, id_list, load_local_dataset, object_map
from sec_mllm.experiments.synthetic import SyntheticSizes, generate
from sec_mllm.experiments.synthetic_hf import write_hf_layouts

SMALL = SyntheticSizes(gqa_test=14, textvqa_test=12, gqa_train=1, textvqa_train=1, captions=1, text_only=1)
COMMON = ["--batch-size", "4", "--max-new-tokens", "3", "--num-workers", "0"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = generate(str(tmp_path_factory.mktemp("syn")), SMALL, seed=1)
    write_hf_layouts(root)
    return root


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture
def ckpt(saved_sec):
    return str(saved_sec[2])


def answers(path: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "answer_id"} for line in path.read_text().splitlines()]


def scores(path: Path) -> dict:
    return json.loads(Path(f"{path}.scores.json").read_text())


def test_gqa_parquet_gives_the_jsonl_answers_and_scores(bench, ckpt, tmp_path):
    gqa = bench / "gqa"
    questions = str(gqa / "data" / "testdev_balanced_questions.json")
    old, new = tmp_path / "jsonl.jsonl", tmp_path / "parquet.jsonl"
    run_gqa.main(
        ["--model-path", ckpt, "--question-file", str(gqa / "llava_gqa_testdev_balanced.jsonl")]
        + ["--image-folder", str(gqa / "data" / "images"), "--questions", questions, "--answers-file", str(old)]
        + COMMON
    )
    hub = bench / "hf" / "GQA"  # images found beside the instructions (..._images), scored from the parquet rows
    run_gqa.main(
        ["--model-path", ckpt, "--dataset", str(hub / "testdev_balanced_instructions"), "--answers-file", str(new)]
        + COMMON
    )
    assert len(answers(new)) == SMALL.gqa_test and answers(new) == answers(old)
    assert scores(new) == scores(old) and scores(new)["num_questions"] == SMALL.gqa_test
    scored = tmp_path / "scored.jsonl"  # scoring only: --questions and --dataset agree
    scored.write_text(old.read_text())
    run_gqa.main(["--answers-file", str(scored), "--dataset", str(hub / "testdev_balanced_instructions")])
    assert scores(scored) == scores(old)


def test_embedded_images_are_the_image_files(bench):
    gqa = GqaDataset(bench / "hf" / "GQA" / "testdev_balanced_instructions")
    images = gqa.image_source()
    for row, line in zip(gqa.rows(), (bench / "gqa" / "llava_gqa_testdev_balanced.jsonl").read_text().splitlines()):
        with Image.open(bench / "gqa" / "data" / "images" / json.loads(line)["image"]) as im:
            assert images(row).tobytes() == im.convert("RGB").tobytes()
    textvqa = TextVqaDataset(bench / "hf" / "textvqa" / "data")
    images = textvqa.image_source()
    for row in textvqa.rows():
        with Image.open(bench / "textvqa" / "train_images" / f"{row['image']}.png") as im:
            assert images(row).tobytes() == im.convert("RGB").tobytes()


def test_gqa_saved_dataset_with_joined_images(bench, ckpt, tmp_path):
    hub = bench / "hf" / "GQA"
    instructions = GqaDataset(hub / "testdev_balanced_instructions")
    stored = load_local_dataset(hub / "testdev_balanced_images")
    images = {r["id"]: r["image"] for r in stored.cast_column("image", datasets.Image(decode=False))}  # file bytes
    joined = instructions.dataset.map(lambda r: {"image": images[r["imageId"]]}).cast_column("image", datasets.Image())
    datasets.DatasetDict({"testdev": joined}).save_to_disk(str(tmp_path / "saved"))
    out = tmp_path / "saved.jsonl"
    run_gqa.main(["--model-path", ckpt, "--dataset", str(tmp_path / "saved"), "--answers-file", str(out)] + COMMON)
    reference = tmp_path / "reference.jsonl"
    run_gqa.main(
        ["--model-path", ckpt, "--dataset", str(hub / "testdev_balanced_instructions"), "--answers-file"]
        + [str(reference)]
        + COMMON
    )
    assert answers(out) == answers(reference) and scores(out) == scores(reference)


@pytest.mark.parametrize("ocr", [True, False])
def test_textvqa_parquet_gives_the_jsonl_answers_and_scores(bench, ckpt, tmp_path, ocr):
    tv = bench / "textvqa"
    question_file = tv / ("llava_textvqa_val_v051_ocr.jsonl" if ocr else "llava_textvqa_val_v051_noocr.jsonl")
    old, new = tmp_path / "jsonl.jsonl", tmp_path / "parquet.jsonl"
    run_textvqa.main(
        ["--model-path", ckpt, "--question-file", str(question_file), "--image-folder", str(tv / "train_images")]
        + ["--annotation-file", str(tv / "TextVQA_0.5.1_val.json"), "--answers-file", str(old)]
        + COMMON
    )
    no_ocr = [] if ocr else ["--no-ocr"]
    hub = bench / "hf" / "textvqa"
    run_textvqa.main(
        ["--model-path", ckpt, "--dataset", str(hub / "data"), "--answers-file", str(new)] + no_ocr + COMMON
    )
    assert len(answers(new)) == SMALL.textvqa_test and answers(new) == answers(old)
    assert scores(new) == scores(old)


def test_parquet_without_hugging_face_metadata(bench, ckpt, tmp_path):
    """A parquet written by plain pyarrow: images are {bytes, path} structs, not an Image feature."""
    source = bench / "hf" / "textvqa" / "data" / "validation-00000-of-00001.parquet"
    table = pq.read_table(source)
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "plain.parquet")
    rows = TextVqaDataset(tmp_path / "plain.parquet").rows()
    image = TextVqaDataset(tmp_path / "plain.parquet").image_source()(rows[0])
    reference = TextVqaDataset(source)
    assert rows == reference.rows()
    assert image.tobytes() == reference.image_source()(rows[0]).tobytes()


def test_missing_columns_name_the_file_and_field(bench, tmp_path):
    source = bench / "hf" / "GQA" / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet"
    table = pq.read_table(source).replace_schema_metadata(None)
    pq.write_table(table.drop(["answer"]), tmp_path / "no_answer.parquet")
    gqa = GqaDataset(tmp_path / "no_answer.parquet")  # questions can still be asked ...
    assert len(gqa.rows()) == SMALL.gqa_test
    with pytest.raises(ValueError, match=r"no_answer.parquet: missing column\(s\) \['answer'\]"):
        gqa.questions()  # ... but not scored
    pq.write_table(table.drop(["imageId"]), tmp_path / "no_image_id.parquet")
    with pytest.raises(ValueError, match=r"no_image_id.parquet: missing column\(s\) \['imageId'\]"):
        GqaDataset(tmp_path / "no_image_id.parquet")
    tv = pq.read_table(bench / "hf" / "textvqa" / "data" / "validation-00000-of-00001.parquet")
    tv = tv.replace_schema_metadata(None)
    pq.write_table(tv.drop(["image"]), tmp_path / "no_image.parquet")
    with pytest.raises(ValueError, match=r"no_image.parquet: missing column\(s\) \['image'\]"):
        TextVqaDataset(tmp_path / "no_image.parquet")
    with pytest.raises(SystemExit):
        run_gqa.main(["--answers-file", str(tmp_path / "a.jsonl")])  # neither --questions nor --dataset


def test_several_splits_need_a_choice(bench, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    source = bench / "hf" / "textvqa" / "data" / "validation-00000-of-00001.parquet"
    for name in ("validation-00000-of-00001.parquet", "test-00000-of-00001.parquet"):
        (folder / name).write_bytes(source.read_bytes())
    with pytest.raises(ValueError, match=r"several splits \['test', 'validation'\]; choose one with --split"):
        TextVqaDataset(folder)
    assert len(TextVqaDataset(folder, split="validation").rows()) == SMALL.textvqa_test


@pytest.mark.parametrize(
    "value,ids",
    [
        (None, []),
        ("", []),
        (["1", 2], ["1", "2"]),
        ('["201", "202"]', ["201", "202"]),
        ("['201', '202']", ["201", "202"]),
        ("201, 202", ["201", "202"]),
        ("201", ["201"]),
    ],
)
def test_entailed_ids_in_any_serialisation(value, ids):
    assert id_list(value) == ids


def test_annotations_as_mapping_or_list():
    assert object_map({"2": "123", "4:6": "456"}) == {"2": "123", "4:6": "456"}
    assert object_map([{"objectId": "123", "value": "2"}, {"objectId": "456", "value": "4:6"}]) == {
        "2": "123",
        "4:6": "456",
    }
    assert object_map(None) == {} and object_map([]) == {}
