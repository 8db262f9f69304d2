"""Processor: image preprocessing plus expansion of each ``<image>`` placeholder into K image tokens.

K is the model's ``config.num_image_tokens`` (saved in ``processor_config.json`` as
``num_image_tokens``; the model raises a ValueError stating both counts if they ever disagree).
``image_aspect_ratio="pad"`` pads each image to a square with the image processor's mean colour before
resizing, as LLaVA-1.5 does; ``"original"`` hands images to the image processor unchanged (resize the
short side, centre crop).
"""

from __future__ import annotations

from typing import Any, Sequence

from PIL import Image
from transformers import BatchFeature, ProcessorMixin

IMAGE_ASPECT_RATIOS = ("pad", "original")


def expand_to_square(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Pad ``image`` to a square canvas of colour ``background``, centred (LLaVA's ``expand2square``)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


class SecMllmProcessor(ProcessorMixin):
    """Wraps an image processor and a tokenizer; ``__call__(images=..., text=...)`` -> model inputs."""

    attributes = ["image_processor", "tokenizer"]
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        num_image_tokens: int = 576,
        image_token: str = "<image>",
        image_aspect_ratio: str = "pad",
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        if image_aspect_ratio not in IMAGE_ASPECT_RATIOS:
            raise ValueError(f"image_aspect_ratio={image_aspect_ratio!r} is not one of {list(IMAGE_ASPECT_RATIOS)}")
        self.num_image_tokens = num_image_tokens
        self.image_token = image_token
        self.image_aspect_ratio = image_aspect_ratio
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no token {image_token!r}; add it as a special token first")

    def prepare_image(self, image: Image.Image) -> Image.Image:
        """RGB conversion of any PIL mode, then LLaVA's pad-to-square when ``image_aspect_ratio="pad"``."""
        image = image.convert("RGB")
        if self.image_aspect_ratio == "pad":
            background = tuple(int(round(255 * m)) for m in self.image_processor.image_mean)
            image = expand_to_square(image, background)
        return image

    def expand_placeholders(self, text: str) -> str:
        """Replace each ``<image>`` by K copies of the image token."""
        return text.replace(self.image_token, self.image_token * self.num_image_tokens)

    def __call__(
        self,
        images: Image.Image | Sequence[Image.Image] | None = None,
        text: str | Sequence[str] | None = None,
        padding: bool | str = True,
        return_tensors: str | None = "pt",
        **kwargs: Any,
    ) -> BatchFeature:
        if text is None:
            raise ValueError("SecMllmProcessor needs text (with one <image> per image)")
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or any(not isinstance(t, str) or not t for t in texts):
            raise ValueError(f"SecMllmProcessor needs non-empty text strings, got {text!r}")
        image_list = [] if images is None else [images] if isinstance(images, Image.Image) else list(images)
        for i, image in enumerate(image_list):
            if not isinstance(image, Image.Image):
                raise ValueError(f"images[{i}] is {type(image).__name__}, not a PIL image")
        n_placeholders = sum(t.count(self.image_token) for t in texts)
        if n_placeholders != len(image_list):
            raise ValueError(
                f"the text holds {n_placeholders} {self.image_token!r} placeholder(s) but {len(image_list)} "
                "image(s) were given"
            )
        encoding = self.tokenizer(
            [self.expand_placeholders(t) for t in texts], padding=padding, return_tensors=return_tensors, **kwargs
        )
        data = dict(encoding)
        if image_list:
            pixels = self.image_processor([self.prepare_image(im) for im in image_list], return_tensors=return_tensors)
            data["pixel_values"] = pixels["pixel_values"]
        return BatchFeature(data=data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values"]


__all__ = ["SecMllmProcessor", "expand_to_square"]
