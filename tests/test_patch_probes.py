"""Linear probes of patch features (experiments/patch_probes.py): they find a linearly encoded label, and only it."""

from __future__ import annotations

import torch

from sec_mllm.experiments import patch_probes
from sec_mllm.experiments.patch_probes import BINARY_LABELS, CLASS_LABELS, linear_probe


def labels(m: int, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    out = {key: torch.randint(classes, (m, n), generator=gen) for key, classes in CLASS_LABELS.items()}
    out["centre"] = torch.randint(2, (m, n), generator=gen).float()
    out["chars"] = torch.randint(2, (m, n, BINARY_LABELS["chars"]), generator=gen).float()
    return out


def test_a_linearly_encoded_label_is_found_and_noise_is_not(monkeypatch):
    monkeypatch.setattr(patch_probes, "PROBE_STEPS", 150)
    gen = torch.Generator().manual_seed(0)
    y_train, y_test = labels(40, 16, gen), labels(20, 16, gen)

    def features(y: dict[str, torch.Tensor]) -> torch.Tensor:  # colour one-hot + centre, then noise: [M, N, D]
        onehot = torch.nn.functional.one_hot(y["color"], CLASS_LABELS["color"]).float()
        noise = torch.randn(*y["color"].shape, 8, generator=gen)
        return torch.cat([onehot, y["centre"][..., None], noise], dim=-1)

    result = linear_probe(features(y_train), features(y_test), y_train, y_test)
    assert result["color"]["accuracy"] == 1.0 and result["color"]["macro_f1"] == 1.0
    assert result["centre"]["f1"] == 1.0
    assert result["kind"]["accuracy"] < 0.5  # random labels: near chance (1/6)
    assert 0.0 <= result["chars"]["f1"] <= 1.0
