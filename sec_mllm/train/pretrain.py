"""Stage 1 (align): train the projector + connector on caption data; everything else frozen.

    deepspeed --module sec_mllm.train.pretrain --deepspeed zero2 \
        --model_name_or_path lmsys/vicuna-7b-v1.5 --version plain \
        --data_path blip_laion_cc_sbu_558k.json --image_folder images \
        --vision_tower openai/clip-vit-large-patch14-336 --mm_projector_type mlp2x_gelu \
        --tune_mm_mlp_adapter True --mm_vision_select_layer -2 \
        --projector_type sec --num_visual_tokens 144 \
        --bf16 True --output_dir checkpoints/stage1 --num_train_epochs 1 \
        --per_device_train_batch_size 32 --learning_rate 1e-3 --lr_scheduler_type cosine --warmup_ratio 0.03

(``deepspeed scripts/pretrain.py ...`` in a checkout; one process without DeepSpeed: ``python -m
sec_mllm.train.pretrain ...`` without ``--deepspeed``.) Writes checkpoints/stage1/mm_projector.bin for
stage 2's ``--pretrain_mm_mlp_adapter``.

Projector-only tuning of an existing LLaVA: ``--model_name_or_path`` a folder written by
``scripts/convert_llava.py`` (no ``--vision_tower``); the output is then also a whole model:

    deepspeed --module sec_mllm.train.pretrain --deepspeed zero2 --model_name_or_path ckpt-sec144 \
        --version plain --data_path blip_laion_cc_sbu_558k.json --image_folder images \
        --tune_mm_mlp_adapter True --bf16 True --output_dir checkpoints/llava-sec144-tuned ...
"""

from __future__ import annotations

from .run import main as run


def main(argv: list[str] | None = None) -> None:
    run(stage=1, argv=argv)


if __name__ == "__main__":
    main()
