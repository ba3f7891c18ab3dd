"""Write data/reviews/{train,dev}.csv: short product and film reviews labelled positive or negative.

The offline text quickstart (recipes/quickstart_text.yaml) trains on this set. It is made here, from
templates and word lists written for this project, with a fixed seed, so running this script again
writes the same files: python scripts/make_reviews.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "data" / "reviews"

THINGS = ["film", "movie", "book", "phone", "blender", "laptop", "hotel", "restaurant", "album", "jacket",
          "game", "camera", "headset", "sofa", "bike"]
GOOD = ["wonderful", "excellent", "delightful", "reliable", "charming", "superb", "sturdy", "brilliant",
        "comfortable", "gripping", "lovely", "great"]
BAD = ["awful", "disappointing", "flimsy", "boring", "broken", "dreadful", "clumsy", "overpriced",
       "noisy", "tedious", "useless", "poor"]
GOOD_CLAUSES = ["I would buy it again", "it exceeded my expectations", "worth every penny",
                "my whole family loves it", "I keep recommending it to friends", "it works perfectly",
                "the staff were kind and helpful", "it made my week"]
BAD_CLAUSES = ["I want my money back", "it stopped working after a week", "a complete waste of time",
               "I returned it the next day", "nobody should have to sit through that", "it fell apart quickly",
               "the staff ignored us", "I regret buying it"]
TEMPLATES = ["The {thing} was {adj}.", "What a {adj} {thing}; {clause}.", "{Clause}. Truly a {adj} {thing}.",
             "This {thing} is {adj} and {clause}.", "Honestly, {clause}: the {thing} is {adj}.",
             "A {adj} {thing}. {Clause}."]


def review(rng: random.Random, positive: bool) -> str:
    adj = rng.choice(GOOD if positive else BAD)
    clause = rng.choice(GOOD_CLAUSES if positive else BAD_CLAUSES)
    text = rng.choice(TEMPLATES).format(thing=rng.choice(THINGS), adj=adj, clause=clause,
                                        Clause=clause[0].upper() + clause[1:])
    return text


def main() -> None:
    rng = random.Random(7)
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    while len(rows) < 320:
        positive = len(rows) % 2 == 0
        text = review(rng, positive)
        if text not in seen:
            seen.add(text)
            rows.append((text, "positive" if positive else "negative"))
    rng.shuffle(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", rows[:240]), ("dev", rows[240:])):
        with (OUT / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([("text", "label"), *part])


if __name__ == "__main__":
    main()
