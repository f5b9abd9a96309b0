"""What a scorable text is: one rule for every protocol, stated once in code and once as a regex.

A text must contain a character ``str.strip`` keeps (``is_blank``) and nothing the model cannot
read faithfully (``unscorable_reason``: a NUL, a lone UTF-16 surrogate). ``TEXT_PATTERN`` says
both as a regex that means the same in Python's ``re`` and in JSON Schema's ECMA dialect, so an
OpenAPI schema built from it (``app.protocols``) states exactly what the service accepts: a
client generated from it, or a schema-driven fuzzer, never sends a text it believes valid and
gets 422. Limits that depend on settings (characters per text) belong to the scoring core.
"""

from __future__ import annotations

import re
import sys

BLANK_MESSAGE = "text must not be empty or whitespace only"


def is_blank(text: str) -> bool:
    """Empty or whitespace only, by ``str.strip``: the one rule every route applies."""
    return not text.strip()


# JSON may spell a lone UTF-16 surrogate ("\ud800"); Python decodes it into a str that has no
# UTF-8 form, so TensorFlow cannot take it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unscorable_reason(text: str) -> str | None:
    """Why the model cannot score ``text`` faithfully, or None (blank texts aside).

    A lone surrogate used to reach TensorFlow, which refused it, and the whole model call
    failed with it (503 for every request that shared the batch). A NUL: the graphs of versions
    3 on lowercase with ``tf.strings.lower(encoding="utf-8")``, which ends the text there, so
    "good\\0 awful" scored as "good". ``TEXT_PATTERN`` excludes NUL too.
    """
    if "\x00" in text:
        return "A text contains a NUL character (U+0000); the model would not read past it."
    if not text.isascii() and _LONE_SURROGATE.search(text):
        return (
            "A text contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not a "
            "character; send UTF-8 text."
        )
    return None


def _text_pattern() -> str:
    """A regex for an acceptable text: no NUL, and a character ``str.strip`` keeps somewhere.

    Code points are explicit \\u escapes and the pattern is anchored, so Python's ``re`` and
    JSON Schema's ECMA dialect accept exactly the same strings (a bare \\S does not: Python
    counts U+001C-U+001F as whitespace, ECMA does not).
    """
    blank = [code for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    kept = "[^\\u0000" + "".join(f"\\u{code:04x}" for code in blank) + "]"
    return f"^[^\\u0000]*{kept}[^\\u0000]*$"


TEXT_PATTERN = _text_pattern()
