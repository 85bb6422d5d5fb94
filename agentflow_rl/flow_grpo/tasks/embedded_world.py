"""A made-up world of towns, people and companies, and the encyclopedia passages that describe it.

The embedded default's fact questions must be answerable only by looking them up: SmolLM2 cannot know
a town that does not exist, so a right answer about one means ``local_search`` found its passage and
the generator read it. Every name is built from syllables no real place or firm is spelt with, and
every entity belongs to one split: the held-out questions ask about entities, and hold numbers, that
training never saw (founding years, populations, birth years and staff counts come from disjoint
ranges per split).

>>> world = World.make(seed=0)
>>> town = world.towns["train"][0]
>>> town.name in world.passages()[0]["contents"]
True
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import attrs

SPLITS = ("train", "eval")

_TOWN_HEADS = ("Vask", "Quen", "Drav", "Ostr", "Brel", "Tamb", "Kiv", "Lumb", "Zor", "Nesk", "Harl", "Prenn", "Yssel")
_TOWN_TAILS = ("mire", "holm", "ovar", "eth", "quay", "ara", "wend", "orra")
_REGION_NAMES = ("Orlesk", "Tavari", "Mennow", "Quiller", "Sarrow", "Dunvek", "Ibbet", "Corvane")
_REGION_KINDS = ("Vale", "Coast", "Uplands", "Marches")
_RIVERS = ("Ilse", "Varro", "Omm", "Tessa", "Kell", "Aube", "Wyn", "Drune", "Pasca", "Loor", "Sevi", "Marl")
_FIRST_NAMES = (
    "Tamsin", "Oren", "Ilsa", "Bertil", "Maren", "Joss", "Nadia", "Corin", "Ysolde", "Pim", "Halvard",
    "Sefa", "Aurel", "Brisa", "Dov", "Emrys", "Fenna", "Gideon", "Hesper", "Ivo", "Lotte", "Mabon",
)  # fmt: skip
_SURNAME_HEADS = ("Van", "Ru", "Mos", "Kes", "Tor", "Bel", "Ald", "Ost", "Dre", "Fal", "Gri", "Hul")
_SURNAME_TAILS = ("treck", "elo", "kell", "arin", "wold", "mund", "ovic", "sby", "ante", "isk")
_PROFESSIONS = (
    "glassblower", "cartographer", "beekeeper", "clockmaker", "shipwright", "botanist",
    "violinist", "stonemason", "astronomer", "weaver", "potter", "bookbinder",
)  # fmt: skip
_FIRM_NOUNS = ("Looms", "Ironworks", "Ciders", "Optics", "Mills", "Ceramics", "Lanterns", "Ropeworks")
_PRODUCTS = (
    "woollen blankets", "copper kettles", "apple cider", "reading lamps", "fishing nets",
    "pocket watches", "clay tiles", "canvas sails", "garden tools", "paper kites",
)  # fmt: skip

#: Numbers per split, from disjoint ranges: a held-out answer is never a number training rewarded.
RANGES = {
    "train": {
        "founded": (1500, 1749),
        "population": (2_000, 49_999),
        "born": (1850, 1919),
        "firm_founded": (1800, 1899),
        "staff": (20, 499),
    },
    "eval": {
        "founded": (1750, 1899),
        "population": (50_000, 99_999),
        "born": (1920, 1979),
        "firm_founded": (1900, 1990),
        "staff": (500, 1998),
    },
}


@attrs.frozen
class Town:
    name: str
    region: str
    river: str
    founded: int
    population: int
    mayor: str


@attrs.frozen
class Person:
    name: str
    profession: str
    birthplace: str
    born: int


@attrs.frozen
class Company:
    name: str
    product: str
    base: str
    founder: str
    founded: int
    #: Even, so that half of it is a whole number.
    staff: int


@attrs.frozen
class World:
    towns: dict[str, list[Town]]
    people: dict[str, list[Person]]
    companies: dict[str, list[Company]]

    @classmethod
    def make(cls, seed: int = 0, towns: int = 24, people: int = 24, companies: int = 20) -> World:
        """``towns``, ``people`` and ``companies`` per split, every name used once."""
        rng = random.Random(f"embedded-world-{seed}")
        town_names = _names(rng, _TOWN_HEADS, _TOWN_TAILS, "", 2 * towns)
        person_names = _names(rng, _FIRST_NAMES, _surnames(), " ", 2 * (people + towns))
        firm_names = _names(rng, _surnames(), _FIRM_NOUNS, " ", 2 * companies)
        regions = [f"{name} {kind}" for name, kind in itertools.product(_REGION_NAMES, _REGION_KINDS)]
        world: dict[str, dict[str, list]] = {"towns": {}, "people": {}, "companies": {}}
        for i, split in enumerate(SPLITS):
            numbers = RANGES[split]
            mayors = person_names[2 * people + i * towns :][:towns]
            made_towns = [
                Town(name, rng.choice(regions), rng.choice(_RIVERS), _draw(rng, numbers["founded"]),
                     _draw(rng, numbers["population"]), mayor)
                for name, mayor in zip(town_names[i * towns :][:towns], mayors, strict=True)
            ]  # fmt: skip
            places = [t.name for t in made_towns]
            made_people = [
                Person(name, rng.choice(_PROFESSIONS), rng.choice(places), _draw(rng, numbers["born"]))
                for name in person_names[i * people :][:people]
            ]
            made_companies = [
                Company(name, rng.choice(_PRODUCTS), rng.choice(places), rng.choice(made_people).name,
                        _draw(rng, numbers["firm_founded"]), 2 * (_draw(rng, numbers["staff"]) // 2))
                for name in firm_names[i * companies :][:companies]
            ]  # fmt: skip
            world["towns"][split], world["people"][split], world["companies"][split] = (
                made_towns,
                made_people,
                made_companies,
            )
        return cls(world["towns"], world["people"], world["companies"])

    def passages(self) -> list[dict[str, str]]:
        """The corpus, one passage per entity, in ``local_search``'s format (title in quotes, then text)."""
        entities: list[Town | Person | Company] = []
        for split in SPLITS:
            entities += [*self.towns[split], *self.people[split], *self.companies[split]]
        return [{"id": str(n), "contents": f'"{e.name}"\n{describe(e)}'} for n, e in enumerate(entities, 1)]


