"""The streaming JSON array reader: the same elements as json.load whatever the chunk size, and the same
file / line / column in its errors as read_json."""

from __future__ import annotations

import json
import random

import pytest

from sec_mllm.experiments.llava_mix import generate_mix
from sec_mllm.files import iter_json_array, read_json

CHUNKS = (1, 2, 3, 7, 64, 1 << 22)


def random_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["int", "float", "str", "bool", "null", "list", "dict"] if depth < 3 else ["int", "str"])
    if kind == "int":
        return rng.randint(-(10**12), 10**12)
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "str":
        return "".join(rng.choice('ab "\\\n\té€😀[]{},:') for _ in range(rng.randint(0, 12)))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}


@pytest.mark.parametrize("seed", range(6))
def test_same_elements_as_json_load(tmp_path, seed):
    rng = random.Random(seed)
    data = [random_value(rng) for _ in range(rng.randint(0, 40))]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data, indent=rng.choice([None, 1, 2]), ensure_ascii=rng.random() < 0.5) + "\n")
    for chunk in CHUNKS:
        assert list(iter_json_array(path, chunk_chars=chunk)) == data


@pytest.mark.parametrize(
    "text",
    [
        '[{"id": 1,\n "conversations": [}',
        "[1 2]",
        "[1,",
        "[1,]",
        "[1] x",
        '[\n  {"a": "unterminated\n',
        '[{"a": 1},\n {"b": tru}]',
        "[",
        "[1, 2, 3\n\n",
        '[{"a": 1}, {"b": [1, 2,, 3]}]',
    ],
)
def test_errors_name_the_same_line_and_column_as_read_json(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError) as expected:
        read_json(path)
    for chunk in CHUNKS:
        with pytest.raises(ValueError) as got:
            list(iter_json_array(path, chunk_chars=chunk))
        assert str(got.value) == str(expected.value)


def test_top_level_that_is_not_an_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"a": [1, 2]}')
    with pytest.raises(ValueError, match=r"d.json: expected a JSON list of samples, got dict"):
        list(iter_json_array(path, what="list of samples"))
    path.write_text("{oops")
    with pytest.raises(ValueError, match=r"d.json: malformed JSON at line 1, column 2"):
        list(iter_json_array(path))
    path.write_text("  []  ")
    assert list(iter_json_array(path)) == []


def test_llava_shaped_file_across_many_chunk_boundaries(tmp_path):
    generate_mix(tmp_path / "mix.json", seed=1, scale=0.0005)
    expected = read_json(tmp_path / "mix.json")
    assert list(iter_json_array(tmp_path / "mix.json", chunk_chars=4093)) == expected
