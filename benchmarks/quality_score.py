"""Recall and precision per kind of a tool's findings against the planted corpus's truth
(benchmarks/quality_corpus.py), for benchmarks/quality.py.

Findings, keyed as the corpus (`train/<hex>.jpg`): each issue type's flagged keys
(cleanvision's names: dark, light, blurry, low_information, grayscale, odd_aspect_ratio,
odd_size), `exact_duplicates` and `near_duplicates` as lists of groups of keys, and
optionally `leaks` as pairs of keys (without it, every pair of a group whose splits
differ is a leak, as cleanvision's sets give no leaks of their own).

- Issue types: recall = planted images of the kind that are flagged / planted;
  precision = flagged images planted with that kind / flagged, so a flag on any other
  image counts as wrong, another planted kind included ("fp_by_truth" says which).
- Duplicates, per pair: every pair inside a found group (exact or near) is a found pair;
  recall per planted copy kind (and over photographs alone); precision over the found
  pairs, leaving out pairs of two planted blank images (uniform or tiny: blank images are
  alike, and which of them a tool groups says nothing), counted apart.
- Leakage: the planted pairs across splits found as leaks (recall, and per copy kind),
  and the found leaks that are planted pairs (precision, blank pairs left out).
"""

from __future__ import annotations

from collections import Counter
from itertools import combinations

ISSUE_TYPES = {  # the finding's name -> the planted kind it should find
    "dark": "dark",
    "light": "light",
    "blurry": "blurry",
    "low_information": "uniform",
    "grayscale": "grayscale",
    "odd_aspect_ratio": "odd_aspect",
    "odd_size": "tiny",
}
BLANK = {"uniform", "tiny"}
Pair = tuple[str, str]


def ratio(hit: int, total: int) -> float | None:
    return hit / total if total else None


def truth_class(image: dict) -> str:
    """What an image is, by the truth: a planted kind, or a clean photo or scene."""
    if image["kind"] == "base":
        return "clean photo" if image["source"] != "synthetic" else "clean synthetic"
    return image["kind"]


def score_issues(truth: dict, found: dict) -> dict[str, dict]:
    images = truth["images"]
    out = {}
    for name, kind in ISSUE_TYPES.items():
        planted = set(truth["issues"][kind])
        flagged = set(found.get(name, []))
        wrong = Counter(truth_class(images[k]) for k in flagged - planted)
        row = {
            "planted": len(planted),
            "flagged": len(flagged),
            "recall": ratio(len(planted & flagged), len(planted)),
            "precision": ratio(len(planted & flagged), len(flagged)),
            "fp_by_truth": dict(wrong.most_common()),
        }
        if kind == "grayscale":  # saved as mode L, or as RGB with R = G = B
            for mode in ("L", "RGB"):
                saved = {k for k in planted if images[k]["params"]["mode"] == mode}
                row[f"recall_{mode}"] = ratio(len(saved & flagged), len(saved))
        out[name] = row
    return out


def group_pairs(found: dict) -> set[Pair]:
    pairs = set()
    for kind in ("exact_duplicates", "near_duplicates"):
        for group in found.get(kind, []):
            pairs.update(combinations(sorted(group), 2))
    return pairs


def _recall_by(pairs: dict[Pair, tuple[str, bool]], hits: set[Pair], keep) -> dict[str, float]:
    """Recall per copy kind over the planted pairs that `keep` keeps."""
    counts: dict[str, list[int]] = {}
    for pair, (kind, leak) in pairs.items():
        if keep(pair, leak):
            c = counts.setdefault(kind, [0, 0])
            c[0] += pair in hits
            c[1] += 1
    return {kind: hit / total for kind, (hit, total) in counts.items()}


def score_duplicates(truth: dict, found: dict) -> dict:
    images = truth["images"]
    planted = {(min(a, b), max(a, b)): (kind, leak) for a, b, kind, leak in truth["pairs"]}
    pairs = group_pairs(found)

    def blank(pair: Pair) -> bool:
        return images[pair[0]]["kind"] in BLANK and images[pair[1]]["kind"] in BLANK

    if "leaks" in found:
        leaks = {(min(a, b), max(a, b)) for a, b in found["leaks"]}
    else:
        leaks = {p for p in pairs if images[p[0]]["split"] != images[p[1]]["split"]}
    false_pairs = [p for p in pairs if p not in planted and not blank(p)]
    true_pairs = len(pairs & planted.keys())
    leaks_counted = [p for p in leaks if not blank(p)]
    crossing = [p for p, (_, leak) in planted.items() if leak]
    return {
        "recall_per_kind": _recall_by(planted, pairs, lambda p, leak: True),
        "recall_per_kind_photo": _recall_by(
            planted, pairs, lambda p, leak: images[p[0]]["source"] != "synthetic"
        ),
        "recall": ratio(true_pairs, len(planted)),
        "precision": ratio(true_pairs, true_pairs + len(false_pairs)),
        "found_pairs": len(pairs),
        "false_pairs": len(false_pairs),
        "false_pairs_by_truth": dict(
            Counter(
                " + ".join(sorted((truth_class(images[a]), truth_class(images[b]))))
                for a, b in false_pairs
            ).most_common(6)
        ),
        "blank_pairs": sum(1 for p in pairs if blank(p)),
        "leak_recall": ratio(len(leaks & set(crossing)), len(crossing)),
        "leak_recall_per_kind": _recall_by(planted, leaks, lambda p, leak: leak),
        "leak_precision": ratio(len(set(leaks_counted) & planted.keys()), len(leaks_counted)),
        "leaks_found": len(leaks),
        "groups": [len(found.get(k, [])) for k in ("exact_duplicates", "near_duplicates")],
    }


def score(truth: dict, found: dict) -> dict:
    return {"issues": score_issues(truth, found), "dups": score_duplicates(truth, found)}
