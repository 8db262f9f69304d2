"""Bad-input corpus: each case is an input a user can get wrong, the message fragment that must name it, and the
promise that the failed run changed no existing file (no earlier result lost) and left nothing half-written
(every new file parses; no temporary or in-progress entry). Table-driven over training data and flags (the real
training driver, in-process), evaluation files (the eval entry modules), checkpoints (conversion, strict
loading, resume, LoRA merge, cluster pictures) and processor inputs."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor, AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration

from sec_mllm import build_model, build_processor
from sec_mllm.tiny import tiny_clip_vision_config, tiny_llama_config, write_tiny_checkpoints, write_tiny_llava_data

SUFFIX = "\nAnswer the question using a single word or phrase."


# --------------------------------------------------------------------------------------------- the world (inputs)


def gqa_question(qid: str, i: int) -> dict[str, Any]:
    return {
        "question": f"Is there a square number {i}?",
        "answer": "yes",
        "imageId": str(i),
        "isBalanced": True,
        "types": {"structural": "verify", "semantic": "obj", "detailed": "exist"},
        "groups": {"global": None, "local": "x"},
        "entailed": [],
        "equivalent": [qid],
        "semantic": [{"operation": "exist", "argument": "?", "dependencies": []}],
        "annotations": {"question": {}, "answer": {}, "fullAnswer": {}},
    }


def write_jsonl(path: Path, rows: list[Any]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("corpus")
    lm, clip = write_tiny_checkpoints(str(root / "ckpts"))
    captions, instructions, images = write_tiny_llava_data(str(root / "data"))
    tokenizer = AutoTokenizer.from_pretrained(lm)
    sec = {}
    for name, seed in (("sec_a", 0), ("sec_b", 1)):
        torch.manual_seed(seed)
        model = build_model(clip, lm, "sec", {"num_tokens": 4}, tokenizer=tokenizer)
        processor = build_processor(model.config, tokenizer)
        model.save_pretrained(root / name)
        processor.save_pretrained(root / name)
        sec[name] = str(root / name)

    questions = {str(100 + i): gqa_question(str(100 + i), i) for i in range(3)}
    (root / "gqa_questions.json").write_text(json.dumps(questions))
    rows = [
        {"question_id": qid, "image": f"{i}.png", "text": q["question"] + SUFFIX, "category": "default"}
        for i, (qid, q) in enumerate(questions.items())
    ]
    gqa_qfile = write_jsonl(root / "llava_gqa.jsonl", rows)

    ann, tv_rows = [], []
    for i in range(2):
        image_id = f"{i:016x}"
        shutil.copy(Path(images) / f"{i}.png", Path(images) / f"{image_id}.png")
        question = f"what does sign {i} say?"
        ann.append({"question_id": 7 + i, "image_id": image_id, "question": question, "answers": ["red"] * 10})
        tv_rows.append(
            {
                "question_id": image_id,
                "image": f"{image_id}.png",
                "text": f"{question.capitalize()}\nReference OCR token: RED{SUFFIX}",
                "category": "default",
            }
        )
    (root / "textvqa_val.json").write_text(json.dumps({"dataset_name": "textvqa", "data": ann}))
    tv_qfile = write_jsonl(root / "llava_textvqa.jsonl", tv_rows)

    torch.manual_seed(0)
    llava_config = LlavaConfig(
        vision_config=tiny_clip_vision_config(),
        text_config=tiny_llama_config(vocab_size=len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=16,
        vision_feature_layer=-2,
    )
    LlavaForConditionalGeneration(llava_config).save_pretrained(root / "llava")
    return SimpleNamespace(
        root=root,
        lm=lm,
        clip=clip,
        captions=captions,
        instructions=instructions,
        images=images,
        tokenizer=tokenizer,
        processor=AutoProcessor.from_pretrained(sec["sec_a"]),
        gqa_questions=str(root / "gqa_questions.json"),
        gqa_rows=rows,
        gqa_qfile=gqa_qfile,
        tv_ann=str(root / "textvqa_val.json"),
        tv_qfile=tv_qfile,
        llava=str(root / "llava"),
        **sec,
    )


# --------------------------------------------------------------------------------------------- ways to fail


def train(w: SimpleNamespace, tmp: Path, **flags: Any) -> None:
    """The stage-2 driver in-process, 2 steps of plain Trainer on CPU; ``flags`` override (None removes)."""
    from sec_mllm.train.run import main

    base = {
        "model_name_or_path": w.lm,
        "vision_tower": w.clip,
        "version": "v1",
        "data_path": w.instructions,
        "image_folder": w.images,
        "mm_projector_type": "mlp2x_gelu",
        "projector_type": "sec",
        "num_visual_tokens": 4,
        "output_dir": tmp / "out",
        "per_device_train_batch_size": 2,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "max_steps": 2,
        "save_strategy": "no",
        "learning_rate": 1e-3,
    }
    base.update(flags)
    main(2, [x for k, v in base.items() if v is not None for x in (f"--{k}", str(v))])


def inputs(tmp: Path) -> Path:
    """Where a case puts the inputs it makes (the new-file checks skip it: a bad input is meant to be bad)."""
    folder = tmp / "in"
    folder.mkdir(exist_ok=True)
    return folder


def data_file(tmp: Path, records: Any, name: str = "data.json") -> str:
    path = inputs(tmp) / name
    path.write_text(records if isinstance(records, str) else json.dumps(records))
    return str(path)


def conv(q: str = "<image>\nWhat color?", a: str = "red") -> list[dict[str, str]]:
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def train_on(records: Any, name: str = "data.json", **flags: Any) -> Callable[[SimpleNamespace, Path], None]:
    return lambda w, tmp: train(w, tmp, data_path=data_file(tmp, records, name), **flags)


def gqa(w: SimpleNamespace, tmp: Path, *extra: str, model: str | None = None, qfile: str | None = None) -> None:
    from sec_mllm.evaluation.run_gqa import main

    main(
        [
            "--model-path",
            model or w.sec_a,
            "--question-file",
            qfile or w.gqa_qfile,
            "--image-folder",
            w.images,
            "--questions",
            w.gqa_questions,
            "--answers-file",
            str(tmp / "answers" / "gqa.jsonl"),
            "--batch-size",
            "2",
            "--max-new-tokens",
            "3",
            "--num-workers",
            "0",
            *extra,
        ]
    )


def gqa_with_rows(rows_of: Callable[[list[dict]], list[Any]], **kw: Any) -> Callable[[SimpleNamespace, Path], None]:
    return lambda w, tmp: gqa(
        w, tmp, qfile=write_jsonl(inputs(tmp) / "q.jsonl", rows_of([dict(r) for r in w.gqa_rows])), **kw
    )


def textvqa(w: SimpleNamespace, tmp: Path, *extra: str) -> None:
    from sec_mllm.evaluation.run_textvqa import main

    main(
        [
            "--model-path",
            w.sec_a,
            "--question-file",
            w.tv_qfile,
            "--image-folder",
            w.images,
            "--annotation-file",
            w.tv_ann,
            "--answers-file",
            str(tmp / "answers" / "textvqa.jsonl"),
            "--max-new-tokens",
            "2",
            "--num-workers",
            "0",
            *extra,
        ]
    )


def missing_image_at_3(rows: list[dict]) -> list[dict]:
    rows[2]["image"] = "gone.png"
    return rows


def killed_run_of_model_a(w: SimpleNamespace, tmp: Path) -> None:
    """Answers of model A stopped after one batch: a shard file and the record, no merged file."""
    with pytest.raises(ValueError, match="cannot read image"):
        gqa_with_rows(missing_image_at_3)(w, tmp)
    assert list((tmp / "answers").glob("gqa.jsonl.shard*")) and not (tmp / "answers" / "gqa.jsonl").exists()


def answers_without_record(w: SimpleNamespace, tmp: Path) -> None:
    gqa(w, tmp)
    (tmp / "answers" / "gqa.jsonl.meta.json").unlink()


def copy_without(src: str, tmp: Path, name: str, drop: Callable[[str], bool]) -> str:
    """A copy of checkpoint folder ``src`` whose model.safetensors lacks the keys ``drop`` selects."""
    dst = inputs(tmp) / name
    shutil.copytree(src, dst)
    weights = load_file(str(dst / "model.safetensors"))
    assert any(drop(k) for k in weights)
    save_file({k: v for k, v in weights.items() if not drop(k)}, str(dst / "model.safetensors"), {"format": "pt"})
    return str(dst)


def convert(w: SimpleNamespace, tmp: Path, llava: str | None = None, *extra: str) -> None:
    from sec_mllm.convert_llava import main

    main(["--llava", llava or w.llava, "--out", str(tmp / "converted"), "--projector-type", "sec", *extra])


def stage1_weights(tmp: Path, w: SimpleNamespace, edit: Callable[[dict], Any]) -> str:
    from sec_mllm.train.checkpoints import mm_state_dict

    model = build_model(w.clip, w.lm, "sec", {"num_tokens": 4}, tokenizer=w.tokenizer)
    path = inputs(tmp) / "mm_projector.bin"
    torch.save(edit(mm_state_dict(model)), path)
    return str(path)


def lora_output(w: SimpleNamespace, tmp: Path) -> Path:
    """A LoRA finetune output folder as the driver writes it (adapter, non-LoRA trainables, processor, run config)."""
    from peft import LoraConfig, get_peft_model

    from sec_mllm.train.arguments import ModelArguments
    from sec_mllm.train.assemble import model_from_args
    from sec_mllm.train.checkpoints import NON_LORA_FILE, save_mm_projector, save_run_config
    from sec_mllm.train.lora import lora_targets

    folder = inputs(tmp) / "lora"
    args = ModelArguments(
        model_name_or_path=w.lm, vision_tower=w.clip, mm_projector_type="mlp2x_gelu", num_visual_tokens=4
    )
    base = model_from_args(args, w.tokenizer)
    save_mm_projector(base, str(folder), True, NON_LORA_FILE)
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=lora_targets(base)))
    peft.save_pretrained(folder)
    build_processor(base.config, w.tokenizer).save_pretrained(folder)
    save_run_config(str(folder), model=args)
    return folder


def merge(tmp: Path) -> None:
    from sec_mllm.train.merge_lora import main

    main(["--model-path", str(tmp / "in" / "lora"), "--save-model-path", str(tmp / "merged")])


def lora_lacking_adapter_keys(w: SimpleNamespace, tmp: Path) -> None:
    folder = lora_output(w, tmp)
    weights = load_file(str(folder / "adapter_model.safetensors"))
    kept = {k: v for k, v in weights.items() if "layers.1." not in k}
    save_file(kept, str(folder / "adapter_model.safetensors"), {"format": "pt"})


def lora_lacking_connector(w: SimpleNamespace, tmp: Path) -> None:
    from sec_mllm.train.checkpoints import NON_LORA_FILE

    folder = lora_output(w, tmp)
    state = torch.load(folder / NON_LORA_FILE, weights_only=True)
    torch.save({k: v for k, v in state.items() if not k.startswith("connector.2")}, folder / NON_LORA_FILE)


def visualize(w: SimpleNamespace, tmp: Path, *extra: str, model: str | None = None) -> None:
    from sec_mllm.visualize import main

    main(
        [
            "--model-path",
            model or w.sec_a,
            "--images",
            str(Path(w.images) / "0.png"),
            "--out",
            str(tmp / "pics"),
            *extra,
        ]
    )


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


# --------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Case:
    id: str
    run: Callable[[SimpleNamespace, Path], Any]
    match: str  # regular expression searched in the exception message and stderr
    prepare: Callable[[SimpleNamespace, Path], Any] | None = None  # the state the failing run meets
    absent: tuple[str, ...] = ()  # paths (relative to the case folder) the failed run must not leave behind


IMG = {"image": "0.png"}
TRAINING_DATA = [
    Case("data: malformed JSON", train_on('[{"id": 1,\n "conversations": [}'), r"data.json: malformed JSON at line 2"),
    Case("data: not a list", train_on({"id": 1}), r"data.json: expected a JSON list of samples, got dict"),
    Case(
        "data: JSONL line not an object",
        train_on(json.dumps({"id": "a", "conversations": conv("hi", "yes")}) + "\n[1, 2]\n", "data.jsonl"),
        r"data.jsonl:2: expected a JSON object, got list",
    ),
    Case(
        "data: missing image file",
        train_on([{"id": "s1", "image": "gone.png", "conversations": conv()}]),
        r"sample s1: image file .*gone.png is missing",
    ),
    Case(
        "data: placeholder without image",
        train_on([{"id": "s2", "conversations": conv()}]),
        r"sample s2: 1 '<image>' placeholder\(s\) for 0 image\(s\)",
    ),
    Case(
        "data: image without placeholder",
        train_on([{"id": "s3", **IMG, "conversations": conv("What color?")}]),
        r"sample s3: 0 '<image>' placeholder\(s\) for 1 image\(s\)",
    ),
    Case(
        "data: no assistant turn",
        train_on([{"id": "s4", "conversations": [{"from": "human", "value": "hi"}]}]),
        r"sample s4: no assistant \(gpt\) turn",
    ),
    Case(
        "data: unknown role",
        train_on([{"id": "s5", "conversations": [{"from": "robot", "value": "hi"}]}]),
        r"sample s5: turn 0 must be",
    ),
    Case(
        "data: several images",
        train_on([{"id": "s6", "image": ["0.png", "1.png"], "conversations": conv()}]),
        r"sample s6: several images per sample are not supported",
    ),
    Case(
        "data: image but no --image_folder",
        train_on([{"id": "s7", **IMG, "conversations": conv()}], image_folder=None),
        r"sample s7: has an image but no image_folder was given",
    ),
    Case(
        "data: unreadable image found while training",
        lambda w, tmp: (
            (inputs(tmp) / "broken.png").write_bytes(b"\x89PNG not really"),
            train(
                w,
                tmp,
                data_path=data_file(tmp, [{"id": "s8", "image": "broken.png", "conversations": conv()}]),
                image_folder=inputs(tmp),
            ),
        ),
        r"sample s8: cannot read image .*broken.png",
        absent=("out/run_config.json", "out/config.json"),
    ),
    Case(
        "flags: malformed --projector_config",
        lambda w, tmp: train(w, tmp, projector_config='{"grouping": band}'),
        r"--projector_config: malformed JSON",
        absent=("out",),
    ),
    Case(
        "flags: --projector_config not an object",
        lambda w, tmp: train(w, tmp, projector_config="[16]"),
        r"--projector_config: expected a JSON object",
        absent=("out",),
    ),
    Case(
        "flags: --num_visual_tokens with identity",
        lambda w, tmp: train(w, tmp, projector_type="identity"),
        r"--num_visual_tokens 4 has no effect with --projector_type identity",
        absent=("out",),
    ),
    Case(
        "flags: K larger than N",
        lambda w, tmp: train(w, tmp, num_visual_tokens=17),
        r"num_tokens=17 is larger than the number of input tokens N=16",
        absent=("out",),
    ),
    Case(
        "flags: unknown flag",
        lambda w, tmp: train(w, tmp, mm_use_magic="True"),
        r"unknown argument\(s\) \['--mm_use_magic', 'True'\]",
        absent=("out",),
    ),
    Case(
        "flags: --fp16 on CPU",
        lambda w, tmp: train(w, tmp, fp16="True"),
        r"--fp16 is not supported on CPU",
        absent=("out",),
    ),
]

EVALUATION = [
    Case(
        "eval: malformed question line",
        lambda w, tmp: gqa(w, tmp, qfile=data_file(tmp, '{"question_id": 1, "image": "0.png", "text": "a"}\n{oops\n')),
        r"data.json:2: malformed JSON line",
        absent=("answers",),
    ),
    Case(
        "eval: question row lacks a key",
        gqa_with_rows(lambda rows: [{k: v for k, v in r.items() if k != "image"} for r in rows]),
        r"q.jsonl:1: missing key\(s\) \['image'\]",
        absent=("answers",),
    ),
    Case(
        "eval: duplicate question found before generating",
        gqa_with_rows(lambda rows: rows + [rows[1]]),
        r"q.jsonl:4: duplicate question \(question_id '101' with the same text as line 2\)",
        absent=("answers",),
    ),
    Case(
        "eval: missing image (answers so far kept, resumable)",
        gqa_with_rows(missing_image_at_3),
        r"question '102': cannot read image .*gone.png",
        absent=("answers/gqa.jsonl", "answers/gqa.jsonl.scores.json"),
    ),
    Case(
        "eval: truncated image",
        lambda w, tmp: (
            [shutil.copy(Path(w.images) / f"{i}.png", inputs(tmp)) for i in range(3)],
            (inputs(tmp) / "1.png").write_bytes((Path(w.images) / "1.png").read_bytes()[:60]),
            gqa(w, tmp, "--image-folder", str(inputs(tmp))),
        ),
        r"question '10[01]': cannot read image .*1.png",
        absent=("answers/gqa.jsonl",),
    ),
    Case(
        "eval: answers of another model",
        lambda w, tmp: gqa(w, tmp, model=w.sec_b),
        r"written by another model or with other settings.*\n"
        r".*model_path: '.*sec_a' \(recorded\) vs '.*sec_b' \(now\)",
        prepare=gqa,
    ),
    Case(
        "eval: answers with other settings",
        lambda w, tmp: gqa(w, tmp, "--max-new-tokens", "4"),
        r"max_new_tokens: 3 \(recorded\) vs 4 \(now\)",
        prepare=gqa,
    ),
    Case(
        "eval: TextVQA answers with OCR, rerun without",
        lambda w, tmp: textvqa(w, tmp, "--no-ocr"),
        r"ocr: True \(recorded\) vs False \(now\)",
        prepare=textvqa,
    ),
    Case(
        "eval: shard of a killed run of another model",
        lambda w, tmp: gqa(w, tmp, model=w.sec_b),
        r"gqa.jsonl.shard0of1: written by another model",
        prepare=killed_run_of_model_a,
    ),
    Case(
        "eval: answers with no record of their model",
        lambda w, tmp: gqa(w, tmp),
        r"answers exist but .*gqa.jsonl.meta.json .* does not",
        prepare=answers_without_record,
    ),
    Case(
        "eval: checkpoint lacks the projector weights",
        lambda w, tmp: gqa(w, tmp, model=copy_without(w.sec_a, tmp, "ckpt", lambda k: k.startswith("projector."))),
        r"ckpt: not a complete SEC-MLLM checkpoint \(missing \d+ weight\(s\), under projector",
        absent=("answers",),
    ),
    Case(
        "eval: --model-path without --question-file",
        lambda w, tmp: gqa(w, tmp, "--question-file", ""),
        r"--model-path needs --question-file and --image-folder",
        absent=("answers",),
    ),
    Case(
        "eval: unknown --conv-mode",
        lambda w, tmp: gqa(w, tmp, "--conv-mode", "llava_v9"),
        r"argument --conv-mode: invalid choice: 'llava_v9'",
        absent=("answers",),
    ),
    Case(
        "score: GQA questions not keyed by id",
        lambda w, tmp: gqa(w, tmp, "--questions", data_file(tmp, [1, 2])),
        r"data.json: expected a JSON object keyed by question id",
    ),
    Case(
        "score: answer for an unknown question",
        lambda w, tmp: __import__("sec_mllm.evaluation.run_gqa", fromlist=["main"]).main(
            [
                "--answers-file",
                write_jsonl(inputs(tmp) / "a.jsonl", [{"question_id": "999", "text": "yes"}]),
                "--questions",
                w.gqa_questions,
            ]
        ),
        r"a.jsonl:1: answer for unknown question id '999'",
        absent=("in/a.jsonl.scores.json",),
    ),
    Case(
        "score: TextVQA scored against a GQA file",
        lambda w, tmp: __import__("sec_mllm.evaluation.run_textvqa", fromlist=["main"]).main(
            [
                "--answers-file",
                write_jsonl(inputs(tmp) / "a.jsonl", [{"question_id": "0", "prompt": "x", "text": "yes"}]),
                "--annotation-file",
                w.gqa_questions,
            ]
        ),
        r"gqa_questions.json: expected a TextVQA file with a top-level 'data' list",
        absent=("in/a.jsonl.scores.json",),
    ),
]

CHECKPOINTS = [
    Case(
        "convert: folder is not LLaVA",
        lambda w, tmp: convert(w, tmp, w.lm),
        r"lm is not a LLaVA-1.5 checkpoint \(LlavaForConditionalGeneration\): its config.json has model_type 'llama'",
        absent=("converted",),
    ),
    Case(
        "convert: LLaVA lacking its vision tower weights",
        lambda w, tmp: convert(w, tmp, copy_without(w.llava, tmp, "llava", lambda k: "vision_tower" in k)),
        r"llava: not a complete LLaVA checkpoint \(missing 39 weight\(s\), under model.vision_tower \(39\)",
        absent=("converted",),
    ),
    Case(
        "convert: malformed --projector-config",
        lambda w, tmp: convert(w, tmp, None, "--projector-config", "{num_tokens: 4}"),
        r"--projector-config: malformed JSON",
        absent=("converted",),
    ),
    Case(
        "build: language model folder lacking a weight",
        lambda w, tmp: train(
            w,
            tmp,
            model_name_or_path=copy_without(w.lm, tmp, "lm", lambda k: k.endswith("layers.1.mlp.up_proj.weight")),
        ),
        r"lm: not a complete language model checkpoint \(missing 1 weight\(s\), under model.layers \(1\): "
        r"model.layers.1.mlp.up_proj.weight",
        absent=("out",),
    ),
    Case(
        "build: vision tower folder lacking weights",
        lambda w, tmp: train(w, tmp, vision_tower=copy_without(w.clip, tmp, "clip", lambda k: "layers.0." in k)),
        r"clip: not a complete vision tower checkpoint \(missing \d+ weight\(s\)",
        absent=("out",),
    ),
    Case(
        "stage-1 adapter lacking the connector's last layer",
        lambda w, tmp: train(
            w,
            tmp,
            pretrain_mm_mlp_adapter=stage1_weights(
                tmp, w, lambda s: {k: v for k, v in s.items() if not k.startswith("connector.2")}
            ),
        ),
        r"mm_projector.bin: does not fit this model's projector/connector: missing \['connector.2.bias', "
        r"'connector.2.weight'\]",
        absent=("out",),
    ),
    Case(
        "stage-1 adapter of another width",
        lambda w, tmp: train(
            w,
            tmp,
            pretrain_mm_mlp_adapter=stage1_weights(tmp, w, lambda s: {**s, "connector.0.weight": torch.zeros(3, 3)}),
        ),
        r"mm_projector.bin: connector.0.weight has shape \(3, 3\), the model expects",
        absent=("out",),
    ),
    Case(
        "stage-1 adapter holding code (never run)",
        lambda w, tmp: train(w, tmp, pretrain_mm_mlp_adapter=stage1_weights(tmp, w, lambda s: {**s, "x": Evil()})),
        r"mm_projector.bin: not a readable weights file \(tensors only\)",
        absent=("out",),
    ),
    Case(
        "stage-1 adapter truncated",
        lambda w, tmp: (
            Path(path := stage1_weights(tmp, w, dict)).write_bytes(Path(path).read_bytes()[:100]),
            train(w, tmp, pretrain_mm_mlp_adapter=path),
        ),
        r"mm_projector.bin: not a readable weights file",
        absent=("out",),
    ),
    Case(
        "resume: explicit incomplete checkpoint",
        lambda w, tmp: train(w, tmp, resume_from_checkpoint=tmp / "out" / "checkpoint-2"),
        r"checkpoint-2: not a complete checkpoint \(no trainer_state.json\)",
        prepare=lambda w, tmp: (
            (tmp / "out" / "checkpoint-2").mkdir(parents=True),
            shutil.copy(Path(w.sec_a) / "config.json", tmp / "out" / "checkpoint-2"),
        ),
        absent=("out/run_config.json",),
    ),
    Case(
        "resume: True with no checkpoint",
        lambda w, tmp: train(w, tmp, resume_from_checkpoint="True"),
        r"--resume_from_checkpoint True: no complete checkpoint-N folder in .*out",
        absent=("out",),
    ),
    Case(
        "merge: LoRA adapter lacking weights",
        lambda w, tmp: merge(tmp),
        r"lora: the LoRA adapter lacks \d+ weight\(s\)",
        prepare=lora_lacking_adapter_keys,
        absent=("merged",),
    ),
    Case(
        "merge: non-LoRA trainables lacking the connector",
        lambda w, tmp: merge(tmp),
        r"non_lora_trainables.bin: does not fit this model's projector/connector: missing",
        prepare=lora_lacking_connector,
        absent=("merged",),
    ),
    Case(
        "pictures: --scale 0",
        lambda w, tmp: visualize(w, tmp, "--scale", "0"),
        r"--scale must be 1 or more, got 0",
        absent=("pics",),
    ),
    Case(
        "pictures: checkpoint lacking weights",
        lambda w, tmp: visualize(
            w, tmp, model=copy_without(w.sec_a, tmp, "ckpt", lambda k: k.startswith("connector."))
        ),
        r"ckpt: not a complete SEC-MLLM checkpoint "
        r"\(missing 4 weight\(s\), under connector.0 \(2\), connector.2 \(2\)",
        absent=("pics",),
    ),
]

PICTURE = Image.new("RGB", (20, 30), (10, 200, 30))
PROCESSOR = [
    Case("processor: empty text, no image", lambda w, tmp: w.processor(text=""), r"needs non-empty text strings"),
    Case("processor: no text", lambda w, tmp: w.processor(images=PICTURE), r"needs text"),
    Case("processor: empty text list", lambda w, tmp: w.processor(text=[]), r"needs non-empty text strings"),
    Case(
        "processor: one empty text in a batch",
        lambda w, tmp: w.processor(text=["USER: hi ASSISTANT:", ""]),
        r"needs non-empty text strings",
    ),
    Case(
        "processor: None counted as an image",
        lambda w, tmp: w.processor(images=[None], text="<image>\nHi"),
        r"images\[0\] is NoneType, not a PIL image",
    ),
    Case(
        "processor: array instead of a PIL image",
        lambda w, tmp: w.processor(images=[PICTURE, np.zeros((4, 4, 3))], text="<image><image>"),
        r"images\[1\] is ndarray, not a PIL image",
    ),
    Case(
        "processor: more images than placeholders",
        lambda w, tmp: w.processor(images=[PICTURE, PICTURE], text="<image>\nHi"),
        r"holds 1 '<image>' placeholder\(s\) but 2 image\(s\)",
    ),
    Case(
        "processor: placeholder without image",
        lambda w, tmp: w.processor(text="<image>\nHi"),
        r"holds 1 '<image>' placeholder\(s\) but 0 image\(s\)",
    ),
]

CORPUS = TRAINING_DATA + EVALUATION + CHECKPOINTS + PROCESSOR


# --------------------------------------------------------------------------------------------- the checks


def digests(root: Path) -> dict[Path, str]:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def assert_whole(path: Path) -> None:
    """A new file must be complete: parseable JSON / JSONL (newline-terminated lines), safetensors, tensors."""
    name = path.name
    if name.endswith(".jsonl") or ".jsonl.shard" in name:
        text = path.read_text()
        assert text == "" or text.endswith("\n"), f"{path}: torn last line"
        for line in text.splitlines():
            json.loads(line)
    elif name.endswith(".json"):
        json.loads(path.read_text())
    elif name.endswith(".safetensors"):
        with safe_open(str(path), "pt") as f:
            for key in f.keys():
                f.get_tensor(key)
    elif name.endswith((".bin", ".pt", ".pth")):
        torch.load(path, weights_only=True)


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_bad_input(case: Case, world: SimpleNamespace, tmp_path: Path, capsys) -> None:
    if case.prepare is not None:
        case.prepare(world, tmp_path)
    before = digests(tmp_path)
    capsys.readouterr()
    with pytest.raises((ValueError, SystemExit, OSError)) as caught:
        case.run(world, tmp_path)
    message = f"{caught.value}\n{capsys.readouterr().err}"
    assert re.search(case.match, message), message[-3000:]
    after = digests(tmp_path)
    assert [str(p) for p, d in before.items() if after.get(p) != d] == [], "an existing file was changed or lost"
    for path in set(after) - set(before) - set((tmp_path / "in").rglob("*")):
        hidden = [part for part in path.relative_to(tmp_path).parts if part.startswith(".")]
        assert not hidden, f"left behind: {path}"
        assert_whole(path)
    for rel in case.absent:
        assert not (tmp_path / rel).exists(), f"left behind: {rel}"


def test_the_corpus_is_large_and_names_are_unique():
    assert len({c.id for c in CORPUS}) == len(CORPUS) >= 50
