"""Linear probes of patch features (experiments/patch_probes.py): they find a linearly encoded label, and only it,
also when its positives are rare (as characters are: 1 patch in 40)."""

from __future__ import annotations

import pytest
import torch

from sec_mllm.experiments.patch_probes import BINARY_LABELS, CLASS_LABELS, average_precision, linear_probe


def labels(m: int, n: int, gen: torch.Generator, char_rate: float) -> dict[str, torch.Tensor]:
    out = {key: torch.randint(classes, (m, n), generator=gen) for key, classes in CLASS_LABELS.items()}
    out["centre"] = torch.randint(2, (m, n), generator=gen).float()
    out["chars"] = (torch.rand(m, n, BINARY_LABELS["chars"], generator=gen) < char_rate).float()
    return out


def features(y: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """Colour one-hot, centre, the first character's presence, then noise: [M, N, D]."""
    onehot = torch.nn.functional.one_hot(y["color"], CLASS_LABELS["color"]).float()
    noise = torch.randn(*y["color"].shape, 8, generator=gen)
    return torch.cat([onehot, y["centre"][..., None], y["chars"][..., :1], noise], dim=-1)


def test_a_linearly_encoded_label_is_found_and_noise_is_not():
    gen = torch.Generator().manual_seed(0)
    y_train, y_test = labels(40, 16, gen, 0.5), labels(20, 16, gen, 0.5)
    result = linear_probe(features(y_train, gen), features(y_test, gen), y_train, y_test, steps=150)
    assert result["color"]["accuracy"] == 1.0 and result["color"]["macro_f1"] == 1.0
    assert result["centre"]["f1"] == 1.0 and result["centre"]["average_precision"] == 1.0
    assert result["kind"]["accuracy"] < 0.5  # random labels: near chance (1/6)
    assert 0.0 <= result["chars"]["f1"] <= 1.0


def test_rare_positives_are_found_and_noise_stays_at_prevalence():
    """Characters present in 1 patch of 40, encoded in the features with noise: found (F1, average precision);
    centre labels absent from the features: average precision near their prevalence."""
    gen = torch.Generator().manual_seed(1)
    y_train, y_test = labels(200, 16, gen, 0.025), labels(100, 16, gen, 0.025)

    def noisy_chars(y: dict[str, torch.Tensor]) -> torch.Tensor:  # [M, N, 36 + 8]
        signal = y["chars"] + 0.3 * torch.randn(y["chars"].shape, generator=gen)
        return torch.cat([signal, torch.randn(*y["color"].shape, 8, generator=gen)], dim=-1)

    result = linear_probe(noisy_chars(y_train), noisy_chars(y_test), y_train, y_test, steps=300)
    assert 0.01 < result["chars"]["prevalence"] < 0.04
    assert result["chars"]["average_precision"] > 0.6 and result["chars"]["f1"] > 0.3
    assert abs(result["centre"]["average_precision"] - result["centre"]["prevalence"]) < 0.1


def test_average_precision():
    target = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    assert average_precision(torch.tensor([[4.0], [3.0], [2.0], [1.0]]), target) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision(torch.tensor([[4.0], [1.0], [3.0], [2.0]]), target) == 1.0
