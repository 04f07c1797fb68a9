"""Finite groups given by their elements as permutations, and their characters, in one leaf
module (it imports nothing from learnscope): the ``group`` task labels with the composition
table, the ``irrep_power`` probe projects onto the isotypic components the characters define.

Groups (:func:`make_group`): ``S<n>`` (symmetric, ``n <= 6``), ``A<n>`` (alternating, ``n <=
6``), ``D<n>`` (dihedral of order ``2n``, the symmetries of a regular ``n``-gon, ``3 <= n <=
200``). Elements are permutation tuples of ``0..k-1``, enumerated deterministically: ``S_n``
in lexicographic order (identity first), ``A_n`` the even ones in that order, ``D_n`` as
``r^i s^j`` at index ``i + n j`` (``r`` the rotation ``v -> v + 1``, ``s`` the reflection
``v -> -v`` mod ``n``). The product ``a * b`` is composition, ``(a * b)(v) = a(b(v))``.

Characters (:func:`characters`) are computed from the group alone, by Burnside's algorithm
(Burnside 1911; Dixon 1967, "High speed computation of group characters"): the class sums
``K_i`` span the centre of the group algebra, ``K_i K_j = sum_k c_ijk K_k``, and in an
irreducible representation ``rho`` of degree ``d`` the class sum ``K_j`` acts as the scalar
``w_j = |C_j| chi(g_j) / d``. So the vector ``w`` (indexed by the classes) is a common
eigenvector of the matrices ``(A_j)_{ik} = c_ijk`` with eigenvalue ``w_j``: diagonalising one
random combination ``sum_j r_j A_j`` gives every ``w`` (its eigenvalues are distinct for
almost every ``r``), normalised by ``w_e = 1``; then ``d^2 = |G| / sum_k |w_k|^2 / |C_k|``
(first orthogonality) and ``chi(g_k) = d w_k / |C_k|``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np

#: largest n of S_n and A_n (|S_6| = 720)
MAX_SYMMETRIC = 6
#: largest n of D_n (order 2n)
MAX_DIHEDRAL = 200


@dataclass
class Group:
    """A finite group: ``elements`` (permutation tuples), ``table[a, b]`` the index of ``a * b``
    (``(n, n)`` int64), ``identity`` and ``inverse`` (``(n,)``) indices."""

    name: str
    elements: list[tuple[int, ...]]
    table: np.ndarray
    identity: int
    inverse: np.ndarray
    _characters: tuple | None = field(default=None, repr=False)

    @property
    def order(self) -> int:
        return len(self.elements)

    def classes(self) -> list[list[int]]:
        """Conjugacy classes (lists of element indices), the identity's first, each class in
        the order of its smallest index.

        >>> [len(c) for c in make_group("S3").classes()]
        [1, 3, 2]
        """
        seen: dict[int, int] = {}
        out: list[list[int]] = []
        for g in range(self.order):
            if g in seen:
                continue
            members = sorted({int(self.table[self.table[h, g], self.inverse[h]]) for h in
                              range(self.order)})  # fmt: skip
            for m in members:
                seen[m] = len(out)
            out.append(members)
        return out


def _from_permutations(name: str, perms: list[tuple[int, ...]]) -> Group:
    index = {p: i for i, p in enumerate(perms)}
    n = len(perms)
    table = np.empty((n, n), dtype=np.int64)
    for i, a in enumerate(perms):
        for j, b in enumerate(perms):
            table[i, j] = index[tuple(a[v] for v in b)]
    identity = index[tuple(range(len(perms[0])))]
    inverse = np.argmax(table == identity, axis=1).astype(np.int64)
    return Group(name, perms, table, identity, inverse)


def _parity(p: tuple[int, ...]) -> int:
    """0 for an even permutation, 1 for an odd one (count of inversions mod 2)."""
    return sum(p[i] > p[j] for i in range(len(p)) for j in range(i + 1, len(p))) % 2


def symmetric(n: int) -> Group:
    return _from_permutations(f"S{n}", list(itertools.permutations(range(n))))


def alternating(n: int) -> Group:
    perms = [p for p in itertools.permutations(range(n)) if _parity(p) == 0]
    return _from_permutations(f"A{n}", perms)


def dihedral(n: int) -> Group:
    """``D_n``, order ``2n``: element ``i + n j`` is ``r^i s^j``, ``r^i s^j (v) = i + (-1)^j v``."""
    perms = [tuple((i + (-1) ** j * v) % n for v in range(n)) for j in (0, 1) for i in range(n)]
    return _from_permutations(f"D{n}", perms)


GROUP_NAMES = "S<n> or A<n> (3 <= n <= 6), D<n> (3 <= n <= 200)"


def parse_group(name: str) -> tuple[str, int]:
    """``("S", 4)`` for ``"S4"``; ValueError naming what is allowed.

    >>> parse_group("D6")
    ('D', 6)
    """
    m = re.fullmatch(r"([SAD])(\d{1,4})", str(name))
    if not m:
        raise ValueError(f"unknown group {name!r}; allowed: {GROUP_NAMES}")
    kind, n = m.group(1), int(m.group(2))
    top = MAX_DIHEDRAL if kind == "D" else MAX_SYMMETRIC
    if not 3 <= n <= top:
        raise ValueError(f"group {name!r}: n must be 3..{top}; allowed: {GROUP_NAMES}")
    return kind, n


_CACHE: dict[str, Group] = {}


def make_group(name: str) -> Group:
    """The group called ``name`` (``S4``, ``A5``, ``D6``), built once per process.

    >>> g = make_group("S4"); g.order, g.elements[g.identity]
    (24, (0, 1, 2, 3))
    """
    kind, n = parse_group(name)
    key = f"{kind}{n}"
    if key not in _CACHE:
        _CACHE[key] = {"S": symmetric, "A": alternating, "D": dihedral}[kind](n)
    return _CACHE[key]


def characters(group: Group) -> tuple[np.ndarray, list[list[int]], list[str]]:
    """The character table by Burnside's algorithm (module docstring).

    Returns ``chi: (r, k)`` complex (one row per irreducible character, one column per
    conjugacy class), the classes, and names: the degree followed by a letter, ``1a`` the
    trivial character, rows sorted by degree (then by the values, for a fixed order). Checked
    before it is returned: the rows are orthonormal under ``<a, b> = sum_k |C_k| a_k
    conj(b_k) / |G|`` and ``sum d^2 = |G|``.

    >>> chi, classes, names = characters(make_group("S4")); names
    ['1a', '1b', '2a', '3a', '3b']
    """
    if group._characters is not None:
        return group._characters
    classes = group.classes()
    k, n = len(classes), group.order
    cls_of = np.empty(n, dtype=np.int64)
    for i, c in enumerate(classes):
        cls_of[c] = i
    sizes = np.array([len(c) for c in classes], dtype=float)
    reps = [c[0] for c in classes]
    # c[i, j, l] = #{a in C_i : a^-1 g_l in C_j} (g_l the representative of class l)
    c = np.zeros((k, k, k))
    for col, g in enumerate(reps):
        b = group.table[group.inverse, g]  # a^-1 g for every a
        np.add.at(c, (cls_of, cls_of[b], col), 1.0)
    a_mats = [c[:, j, :] for j in range(k)]  # (A_j)_{il} = c_ijl
    rng = np.random.default_rng(12345)
    for _ in range(10):  # a combination with distinct eigenvalues (almost every one)
        mix = sum(r * m for r, m in zip(rng.normal(size=k), a_mats))
        values, vectors = np.linalg.eig(mix)
        gaps = np.abs(values[:, None] - values[None, :]) + np.eye(k)
        if gaps.min() > 1e-6:
            break
    else:  # pragma: no cover - a degenerate draw ten times over
        raise RuntimeError(f"{group.name}: no class-sum combination with distinct eigenvalues")
    w = vectors / vectors[0]  # w_e = 1 (the identity's class is first)
    degree = np.sqrt(n / (np.abs(w) ** 2 / sizes[:, None]).sum(0))
    chi = (degree * w / sizes[:, None]).T  # (r, k)
    degrees = np.rint(degree.real).astype(int)
    real_first = np.round(chi.real, 6)
    order = sorted(range(k), key=lambda r: (degrees[r], tuple(-real_first[r]),
                                            tuple(-np.round(chi[r].imag, 6))))  # fmt: skip
    chi, degrees = chi[order], degrees[order]
    gram = (chi * sizes) @ chi.conj().T / n
    if not np.allclose(gram, np.eye(k), atol=1e-8) or int((degrees**2).sum()) != n:
        raise RuntimeError(f"{group.name}: the computed characters are not orthonormal")
    names, counts = [], {}
    for d in degrees:
        counts[d] = counts.get(d, 0) + 1
        names.append(f"{d}{_letters(counts[d] - 1)}")
    group._characters = (chi, classes, names)
    return group._characters


def _letters(i: int) -> str:
    """``a``, ``b``, ..., ``z``, ``aa``, ``ab``, ...

    >>> _letters(0), _letters(25), _letters(26)
    ('a', 'z', 'aa')
    """
    return chr(97 + i) if i < 26 else _letters(i // 26 - 1) + chr(97 + i % 26)


def class_function(group: Group, values: np.ndarray, classes: list[list[int]]) -> np.ndarray:
    """Per element, the value of a class function given per class: ``(|G|,)``."""
    out = np.empty(group.order, dtype=values.dtype)
    for v, c in zip(values, classes):
        out[c] = v
    return out


def isotypic_projectors(group: Group) -> tuple[np.ndarray, list[str]]:
    """One projector per irreducible character ``chi`` of degree ``d``: ``(r, |G|, |G|)``
    complex, ``P[g, g'] = (d / |G|) chi(g g'^-1)``.

    ``P`` acts on functions ``f: G -> C`` (a column per embedding coordinate) and projects onto
    the span of the matrix elements ``g -> rho(g)_ij`` of the irrep ``rho`` with character
    ``chi`` (its isotypic component in the regular representation, dimension ``d^2``): by
    Schur orthogonality ``sum_h chi(h) rho(h^-1) = (|G| / d) I``. The projectors are Hermitian,
    idempotent, mutually orthogonal and sum to the identity (``sum_chi d chi(g) = |G|
    [g = e]``).
    """
    chi, classes, names = characters(group)
    n = group.order
    quotient = group.table[:, group.inverse]  # [g, g'] -> g g'^-1
    out = np.empty((len(names), n, n), dtype=complex)
    for r, row in enumerate(chi):
        d = np.rint(row[0].real)
        out[r] = d / n * class_function(group, row, classes)[quotient]
    return out, names
