"""Training data: LLaVA JSON / JSONL datasets, chat templates with label masking, collator, sampler."""

from .collator import LlavaCollator
from .llava_dataset import LlavaDataset, load_records
from .sampler import ModalityLengthGroupedSampler
from .templates import IGNORE_INDEX, TEMPLATES, BadSample, tokenize_conversation

__all__ = [
    "IGNORE_INDEX",
    "TEMPLATES",
    "BadSample",
    "LlavaCollator",
    "LlavaDataset",
    "ModalityLengthGroupedSampler",
    "load_records",
    "tokenize_conversation",
]
