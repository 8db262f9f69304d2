"""Cluster pictures: which patches each output token of a projector gathers, drawn over the image.

    python -m sec_mllm.visualize --model-path ckpt --images a.jpg b.jpg --out pictures/

Each patch is tinted with its cluster's colour and every cluster is labelled with its output index (for
``sec`` with ``order="score"``, its rank by similarity to the global token) at the mean position of its
patches. The original image stands on the left, the clusters on the right.
"""

from __future__ import annotations

import argparse
import colorsys
import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from transformers import AutoModel, AutoProcessor

from .loading import from_pretrained_strict


def palette(k: int) -> list[tuple[int, int, int]]:
    """``k`` distinct colours (golden-ratio hue steps, alternating lightness)."""
    colors = []
    for i in range(k):
        r, g, b = colorsys.hls_to_rgb((i * 0.618034) % 1.0, 0.45 if i % 2 else 0.6, 0.85)
        colors.append((int(255 * r), int(255 * g), int(255 * b)))
    return colors


def draw_clusters(
    image: Image.Image, assignment: torch.Tensor, num_clusters: int, scale: int = 6, alpha: float = 0.55
) -> Image.Image:
    """``assignment``: LongTensor ``[N]`` (N = grid x grid patches, raster order) of output-token ids."""
    if scale < 1:
        raise ValueError(f"scale must be a positive integer (pixels per input pixel), got {scale}")
    n = assignment.numel()
    grid = math.isqrt(n)
    if grid * grid != n:
        raise ValueError(f"cluster pictures need a square patch grid, got {n} patches")
    base = image.convert("RGB").resize((image.size[0] * scale, image.size[1] * scale), Image.NEAREST)
    width, height = base.size
    cell_w, cell_h = width / grid, height / grid
    overlay = Image.new("RGB", base.size)
    draw = ImageDraw.Draw(overlay)
    colors = palette(num_clusters)
    ids = assignment.tolist()
    for idx, cluster in enumerate(ids):
        row, col = divmod(idx, grid)
        draw.rectangle(
            [col * cell_w, row * cell_h, (col + 1) * cell_w - 1, (row + 1) * cell_h - 1], fill=colors[cluster]
        )
    tinted = Image.blend(base, overlay, alpha)
    draw = ImageDraw.Draw(tinted)
    font = ImageFont.load_default(size=max(10, int(cell_h * 0.45)))
    for cluster in range(num_clusters):
        cells = [divmod(i, grid) for i, c in enumerate(ids) if c == cluster]
        if not cells:
            continue
        cy = (sum(r for r, _ in cells) / len(cells) + 0.5) * cell_h
        cx = (sum(c for _, c in cells) / len(cells) + 0.5) * cell_w
        draw.text(
            (cx, cy), str(cluster), fill=(255, 255, 255), font=font, anchor="mm", stroke_width=2, stroke_fill=(0, 0, 0)
        )
    canvas = Image.new("RGB", (width * 2 + 8, height), (255, 255, 255))
    canvas.paste(base, (0, 0))
    canvas.paste(tinted, (width + 8, 0))
    return canvas


@torch.no_grad()
def cluster_pictures(model, processor, images: list[Image.Image], scale: int = 6) -> list[Image.Image]:
    """Run the vision tower and projector of ``model`` on ``images``; one picture per image."""
    pixels = processor.image_processor([processor.prepare_image(im) for im in images], return_tensors="pt")[
        "pixel_values"
    ]
    encoding = model.encode_images(pixels.to(model.device))
    if "assignment" not in encoding.aux:
        raise ValueError(f"projector '{model.config.projector_type}' does not report an assignment")
    shown = [processor.prepare_image(im).resize((model.config.vision_config.image_size,) * 2) for im in images]
    return [
        draw_clusters(im, a.cpu(), model.num_image_tokens, scale) for im, a in zip(shown, encoding.aux["assignment"])
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--scale", type=int, default=6, help="pixels per input pixel in the picture (1 or more)")
    args = parser.parse_args(argv)
    if args.scale < 1:
        parser.error(f"--scale must be 1 or more, got {args.scale}")
    model = from_pretrained_strict(AutoModel, args.model_path, "SEC-MLLM", trust_remote_code=True).eval()
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
