"""An MkDocs hook: formulas written in LaTeX between `$...$` (inline) or `$$...$$` (a block)
become MathML when the site is built (latex2mathml), which browsers render natively, so
the site shows its formulas offline, with no script. Code spans and fenced code blocks are
left alone; a `$` that is not a formula is written `\\$`."""

from __future__ import annotations

import re

from latex2mathml.converter import convert

FENCE = re.compile(r"(^```.*?^```$|`[^`\n]+`)", re.M | re.S)
BLOCK = re.compile(r"\$\$(.+?)\$\$", re.S)
INLINE = re.compile(r"(?<![\\$])\$(?!\s)([^$\n]+?)(?<!\s)\$(?!\$)")


def to_mathml(markdown: str) -> str:
    """`markdown` with every formula outside code as MathML inside a `<span>`: class
    "math display" for a block (display="block"), "math" inline. A span, not a div, keeps a
    formula inside a list item's text, and Markdown would take a line that starts with a
    bare `<math>` for a block of HTML."""
    parts = FENCE.split(markdown)
    for i in range(0, len(parts), 2):  # the even parts are outside code
        text = BLOCK.sub(lambda m: '<span class="math display">'
                         + convert(m.group(1).strip(), display="block") + "</span>", parts[i])
        text = INLINE.sub(lambda m: '<span class="math">' + convert(m.group(1)) + "</span>",
                          text)
        parts[i] = text.replace("\\$", "$")
    return "".join(parts)


def on_page_markdown(markdown: str, **_: object) -> str:
    return to_mathml(markdown)
