"""The index of members' names a body may contain (push/mention_index.py):
it must never miss a member that the case-insensitive mention rules match."""

from __future__ import annotations

import random
import re

from homeserver.push.evaluator import glob_regex
from homeserver.push.mention_index import MentionIndex, fold

_WORD = "A-Za-z0-9_"


def _named(name: str, body: str) -> bool:
    """contains_display_name, as the evaluator matches it."""
    regex = re.compile(f"(?<![{_WORD}]){re.escape(name)}(?![{_WORD}])", re.IGNORECASE)
    return regex.search(body) is not None


def test_fold_agrees_with_re_ignorecase():
    ascii_letter = re.compile("[a-z]", re.IGNORECASE)
    for cp in range(0x80, 0x110000):
        char = chr(cp)
        if ascii_letter.fullmatch(char):
            assert fold(char) == char.lower() if char.isascii() else fold(char).isascii(), hex(cp)
    # Every pair `re` takes for equal beyond lowercase folds to one character.
    for a, b in ["iı", "sſ", "µμ", "\u0345ι", "ιι", "ΐΐ", "ΰΰ", "βϐ", "εϵ", "θϑ", "κϰ"] + [
        "πϖ",
        "ρϱ",
        "ςσ",
        "φϕ",
        "ṡẛ",
        "ﬅﬆ",
        "Σς",
        "İi",
        "Kk",
    ]:
        assert re.fullmatch(re.escape(a), b, re.IGNORECASE), (a, b)
        assert fold(a) == fold(b), (a, b)
    assert all(len(fold(chr(cp))) == 1 for cp in range(0x110000) if not 0xD800 <= cp < 0xE000)


def test_candidates_are_never_fewer_than_the_matches():
    rng = random.Random(24)
    alphabet = "abcAB _-.xyzÜüİıſKΣσς"
    members = []
    for i in range(300):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        members.append((f"@{rng.choice(['u', 'ab', 'x.y', 'a*b'])}{i}:hs", name))
    index = MentionIndex(members)
    for _ in range(300):
        body = "".join(rng.choice(alphabet + "0123456789") for _ in range(rng.randint(0, 40)))
        found = index.candidates(body)
        for user_id, name in members:
            localpart = user_id[1:].split(":")[0]
            if _named(name, body) or glob_regex(localpart, True).search(body):
                assert user_id in found, (user_id, name, body)


def test_a_body_naming_nobody_has_no_candidates():
    index = MentionIndex([(f"@user{i}:hs", f"Person Number {i}") for i in range(1000)])
    assert index.candidates("hello there, how is everyone today?") == set()
    assert index.candidates("ask Person Number 7") >= {"@user7:hs"}
    assert "@user5:hs" in index.candidates("USER5 please")
