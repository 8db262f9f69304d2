"""GQA testdev-balanced with LLaVA-style command lines; the entry module is
sec_mllm.evaluation.run_gqa (see its docstring for the flags).

    python eval/gqa.py --model-path ckpt --question-file ... --image-folder ... --answers-file answers/gqa.jsonl ...
"""

from sec_mllm.evaluation.run_gqa import main

if __name__ == "__main__":
    main()
