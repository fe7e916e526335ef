"""Independent references for the QKD tests, written from the papers in plain Python floats:
the finite-key length of Lim, Curty, Walenta, Xu and Zbinden (PRA 89, 022307, 2014, Eqs. 1-5,
key basis X, test basis Z), the GF(2^64) polynomial tag evaluated term by term, and the binary
entropy."""

from __future__ import annotations

import math


def h2(p: float) -> float:
    return 0.0 if p <= 0 or p >= 1 else -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def _hoeffding(n: list[int], mu: list[float], p: list[float], eps_sec: float) -> list[tuple[float, float]]:
    delta = math.sqrt(sum(n) / 2 * math.log(21 / eps_sec))
    return [(math.exp(m) / q * (c - delta), math.exp(m) / q * (c + delta)) for c, m, q in zip(n, mu, p, strict=True)]


def _tau(j: int, mu: list[float], p: list[float]) -> float:
    return sum(q * math.exp(-m) * m**j / math.factorial(j) for m, q in zip(mu, p, strict=True))


def lim_length(
    mu: list[float],
    p: list[float],
    nx: list[int],
    nz: list[int],
    mz: list[int],
    leaked: int,
    eps_sec: float,
    eps_cor: float,
) -> dict[str, float]:
    m1, m2, m3 = mu
    t0, t1 = _tau(0, mu, p), _tau(1, mu, p)

    def s0_s1(n: list[int]) -> tuple[float, float]:
        (_, n1p), (n2m, n2p), (n3m, n3p) = _hoeffding(n, mu, p, eps_sec)
        s0 = max(0.0, t0 * (m2 * n3m - m3 * n2p) / (m2 - m3))
        num = m1 * t1 * (n2m - n3p - (m2**2 - m3**2) / m1**2 * (n1p - s0 / t0))
        return s0, max(0.0, num / (m1 * (m2 - m3) - m2**2 + m3**2))

    sx0, sx1 = s0_s1(nx)
    _, sz1 = s0_s1(nz)
    (_, _), (_, m2p), (m3m, _) = _hoeffding(mz, mu, p, eps_sec)
    vz1 = max(0.0, t1 * (m2p - m3m) / (m2 - m3))
    if sz1 <= 0 or sx1 <= 0:
        phi = 0.5
    else:
        b = min(vz1 / sz1, 0.5)
        c, d, a = sz1, sx1, eps_sec
        gamma = math.sqrt(
            (c + d) * (1 - b) * b / (c * d * math.log(2)) * math.log2((c + d) / (c * d * (1 - b) * b) * 21**2 / a**2)
        )
        phi = min(0.5, b + gamma) if b > 0 else 0.0
    value = sx0 + sx1 - sx1 * h2(phi) - leaked - 6 * math.log2(21 / eps_sec) - math.log2(2 / eps_cor)
    return {"s0": sx0, "s1": sx1, "phase_error": phi, "length": max(0, math.floor(value))}


def gf64_mul(a: int, b: int) -> int:
    """Carry-less product modulo t^64 + t^4 + t^3 + t + 1, bit by bit."""
    r = 0
    for i in range(64):
        if b >> i & 1:
            r ^= a << i
    for i in range(127, 63, -1):
        if r >> i & 1:
            r ^= (0b11011 | 1 << 64) << (i - 64)
    return r


def poly_tag(bits: list[int], point: int) -> int:
    """sum m_i k^(L+2-i) + n k over the key's 64-bit words m_1..m_L (bit j of word j // 64)."""
    words = [
        sum(bits[w * 64 + i] << i for i in range(min(64, len(bits) - w * 64))) for w in range((len(bits) + 63) // 64)
    ]
    tag, power = 0, point
    for term in [len(bits), *reversed(words)]:
        tag ^= gf64_mul(term, power)
        power = gf64_mul(power, point)
    return tag
