"""Few-shot prompts for a task and exact parsing of a model's answer (``learnscope eval``).

**Text of an example.** A question's tokens (without ``<bos>``, pauses or chain of thought)
are joined with no separator when every token is one character (``6 2 3 + 5 9 =`` is the text
``623+59=``), else with single spaces (``s72 s73 =``); the answer alike (``682``,
``different``).

**Prompt.** ``shots`` training examples, one per line as ``question answer`` joined by one
space when the tokens are words and by nothing when they are characters, then the question
to answer::

    12+34=46
    5+7=12
    623+59=

**Parsing.** Only the completion's first line counts. A digit answer: the first run of digits
in it, single spaces between digits allowed (``" 6 8 2"`` is 682), compared with the expected
digits after leading zeros are dropped on both sides (``0682`` is 682; a task that zero-pads
its answers is scored on the value). Extra text before or after is ignored (``"The answer is
682."``). Any other answer: the first line, stripped, must start with the expected text,
followed by its end or a character that is not a letter or digit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

DIGITS = re.compile(r"\d(?: ?\d)*")


def render(tokens: Sequence[str]) -> str:
    """``["6", "2", "+"]`` -> ``"62+"``; ``["s72", "s73", "="]`` -> ``"s72 s73 ="``."""
    return "".join(tokens) if all(len(t) == 1 for t in tokens) else " ".join(tokens)


def line(question: Sequence[str], answer: Sequence[str] = ()) -> str:
    """One example's line: the question's text, then the answer's (joined as :func:`render`)."""
    words = any(len(t) != 1 for t in [*question, *answer])
    sep = " " if words and answer else ""
    return render(question) + sep + render(answer) if answer else render(question)


def few_shot(shots: Sequence[tuple[Sequence[str], Sequence[str]]], question: Sequence[str]) -> str:
    """The prompt: one ``question answer`` line per shot, then the question.

    >>> few_shot([(["1", "+", "2", "="], ["3"])], ["4", "+", "5", "="])
    '1+2=3\\n4+5='
    """
    return "".join(line(q, a) + "\n" for q, a in shots) + line(question)


def parse_digits(completion: str) -> str | None:
    """The first run of digits of the first line, spaces between digits removed; None if
    there is none.

    >>> parse_digits(" 6 8 2\\n99"), parse_digits("The answer is 0042."), parse_digits("none")
    ('682', '0042', None)
    """
    found = DIGITS.search(completion.split("\n", 1)[0])
    return found.group().replace(" ", "") if found else None


def is_correct(completion: str, answer: Sequence[str]) -> bool:
    """Whether ``completion`` gives ``answer`` (tokens) under the parsing rules above.

    >>> is_correct(" 0682 and more", ["6", "8", "2"]), is_correct("68", ["6", "8", "2"])
    (True, False)
    >>> is_correct("different.", ["different"]), is_correct("differently", ["different"])
    (True, False)
    """
    expected = "".join(answer)
    if expected.isdigit():
        got = parse_digits(completion)
        return got is not None and (got.lstrip("0") or "0") == (expected.lstrip("0") or "0")
    first = " ".join(completion.split("\n", 1)[0].split())
    text = render(answer)
    if not first.startswith(text):
        return False
    rest = first[len(text) :]
    return not rest or not rest[0].isalnum()
