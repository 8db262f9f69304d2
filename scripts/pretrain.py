"""Stage 1 (align): train the projector + connector on caption data; everything else frozen.

    deepspeed scripts/pretrain.py --deepspeed configs/deepspeed/zero2.json \
        --model_name_or_path lmsys/vicuna-7b-v1.5 --version plain \
        --data_path blip_laion_cc_sbu_558k.json --image_folder images \
        --vision_tower openai/clip-vit-large-patch14-336 --mm_projector_type mlp2x_gelu \
        --tune_mm_mlp_adapter True --mm_vision_select_layer -2 \
        --projector_type sec --num_visual_tokens 144 \
        --bf16 True --output_dir checkpoints/stage1 --num_train_epochs 1 \
        --per_device_train_batch_size 32 --learning_rate 1e-3 --lr_scheduler_type cosine --warmup_ratio 0.03

Writes checkpoints/stage1/mm_projector.bin for scripts/finetune.py --pretrain_mm_mlp_adapter.
"""

from sec_mllm.train.run import main

if __name__ == "__main__":
    main(stage=1)
