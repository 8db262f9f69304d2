"""Convert a transformers-format LLaVA checkpoint into a SEC-MLLM checkpoint (see sec_mllm/convert_llava.py).

    python scripts/convert_llava.py --llava llava-hf/llava-1.5-7b-hf --out checkpoints/llava-sec144 \
        --projector-type sec --projector-config '{"num_tokens": 144}'
"""

from sec_mllm.convert_llava import main

if __name__ == "__main__":
    main()
