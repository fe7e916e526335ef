"""Extractor parameters against randextract's calculate_length and NIST's ea_conditioning."""

from __future__ import annotations

import math

import pytest
from qitcore.errors import InvalidArgumentError, InvalidTypeError
from qitcore.extract import conditioned_entropy, output_entropy, output_length
from randextract import ToeplitzHashing


@pytest.mark.parametrize("n", [1, 7, 100, 1000, 4096, 10**6, 2**27])
@pytest.mark.parametrize("k", [0.01, 0.3, 0.5, 0.7, 0.9, 0.999, 1.0])
@pytest.mark.parametrize("eps", [1e-15, 1e-9, 1e-6, 1e-3, 0.5, 0.999])
def test_length_agrees_with_randextract(n: int, k: float, eps: float) -> None:
    for side in ("quantum", "classical"):
        peer = ToeplitzHashing.calculate_length(side, n, relative_source_entropy=k, error_bound=eps)
        assert output_length(n, k, eps, side_information=side) == peer


def test_randextract_documentation_examples() -> None:
    table = {0.5: (442, 462, 482), 0.7: (642, 662, 682), 0.9: (842, 862, 882)}
    for k, expect in table.items():
        assert tuple(output_length(1000, k, eps) for eps in (1e-9, 1e-6, 1e-3)) == expect
        assert tuple(output_length(1000, k * 1000, eps, per="block") for eps in (1e-9, 1e-6, 1e-3)) == expect


def test_cryptomite_convention_is_two_bits_shorter() -> None:
    assert output_length(1000, 0.5, 1e-9, convention="cryptomite") == 440
    assert output_length(1000, 0.5, 1e-9, convention="cryptomite") == math.floor(500 + 2 * math.log2(1e-9))


def test_nist_ea_conditioning_examples() -> None:
    # NIST's ea_conditioning prints 251.6898 for `-v 256 256 256 256` and 766.464 for
    # `-n 1024 768 768 900 0.998`.
    assert conditioned_entropy(256, 256, 256, 256, vetted=True) == pytest.approx(251.6898, abs=5e-5)
    assert conditioned_entropy(1024, 768, 768, 900, vetted=False, h_prime=0.998) == pytest.approx(766.464, abs=1e-9)


@pytest.mark.parametrize(
    ("n_in", "n_out", "nw", "h_in"), [(8, 4, 8, 3.5), (16, 16, 16, 12), (20, 8, 6, 19), (32, 8, 8, 0.5)]
)
def test_output_entropy_matches_the_formula_evaluated_directly(n_in: int, n_out: int, nw: int, h_in: float) -> None:
    p_high = 2.0**-h_in
    p_low = (1 - p_high) / (2.0**n_in - 1)
    n = min(n_out, nw)
    psi = 2.0 ** (n_in - n) * p_low + p_high
    u = 2.0 ** (n_in - n) + math.sqrt(2 * n * 2.0 ** (n_in - n) * math.log(2))
    assert output_entropy(n_in, n_out, nw, h_in) == pytest.approx(-math.log2(max(psi, u * p_low)), rel=1e-12)


def test_output_entropy_handles_inputs_too_large_for_floats() -> None:
    # 2^4096 overflows a double; the result must still be near the output size.
    value = output_entropy(4096, 256, 256, 4000)
    assert 250 < value <= 256


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: output_length(0, 0.5, 1e-6), InvalidArgumentError, "n"),
        (lambda: output_length(100, 0.0, 1e-6), InvalidArgumentError, "min_entropy"),
        (lambda: output_length(100, 1.5, 1e-6), InvalidArgumentError, "min_entropy"),
        (lambda: output_length(100, 101, 1e-6, per="block"), InvalidArgumentError, "min_entropy"),
        (lambda: output_length(100, 0.5, 0.0), InvalidArgumentError, "eps"),
        (lambda: output_length(100, 0.5, 1.0), InvalidArgumentError, "eps"),
        (lambda: output_length(100, 0.5, float("nan")), InvalidArgumentError, "eps"),
        (lambda: output_length(100, "0.5", 1e-6), InvalidTypeError, "min_entropy"),
        (lambda: output_length(100.0, 0.5, 1e-6), InvalidTypeError, "n"),
        (lambda: output_length(100, 0.5, 1e-6, per="byte"), InvalidArgumentError, "per"),
        (
            lambda: output_length(100, 0.5, 1e-6, side_information="none"),
            InvalidArgumentError,
            "side_information",
        ),
        (lambda: output_entropy(0, 8, 8, 1), InvalidArgumentError, "n_in"),
        (lambda: output_entropy(8, 8, 8, 9), InvalidArgumentError, "h_in"),
        (lambda: conditioned_entropy(8, 8, 8, 4, vetted=False), InvalidArgumentError, "h_prime"),
        (lambda: conditioned_entropy(8, 8, 8, 4, vetted=False, h_prime=1.5), InvalidArgumentError, "h_prime"),
    ],
)
def test_bad_parameters_name_the_argument(call, error: type, name: str) -> None:
    with pytest.raises(error, match=rf"^{name}: "):
        call()
