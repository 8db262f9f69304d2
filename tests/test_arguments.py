"""LLaVA-1.5's own script arguments parse; unsupported ones are refused with a message."""

from __future__ import annotations

import pytest

from sec_mllm.train.arguments import parse_args
from sec_mllm.train.assemble import projector_config

LLAVA_FINETUNE_LORA = (
    "--lora_enable True --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5 "
    "--deepspeed {ds} --model_name_or_path lmsys/vicuna-7b-v1.5 --version v1 --data_path mix665k.json "
    "--image_folder ./playground/data --vision_tower openai/clip-vit-large-patch14-336 "
    "--pretrain_mm_mlp_adapter ./checkpoints/mm_projector.bin --mm_projector_type mlp2x_gelu "
    "--mm_vision_select_layer -2 --mm_use_im_start_end False --mm_use_im_patch_token False "
    "--image_aspect_ratio pad --group_by_modality_length True --bf16 True --output_dir {out} "
    "--num_train_epochs 1 --per_device_train_batch_size 16 --per_device_eval_batch_size 4 "
    "--gradient_accumulation_steps 1 --evaluation_strategy no --save_strategy steps --save_steps 50000 "
    "--save_total_limit 1 --learning_rate 2e-4 --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine "
    "--logging_steps 1 --tf32 False --model_max_length 2048 --gradient_checkpointing True "
    "--dataloader_num_workers 4 --lazy_preprocess True --report_to none"
)
LLAVA_PRETRAIN = (
    "--deepspeed {ds} --model_name_or_path lmsys/vicuna-7b-v1.5 --version plain "
    "--data_path blip_laion_cc_sbu_558k.json --image_folder images --vision_tower openai/clip-vit-large-patch14-336 "
    "--mm_projector_type mlp2x_gelu --tune_mm_mlp_adapter True --mm_vision_select_layer -2 "
    "--mm_use_im_start_end False --mm_use_im_patch_token False --bf16 True --output_dir {out} "
    "--num_train_epochs 1 --per_device_train_batch_size 32 --per_device_eval_batch_size 4 "
    "--gradient_accumulation_steps 1 --evaluation_strategy no --save_strategy steps --save_steps 24000 "
    "--save_total_limit 1 --learning_rate 1e-3 --weight_decay 0. --warmup_ratio 0.03 --lr_scheduler_type cosine "
    "--logging_steps 1 --tf32 False --model_max_length 2048 --gradient_checkpointing True "
    "--dataloader_num_workers 4 --lazy_preprocess True --report_to none"
)
ROOT_DS = "configs/deepspeed/{}.json"


@pytest.mark.parametrize("line,ds", [(LLAVA_FINETUNE_LORA, "zero3"), (LLAVA_PRETRAIN, "zero2")])
def test_llava_script_arguments_parse(line, ds, tmp_path):
    argv = line.format(ds=ROOT_DS.format(ds), out=tmp_path).split()
    model_args, data_args, args = parse_args(
        argv + ["--projector_type", "sec", "--num_visual_tokens", "144", "--sec_grouping", "interleave"]
    )
    assert args.eval_strategy == "no" and args.use_cpu and args.bf16
    assert model_args.mm_projector_type == "mlp2x_gelu" and model_args.mm_vision_select_layer == -2
    assert projector_config(model_args) == {"num_tokens": 144, "grouping": "interleave"}
    assert data_args.data_storage == "arrow" and data_args.data_cache_dir is None  # the LLaVA line: Arrow, beside


def test_data_storage_arguments(tmp_path):
    base = ["--model_name_or_path", "m", "--vision_tower", "v", "--data_path", "d", "--output_dir", str(tmp_path)]
    _, data_args, _ = parse_args(base + ["--data_storage", "list", "--data_cache_dir", str(tmp_path / "c")])
    assert data_args.data_storage == "list" and data_args.data_cache_dir == str(tmp_path / "c")
    with pytest.raises(SystemExit):
        parse_args(base + ["--data_storage", "pickle"])


@pytest.mark.parametrize(
    "extra,match",
    [
        (["--tf32", "True"], "--tf32 needs an NVIDIA GPU"),
        (["--fp16", "True"], "--fp16 is not supported on CPU"),
        (["--mm_use_im_start_end", "True"], "--mm_use_im_start_end True .* is not supported"),
        (["--bits", "4"], "--bits 4: quantized training is not supported"),
        (["--image_aspect_ratio", "anyres"], "--image_aspect_ratio anyres is not supported"),
        (["--no_such_flag", "1"], r"unknown argument\(s\) \['--no_such_flag', '1'\]"),
    ],
)
def test_unsupported_arguments_are_refused(extra, match, tmp_path):
    base = ["--model_name_or_path", "m", "--vision_tower", "v", "--data_path", "d", "--output_dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=match):
        parse_args(base + extra)


def test_sec_options_need_the_sec_projector(tmp_path):
    base = ["--model_name_or_path", "m", "--vision_tower", "v", "--data_path", "d", "--output_dir", str(tmp_path)]
    model_args, _, _ = parse_args(base + ["--projector_type", "tome", "--sec_order", "position"])
    with pytest.raises(SystemExit, match="--sec_\\* options only apply to --projector_type sec"):
        projector_config(model_args)
