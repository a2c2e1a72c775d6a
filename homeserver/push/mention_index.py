"""Which members a message body may name: the legacy mention rules
(`.m.rule.contains_display_name`, `.m.rule.contains_user_name`) found without
testing every member's name against every message.

Built once per room's cached facts (push/notifications.py). Each member's
display name and localpart is keyed by its first few characters, folded the
way the evaluator's case-insensitive regexes compare characters; a body is
folded once and its substrings of those lengths are looked up. A member whose
key occurs may be named (the evaluator decides); one whose key does not is
certainly not. The cost of a message follows its length, not the members.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

# Characters of a key: names shorter than this are keyed whole.
_KEY_LENGTH: Final = 3
# Up to this many keys of a length are searched for one by one in a body
# longer than this, rather than collecting the body's substrings.
_FEW_KEYS: Final = 16
# Before lowering: the one letter whose full lowercase is two characters, for
# which `re` compares its simple lowercase (i).
_BEFORE_LOWER: Final = str.maketrans({"\u0130": "i"})
# After lowering: characters `re.IGNORECASE` takes for equal beyond their
# lowercase (CPython's extra case equivalences), folded onto one of each group.
_AFTER_LOWER: Final = str.maketrans(
    {
        "\u0131": "i",  # dotless i
        "\u017f": "s",  # long s
        "\u03bc": "\u00b5",  # mu, micro sign
        "\u03b9": "\u0345",  # iota, ypogegrammeni
        "\u1fbe": "\u0345",  # prosgegrammeni
        "\u1fd3": "\u0390",
        "\u1fe3": "\u03b0",
        "\u03d0": "\u03b2",  # beta symbol
        "\u03f5": "\u03b5",  # lunate epsilon
        "\u03d1": "\u03b8",  # theta symbol
        "\u03f0": "\u03ba",  # kappa symbol
        "\u03d6": "\u03c0",  # pi symbol
        "\u03f1": "\u03c1",  # rho symbol
        "\u03c2": "\u03c3",  # final sigma
        "\u03d5": "\u03c6",  # phi symbol
        "\u1e9b": "\u1e61",  # long s with dot
        "\ufb06": "\ufb05",  # st ligatures
    }
)


def fold(text: str) -> str:
    """`text` with every character replaced by one that stands for all those
    `re.IGNORECASE` matches it with: one character for one."""
    return text.translate(_BEFORE_LOWER).lower().translate(_AFTER_LOWER)


class MentionIndex:
    """The members whose display name or localpart a body may contain."""

    def __init__(self, members: Iterable[tuple[str, str | None]]) -> None:
        # Key length -> key -> the members it stands for.
        self._keys: dict[int, dict[str, set[str]]] = {}
        for user_id, display_name in members:
            localpart = user_id[1:].split(":", 1)[0]
            # A localpart is a glob in `.m.rule.contains_user_name`: one with
            # wildcards has no literal key, so it may match anything.
            wildcard = "*" in localpart or "?" in localpart
            for name in (display_name, None if wildcard else localpart):
                if name:
                    key = fold(name)[:_KEY_LENGTH]
                    self._keys.setdefault(len(key), {}).setdefault(key, set()).add(user_id)
            if wildcard:
                self._keys.setdefault(0, {}).setdefault("", set()).add(user_id)

    def candidates(self, body: str) -> set[str]:
        """The members whose name or localpart may occur in `body` (a superset)."""
        folded = fold(body)
        found: set[str] = set()
        for length, keys in self._keys.items():
            if length == 0:
                found.update(keys[""])
                continue
            if len(keys) <= _FEW_KEYS < len(folded):
                # A few keys and a longer body: search for each.
                hits: Iterable[str] = [k for k in keys if k in folded]
            else:
                hits = {folded[i : i + length] for i in range(len(folded) - length + 1)}
                hits = hits.intersection(keys)
            for key in hits:
                found.update(keys[key])
        return found
