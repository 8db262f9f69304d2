"""Stage 1 (align) with LLaVA's command line; the entry module is sec_mllm.train.pretrain (see its docstring).

    deepspeed scripts/pretrain.py --deepspeed configs/deepspeed/zero2.json \
        --model_name_or_path lmsys/vicuna-7b-v1.5 --version plain \
        --data_path blip_laion_cc_sbu_558k.json --image_folder images \
        --vision_tower openai/clip-vit-large-patch14-336 --mm_projector_type mlp2x_gelu \
        --tune_mm_mlp_adapter True --projector_type sec --num_visual_tokens 144 ...
    deepspeed scripts/pretrain.py --deepspeed configs/deepspeed/zero2.json \
        --model_name_or_path ckpt-sec144 --version plain --tune_mm_mlp_adapter True ...  # a converted LLaVA
"""

from sec_mllm.train.pretrain import main

if __name__ == "__main__":
    main()