def describe(entity: Town | Person | Company) -> str:
    """The passage about one entity: every attribute a question may ask, in plain sentences."""
    if isinstance(entity, Town):
        return (
            f"{entity.name} is a town in the {entity.region} region, on the river {entity.river}. It was founded "
            f"in {entity.founded} and has a population of {entity.population:,}. Its mayor is {entity.mayor}."
        )
    if isinstance(entity, Person):
        return f"{entity.name} is a {entity.profession}, born in {entity.birthplace} in {entity.born}."
    return (
        f"{entity.name} is a company that makes {entity.product}. It was founded in {entity.founded} by "
        f"{entity.founder}, is based in {entity.base} and has {entity.staff} employees."
    )


def _surnames() -> list[str]:
    return [head + tail for head, tail in itertools.product(_SURNAME_HEADS, _SURNAME_TAILS)]


def _names(rng: random.Random, heads: Sequence[str], tails: Sequence[str], joint: str, count: int) -> list[str]:
    """``count`` distinct names ``head + joint + tail`` in a seeded order."""
    names = [f"{head}{joint}{tail}" for head, tail in itertools.product(heads, tails)]
    if len(names) < count:
        raise ValueError(f"only {len(names)} names can be made, {count} were asked for")
    rng.shuffle(names)
    return names[:count]


def _draw(rng: random.Random, bounds: tuple[int, int]) -> int:
    return rng.randint(*bounds)
