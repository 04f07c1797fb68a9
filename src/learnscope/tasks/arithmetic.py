"""Arithmetic expressions over Z_p with step-by-step reduction (Feng et al. 2023).

An expression has ``n_ops`` binary operators drawn from ``ops`` (``+ - * /``; ``/`` is
multiplication by the inverse and needs a prime ``p``) over operands uniform in ``0..p-1``.
Its shape is a random binary tree (the left subtree gets ``i`` operators, ``i`` uniform in
``0..k-1`` for a node with ``k``), printed with the parentheses the tree needs: a child is
parenthesised when its operator binds more loosely than its parent's, or equally and it is a
right child, so that reading the text left to right with the usual precedence gives the tree
back. Expressions with a zero divisor anywhere are redrawn. The answer is the value mod ``p``:

>>> task = make_task("arithmetic", p=7, n_ops=3, format="cot", n_train=4, n_test=2)
>>> task.decode(task.split("train")["tokens"][0])
'<bos> 2 * ( 2 - 1 - 5 ) = 2 * ( 1 - 5 ) = 2 * 3 = 6 <eos>'

With ``format: cot`` the chain of thought is Feng et al.'s: at every step the leftmost
operator whose two operands are numbers is computed and the whole shorter expression written
again, followed by ``=``; after ``n_ops - 1`` steps the last ``=`` is followed by the value
(so the answer marker is ``=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from learnscope.number_theory import is_prime
from learnscope.tasks.base import make_task
from learnscope.tasks.sequence import Example, SequenceParams, SequenceTask

__all__ = ["ArithmeticParams", "ArithmeticTask", "make_task"]

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


class ArithmeticParams(SequenceParams):
    p: int = Field(11, ge=2, le=1000, description="the modulus")
    n_ops: int = Field(3, ge=1, le=50, description="operators per expression")
    ops: list[Literal["+", "-", "*", "/"]] = Field(["+", "-", "*", "/"], min_length=1)
    format: Literal["plain", "cot"] = "plain"

    @model_validator(mode="after")
    def _check(self) -> ArithmeticParams:
        if "/" in self.ops and not is_prime(self.p):
            raise ValueError(f"'/' needs a prime p (got p={self.p})")
        if len(set(self.ops)) != len(self.ops):
            raise ValueError(f"ops must be distinct (got {self.ops})")
        return self


@dataclass
class Node:
    """A number (``op is None``) or ``left op right``."""

    value: int
    op: str | None = None
    left: Node | None = None
    right: Node | None = None


def _apply(op: str, a: int, b: int, p: int) -> int:
    if op == "+":
        return (a + b) % p
    if op == "-":
        return (a - b) % p
    if op == "*":
        return a * b % p
    return a * pow(b, -1, p) % p


def _tokens(node: Node, parent: str | None = None, right: bool = False) -> list[str]:
    if node.op is None:
        return [str(node.value)]
    inner = [*_tokens(node.left, node.op), node.op, *_tokens(node.right, node.op, True)]
    if parent is None:
        return inner
    looser = PRECEDENCE[node.op] < PRECEDENCE[parent]
    same_right = right and PRECEDENCE[node.op] == PRECEDENCE[parent]
    return ["(", *inner, ")"] if looser or same_right else inner


def _reduce_once(node: Node) -> bool:
    """Replace the leftmost operator with two number operands by its value; True if done."""
    if node.op is None:
        return False
    if node.left.op is None and node.right.op is None:
        node.op, node.left, node.right = None, None, None
        return True
    return _reduce_once(node.left) or _reduce_once(node.right)


class ArithmeticTask(SequenceTask):
    """The value mod ``p`` of a random expression with ``n_ops`` operators."""

    name = "arithmetic"
    Params = ArithmeticParams
    params: ArithmeticParams

    def symbols(self) -> list[str]:
        return [*map(str, range(self.params.p)), "+", "-", "*", "/", "(", ")", "="]

    def answer_marker(self) -> str | None:
        return "=" if self.params.format == "cot" else None

    def max_example_len(self) -> int:
        """An expression with ``k`` operators has ``2k + 1`` symbols and at most ``k - 1``
        pairs of parentheses (one per non-root operator): ``4k - 1`` tokens."""
        n = self.params.n_ops
        cot = sum(4 * k for k in range(1, n)) if self.params.format == "cot" else 0
        return 4 * n + cot + 1

    def draw(self, rng: np.random.Generator, n: int, split: str) -> list[Example]:
        out = []
        while len(out) < n:
            tree = self._tree(rng, self.params.n_ops)
            if tree is not None:
                out.append(self.example(tree))
        return out

    def _tree(self, rng: np.random.Generator, k: int) -> Node | None:
        """A random expression with ``k`` operators, or None if a divisor is 0 mod p."""
        if k == 0:
            return Node(int(rng.integers(self.params.p)))
        i = int(rng.integers(k))
        op = self.params.ops[int(rng.integers(len(self.params.ops)))]
        left, right = self._tree(rng, i), self._tree(rng, k - 1 - i)
        if left is None or right is None or (op == "/" and right.value == 0):
            return None
        return Node(_apply(op, left.value, right.value, self.params.p), op, left, right)

    def example(self, tree: Node) -> Example:
        question = (*_tokens(tree), "=")
        cot: list[str] = []
        if self.params.format == "cot":
            for _ in range(self.params.n_ops - 1):
                _reduce_once(tree)
                cot += [*_tokens(tree), "="]
        return Example(question, (str(tree.value),), tree.value, tuple(cot))
