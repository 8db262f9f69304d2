"""sec_mllm: LLaVA-style multimodal LLMs whose vision tokens are compressed by Semantic Equitable Clustering.

Importing the package registers the model with transformers' Auto classes (AutoConfig, AutoModel,
AutoModelForImageTextToText, AutoProcessor) and marks the classes so that ``save_pretrained`` writes an
``auto_map``: a saved folder then loads with ``trust_remote_code=True`` where sec_mllm is not installed.

Layout: the model (configuration, modeling, processing, vision, projector_*, connectors) imports nothing
else of the package; ``builder`` and ``convert_llava`` assemble models; ``data``, ``train`` and
``evaluation`` are the training and scoring library with their entry modules; ``experiments`` (quick
start, synthetic benchmark, accuracy and speed suites) uses the library and is never imported by it.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

from .builder import build_model, build_processor, ensure_image_token
from .configuration_sec_mllm import SecMllmConfig
from .connectors import build_connector
from .convert_llava import from_llava_pretrained, llava_to_sec_mllm
from .modeling_sec_mllm import SecMllmForConditionalGeneration
from .processing_sec_mllm import SecMllmProcessor
from .projectors import Projector, ProjectorOutput, build_projector, list_projectors
from .vision import OpenClipVisionConfig

AutoConfig.register(SecMllmConfig.model_type, SecMllmConfig, exist_ok=True)
AutoConfig.register(OpenClipVisionConfig.model_type, OpenClipVisionConfig, exist_ok=True)
AutoModel.register(SecMllmConfig, SecMllmForConditionalGeneration, exist_ok=True)
AutoModelForImageTextToText.register(SecMllmConfig, SecMllmForConditionalGeneration, exist_ok=True)
AutoProcessor.register(SecMllmConfig, SecMllmProcessor, exist_ok=True)
SecMllmConfig.register_for_auto_class()
SecMllmForConditionalGeneration.register_for_auto_class("AutoModel")
SecMllmProcessor.register_for_auto_class("AutoProcessor")

__version__ = "0.1.0"

__all__ = [
    "OpenClipVisionConfig",
    "Projector",
    "ProjectorOutput",
    "SecMllmConfig",
    "SecMllmForConditionalGeneration",
    "SecMllmProcessor",
    "build_connector",
    "build_model",
    "build_processor",
    "build_projector",
    "ensure_image_token",
    "from_llava_pretrained",
    "list_projectors",
    "llava_to_sec_mllm",
]
