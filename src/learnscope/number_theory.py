"""The number theory of the modular tasks, in one leaf module (it imports nothing from
learnscope): primality, the primitive root of a prime and the discrete logarithm it defines.
The tasks label with them, the analytic networks and the Fourier probes of multiplication
read residues through the discrete logarithm (``a * b = g^(log a + log b)``)."""

from __future__ import annotations

import torch


def is_prime(n: int) -> bool:
    """Trial division; ``p`` is small here.

    >>> [k for k in range(20) if is_prime(k)]
    [2, 3, 5, 7, 11, 13, 17, 19]
    """
    if n < 2:
        return False
    return all(n % d for d in range(2, int(n**0.5) + 1))


def primitive_root(p: int) -> int:
    """The smallest generator ``g`` of the multiplicative group mod the prime ``p``.

    ``g`` is a primitive root when ``g^((p-1)/r) != 1`` for every prime ``r`` dividing ``p-1``.

    >>> primitive_root(7), primitive_root(23), primitive_root(97)
    (3, 5, 5)
    """
    if not is_prime(p):
        raise ValueError(f"p must be prime (got {p})")
    if p == 2:
        return 1
    factors, m, r = set(), p - 1, 2
    while r * r <= m:
        while m % r == 0:
            factors.add(r)
            m //= r
        r += 1
    if m > 1:
        factors.add(m)
    for g in range(2, p):
        if all(pow(g, (p - 1) // r, p) != 1 for r in factors):
            return g
    raise AssertionError("unreachable: every prime has a primitive root")


def discrete_log_table(p: int) -> torch.Tensor:
    """``log[n] = t`` with ``g^t = n mod p`` for ``n = 1..p-1`` (``g = primitive_root(p)``);
    ``log[0] = -1`` (0 has no logarithm). Shape ``(p,)``, int64.

    >>> discrete_log_table(7).tolist()  # 3^0=1, 3^1=3, 3^2=2, 3^3=6, 3^4=4, 3^5=5
    [-1, 0, 2, 1, 4, 5, 3]
    """
    g = primitive_root(p)
    log = torch.full((p,), -1, dtype=torch.long)
    n = 1
    for t in range(p - 1):
        log[n] = t
        n = n * g % p
    return log
