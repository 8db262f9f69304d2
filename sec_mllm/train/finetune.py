"""Stage 2 (instruct): train projector + connector + language model (or LoRA adapters with --lora_enable).

    deepspeed --module sec_mllm.train.finetune --deepspeed zero3 \
        --model_name_or_path lmsys/vicuna-7b-v1.5 --version v1 \
        --data_path llava_v1_5_mix665k.json --image_folder data \
        --vision_tower openai/clip-vit-large-patch14-336 --mm_projector_type mlp2x_gelu \
        --pretrain_mm_mlp_adapter checkpoints/stage1/mm_projector.bin \
        --projector_type sec --num_visual_tokens 144 --image_aspect_ratio pad \
        --group_by_modality_length True --bf16 True --output_dir checkpoints/stage2 \
        --num_train_epochs 1 --per_device_train_batch_size 16 --learning_rate 2e-5 \
        --lr_scheduler_type cosine --warmup_ratio 0.03 --gradient_checkpointing True

(``deepspeed scripts/finetune.py ...`` in a checkout.) LoRA (LLaVA's finetune_lora.sh): add
--lora_enable True --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5 and --learning_rate 2e-4, then
merge with ``python -m sec_mllm.train.merge_lora``.
"""

from __future__ import annotations

from .run import main as run


def main(argv: list[str] | None = None) -> None:
    run(stage=2, argv=argv)


if __name__ == "__main__":
    main()
