"""Stage freezing: what trains in stage 1, stage 2, and stage 2 with LoRA."""

from __future__ import annotations

from peft import LoraConfig, get_peft_model

from sec_mllm.train.lora import lora_targets
from sec_mllm.train.stages import component_of, configure_trainable


def trainable_components(model):
    return {component_of(n) for n, p in model.named_parameters() if p.requires_grad}


def test_stage_one_trains_projector_and_connector_only(make_model):
    model, _ = make_model()
    table = configure_trainable(model, 1)
    assert trainable_components(model) == {"projector", "connector"}
    assert "language_model" in table and "total" in table


def test_stage_two_adds_the_language_model(make_model):
    model, _ = make_model()
    configure_trainable(model, 2)
    assert trainable_components(model) == {"projector", "connector", "language_model"}
    configure_trainable(model, 2, tune_vision_tower=True, freeze_connector=True)
    assert trainable_components(model) == {"vision_tower", "language_model"}  # LLaVA: freeze_mm_mlp_adapter
    assert not any(p.requires_grad for n, p in model.named_parameters() if component_of(n) == "connector")
    assert all(p.requires_grad for n, p in model.named_parameters() if component_of(n) == "vision_tower")


def test_stage_two_lora_trains_adapters_not_base_weights(make_model):
    model, _ = make_model()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=lora_targets(model)))
    configure_trainable(peft_model, 2, lora=True)
    lm_trainable = [
        n for n, p in peft_model.named_parameters() if p.requires_grad and component_of(n) == "language_model"
    ]
    assert lm_trainable and all("lora_" in n for n in lm_trainable)
    assert trainable_components(peft_model) == {"projector", "connector", "language_model"}
    assert not any("lm_head" in n for n in lm_trainable)
