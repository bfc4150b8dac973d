"""How often a resumed stream reads as one answer: the stitcher
(integrations/llm/continuation.py) against the ways a model continues a cut answer.

No model runs on this machine, so the continuations are written from how models are
seen to behave when given a partial answer:
- prefill (Anthropic): the exact rest, starting with the space the prefill lost;
- told to go on, it continues exactly;
- it restates the last few words, then goes on;
- it rewrites the word the break cut in two, then goes on;
- it starts again from the top.

Each is tried at every cut point of a corpus (the README's prose), at a word's middle,
after a space and at a sentence's end. A seam passes when the caller reads exactly the
uncut text. What real models do more or less often is not measured here.

    ../.venv/bin/python bench_resume.py [cuts per paragraph]
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integrations.llm.continuation import seam  # noqa: E402

CUTS = int(sys.argv[1]) if len(sys.argv) > 1 else 20


def corpus() -> list[str]:
    text = (ROOT / "README.md").read_text()
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return [p for p in paragraphs if len(p) > 200 and not p.startswith(("|", "```", "#", "-"))]


def behaviours(answer: str, cut: int) -> dict[str, str]:
    partial, rest = answer[:cut], answer[cut:]
    words_before = partial.rstrip().rsplit(" ", 3)
    restated = (" ".join(words_before[1:]) if len(words_before) > 1 else partial).lstrip()
    start = partial.rstrip().rfind(" ") + 1
    return {
        "prefill, exact rest": rest if not partial.endswith(" ") else " " + rest.lstrip(),
        "told to go on, exact": rest,
        "restates the last words": restated + (" " if partial.endswith(" ") else "") + rest,
        "rewrites the cut word": answer[start:] if partial[-1:].isalnum() else rest,
        "starts again": answer,
    }


def main() -> dict:
    rng = random.Random(7)
    scores: dict[str, list[int]] = {}
    for answer in corpus():
        for _ in range(CUTS):
            cut = rng.randrange(40, len(answer) - 20)
            for name, written in behaviours(answer, cut).items():
                ok = seam(answer[:cut], written, prefilled=name.startswith("prefill")) == answer
                scores.setdefault(name, []).append(ok)
    width = max(map(len, scores))
    total = [x for v in scores.values() for x in v]
    print(f"{'continuation':<{width}}  seams  read as one")
    for name, results in scores.items():
        print(f"{name:<{width}}  {len(results):>5}  {100 * sum(results) / len(results):6.1f} %")
    print(f"{'all':<{width}}  {len(total):>5}  {100 * sum(total) / len(total):6.1f} %")
    return {k: sum(v) / len(v) for k, v in scores.items()}


if __name__ == "__main__":
    main()
