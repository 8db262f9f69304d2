"""Draw which patches each output token gathers, for any projector that reports an assignment
(the module is sec_mllm.visualize).

    python scripts/visualize_clusters.py --model-path ckpt --images a.jpg b.jpg --out pictures/

Writes pictures/<image name>_clusters.png: the image, and the same image with its patches tinted by
cluster and each cluster labelled with its output index.
"""

from sec_mllm.visualize import main

if __name__ == "__main__":
    main()
