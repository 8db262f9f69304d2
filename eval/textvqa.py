"""TextVQA val with LLaVA-style command lines; the entry module is
sec_mllm.evaluation.run_textvqa (see its docstring for the flags).

    python eval/textvqa.py --model-path ckpt --question-file ... --image-folder ... \
        --answers-file answers/textvqa.jsonl ...
"""

from sec_mllm.evaluation.run_textvqa import main

if __name__ == "__main__":
    main()
