"""Merge a LoRA stage-2 output (scripts/finetune.py --lora_enable True) into a full model
(the module is sec_mllm.train.merge_lora).

    python scripts/merge_lora.py --model-path checkpoints/stage2-lora --save-model-path checkpoints/stage2-merged
"""

from sec_mllm.train.merge_lora import main

if __name__ == "__main__":
    main()
