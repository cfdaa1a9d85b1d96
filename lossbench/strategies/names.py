"""The grammar of strategy names: a weighting with an optional flooding suffix.

    X          no flooding
    X-flood    batch flooding, |L - b| + b on the weighted total (Ishida et al., 2020)
    X-iflood   example flooding: each L_main example floods alone (iFlood, Xie et al., 2022)
    flood      = plain-flood,  iflood = plain-iflood

Pure string work: nothing here needs the weighting to be registered.
"""

from __future__ import annotations

FLOOD_SUFFIX = {"batch": "-flood", "example": "-iflood"}
"""Flooding kind -> the suffix that asks for it."""


def split_name(name: str) -> tuple[str, str]:
    """`reweight-flood` -> ("reweight", "batch"); `iflood` -> ("plain", "example"); `dwa` ->
    ("dwa", "none")."""
    if name in ("flood", "iflood"):
        return "plain", "batch" if name == "flood" else "example"
    for flooding, suffix in FLOOD_SUFFIX.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], flooding
    return name, "none"


def join_name(weighting: str, flooding: str) -> str:
    """The canonical name: the inverse of `split_name` (plain + batch = `flood`)."""
    if flooding == "none":
        return weighting
    if weighting == "plain":
        return FLOOD_SUFFIX[flooding][1:]
    return weighting + FLOOD_SUFFIX[flooding]


def no_flood_baseline(name: str) -> str:
    """What a strategy is paired with to see what flooding did: its weighting without
    flooding (`reweight` for `reweight-flood`, `plain` for `flood`); `plain` for a weighting."""
    weighting, flooding = split_name(name)
    return weighting if flooding != "none" else "plain"
