"""Stage 2 (instruct) with LLaVA's command line; the entry module is sec_mllm.train.finetune (see its docstring).

    deepspeed scripts/finetune.py --deepspeed configs/deepspeed/zero3.json \
        --model_name_or_path lmsys/vicuna-7b-v1.5 --version v1 \
        --data_path llava_v1_5_mix665k.json --image_folder data \
        --vision_tower openai/clip-vit-large-patch14-336 --mm_projector_type mlp2x_gelu \
        --pretrain_mm_mlp_adapter checkpoints/stage1/mm_projector.bin \
        --projector_type sec --num_visual_tokens 144 --group_by_modality_length True ...
"""

from sec_mllm.train.finetune import main

if __name__ == "__main__":
    main()
