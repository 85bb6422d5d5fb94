"""Questions for the single-turn tool-choice task: exact arithmetic (``python_coder``) or a fact
about a person, place or event (``wikipedia_search``), as ``records`` rows with a gold tool.

Training and held-out questions share no template, no number and no name: the held-out score
measures whether the planner learnt *which kind of question needs which tool*, not the strings.

    python -m agentflow_rl.flow_grpo.tasks.tool_choice_questions OUT_DIR   # writes train.jsonl and eval.jsonl

``data/tool_choice_train.jsonl`` and ``data/tool_choice_eval.jsonl`` are its output with the defaults
(a test keeps them so), and ``benchmarks/tool_choice_race.py`` writes them afresh the same way.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CODER, LOOKUP = "python_coder", "wikipedia_search"

ARITHMETIC = {
    "train": [
        "What is {a} times {b}?",
        "Compute {a} plus {b} minus {c}.",
        "How much is {a} divided by {b}, to three decimals?",
        "What is {a} squared?",
        "Multiply {a} by {b} and add {c}.",
        "What is {p}% of {a}?",
    ],
    "eval": [
        "Calculate the product of {a} and {b}.",
        "If I have {a} apples and buy {b} boxes of {c}, how many apples do I have?",
        "What remains when {a} is divided by {b}?",
        "Raise {a} to the third power.",
        "What is the sum of {a}, {b} and {c}?",
    ],
}
FACTS = {
    "train": [
        "Where was {person} born?",
        "What is {person} best known for?",
        "In which country is {place}?",
        "When did the {event} take place?",
        "Who led the {event}?",
    ],
    "eval": [
        "Which city did {person} die in?",
        "What language is mostly spoken in {place}?",
        "What was the outcome of the {event}?",
        "Tell me about the early life of {person}.",
    ],
}
NAMES = {
    "train": {
        "person": [
            "Ada Lovelace",
            "Nikola Tesla",
            "Frida Kahlo",
            "Leo Tolstoy",
            "Rosalind Franklin",
            "Simon Bolivar",
            "Mansa Musa",
            "Emmy Noether",
            "Miyamoto Musashi",
            "Florence Nightingale",
            "Ibn Battuta",
            "Clara Schumann",
        ],
        "place": [
            "Lake Titicaca",
            "Kyoto",
            "the Atacama Desert",
            "Tasmania",
            "Timbuktu",
            "Lake Baikal",
            "Cusco",
            "the Faroe Islands",
            "Zanzibar",
            "Samarkand",
        ],
        "event": [
            "Battle of Hastings",
            "Meiji Restoration",
            "French Revolution",
            "Apollo 11 mission",
            "Glorious Revolution",
            "Battle of Adwa",
            "Hundred Years' War",
            "Berlin Airlift",
        ],
    },
    "eval": {
        "person": [
            "Marie Curie",
            "Alan Turing",
            "Hypatia",
            "Wangari Maathai",
            "Johann Sebastian Bach",
            "Toussaint Louverture",
            "Murasaki Shikibu",
            "Srinivasa Ramanujan",
            "Hildegard of Bingen",
            "Nelson Mandela",
            "Galileo Galilei",
            "Harriet Tubman",
        ],
        "place": [
            "Reykjavik",
            "the Okavango Delta",
            "Patagonia",
            "Ulaanbaatar",
            "Madagascar",
            "Lake Victoria",
            "Petra",
            "the Gobi Desert",
            "Kathmandu",
            "Sicily",
            "Tierra del Fuego",
            "Bhutan",
        ],
        "event": [
            "Congress of Vienna",
            "Battle of Lepanto",
            "Boston Tea Party",
            "Treaty of Westphalia",
            "Taiping Rebellion",
            "Battle of Salamis",
            "Velvet Revolution",
            "Siege of Constantinople",
            "Cuban Missile Crisis",
            "Battle of Tours",
            "Partition of India",
            "Dust Bowl",
        ],
    },
}
#: Numbers drawn for each split come from disjoint ranges.
NUMBERS = {"train": (11, 499), "eval": (503, 997)}


def questions(split: str, count: int, seed: int = 0) -> list[dict[str, str]]:
    """``count`` rows of ``split`` ("train" or "eval"), half arithmetic and half facts, shuffled."""
    rng = random.Random(f"{seed}-{split}")
    low, high = NUMBERS[split]
    facts = sorted({t.format(**names) for t in FACTS[split] for names in _name_choices(NAMES[split])})
    rng.shuffle(facts)
    rows = []
    for i in range(count):
        if i % 2 == 0:
            template = rng.choice(ARITHMETIC[split])
            numbers = {k: str(rng.randint(low, high)) for k in "abc"}
            text = template.format(**numbers, p=rng.choice([5, 15, 35, 65] if split == "train" else [12, 45, 80]))
            rows.append({"question": text, "tool": CODER})
        else:  # every distinct fact question once before any repeats
            rows.append({"question": facts[(i // 2) % len(facts)], "tool": LOOKUP})
    rng.shuffle(rows)
    return [{"id": f"{split}-{i}", **row} for i, row in enumerate(rows)]


def _name_choices(names: dict[str, list[str]]) -> list[dict[str, str]]:
    """One filling per name of each kind (a template uses one kind), the others at their first name."""
    first = {kind: options[0] for kind, options in names.items()}
    return [{**first, kind: name} for kind, options in names.items() for name in options]


def write(folder: str | Path, train: int = 400, held_out: int = 100, seed: int = 0) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.jsonl", folder / "eval.jsonl"
    for path, (split, count) in zip(paths, (("train", train), ("eval", held_out)), strict=True):
        path.write_text("".join(json.dumps(row) + "\n" for row in questions(split, count, seed)), encoding="utf-8")
    return paths


if __name__ == "__main__":
    import sys

    print(*write(sys.argv[1] if len(sys.argv) > 1 else "."))
