"""Draw which patches each output token gathers, for any projector that reports an assignment.

    python scripts/visualize_clusters.py --model-path ckpt --images a.jpg b.jpg --out pictures/

Writes pictures/<image name>_clusters.png: the image, and the same image with its patches tinted by
cluster and each cluster labelled with its output index.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image
from transformers import AutoModel, AutoProcessor

import sec_mllm  # noqa: F401  (registers the Auto classes)
from sec_mllm.visualize import cluster_pictures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--scale", type=int, default=6, help="pixels per input pixel in the picture")
    args = parser.parse_args()
    model = AutoModel.from_pretrained(args.model_path, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(args.model_path, trust_remote_code=True)
    images = [Image.open(p) for p in args.images]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, picture in zip(args.images, cluster_pictures(model, processor, images, args.scale)):
        target = out / f"{Path(path).stem}_clusters.png"
        picture.save(target)
        print(target)


if __name__ == "__main__":
    main()
