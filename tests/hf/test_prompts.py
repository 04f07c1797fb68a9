"""Prompt text and answer parsing (no transformers needed)."""

from __future__ import annotations

import pytest

from learnscope.hf.prompts import few_shot, is_correct, line, parse_digits, render


def test_render_joins_characters_tightly_and_words_with_spaces():
    assert render(["6", "2", "+", "5", "="]) == "62+5="
    assert render(["s72", "s73", "="]) == "s72 s73 ="
    assert line(["s1", "s2", "="], ["same"]) == "s1 s2 = same"
    assert line(["1", "+", "2", "="], ["3"]) == "1+2=3"
    prompt = few_shot([(["1", "+", "2", "="], ["3"]), (["4", "+", "4", "="], ["8"])], ["9", "="])
    assert prompt == "1+2=3\n4+4=8\n9="


@pytest.mark.parametrize(
    ("completion", "answer", "right"),
    [
        ("682", "682", True),
        (" 682\n", "682", True),
        ("6 8 2", "682", True),  # spaces between digits
        ("0682", "682", True),  # a leading zero
        ("682", "00682", True),  # a zero-padded answer is scored on its value
        ("0", "000", True),
        ("The answer is 682.", "682", True),  # extra text around
        ("682 and 700", "682", True),
        ("68", "682", False),
        ("6820", "682", False),
        ("-682", "682", True),  # the sign is not a digit: only digit answers exist
        ("\n682", "682", False),  # only the first line counts
        ("none", "682", False),
        ("", "682", False),
        ("6  82", "682", False),  # two spaces end the run of digits
    ],
)
def test_digit_answers(completion, answer, right):
    assert is_correct(completion, list(answer)) is right


def test_word_answers():
    assert is_correct(" different", ["different"])
    assert is_correct("different, surely", ["different"])
    assert not is_correct("differently", ["different"])
    assert not is_correct("same", ["different"])
    assert parse_digits("abc 1 2 3 x") == "123"
