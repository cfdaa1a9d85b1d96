"""The grammar of strategy names: a weighting with an optional flooding suffix.

    X            no flooding
    X-flood      batch flooding, |L - b| + b on the weighted total (Ishida et al., 2020)
    X-iflood     example flooding: each L_main example floods alone (iFlood, Xie et al., 2022)
    X-adaflood   adaptive example flooding: each L_main example floods at its own level, from
                 auxiliary models that did not train on it (AdaFlood, Bae et al., 2024)
    flood      = plain-flood,  iflood = plain-iflood,  adaflood = plain-adaflood

Pure string work: nothing here needs the weighting to be registered.
"""

from __future__ import annotations

FLOOD_SUFFIX = {"batch": "-flood", "example": "-iflood", "adaflood": "-adaflood"}
"""Flooding kind -> the suffix that asks for it."""
PER_EXAMPLE = ("example", "adaflood")
"""The flooding kinds that flood every L_main example alone, before the weighting."""
FLOOD_TARGETS = ("total", "main", "aux")
"""What batch flooding floods (the setting `flood_target`): the weighted total, L_main alone
or L_aux alone (strategies/objective.py, `flood_one`)."""


def flood_target_error(target: str, flooding: str) -> str:
    """The one-line error for a `flood_target` other than total with a per-example flooding
    (PER_EXAMPLE): they flood L_main's examples by definition."""
    return (f"flood_target = {target} applies to batch flooding (X-flood) only; "
            f"X{FLOOD_SUFFIX[flooding]} floods L_main's examples by definition: run it with "
            "flood_target = total")


def split_name(name: str) -> tuple[str, str]:
    """`reweight-flood` -> ("reweight", "batch"); `iflood` -> ("plain", "example");
    `dwa-adaflood` -> ("dwa", "adaflood"); `dwa` -> ("dwa", "none")."""
    for flooding, suffix in FLOOD_SUFFIX.items():
        if name == suffix[1:]:
            return "plain", flooding
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
