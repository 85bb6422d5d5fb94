"""Replies in the documented shapes of the search APIs, shared by the search-tool tests.

Google Custom Search JSON API: ``GET /customsearch/v1`` -> ``items`` of ``title``/``link``/``snippet``
plus ``searchInformation``. Serper: ``POST /search`` -> ``organic`` and, when Google shows them,
``answerBox`` and ``knowledgeGraph``. MediaWiki action API with ``formatversion=2``: ``list=search``
-> ``query.search``; ``prop=extracts&explaintext=1`` -> ``query.pages[].extract``.
"""

from __future__ import annotations

from tests.search_servers import Answer, Request, json_answer

GOOGLE_OK = {
    "kind": "customsearch#search",
    "queries": {"request": [{"searchTerms": "barn owl", "count": 2}]},
    "searchInformation": {"searchTime": 0.31, "totalResults": "1200000"},
    "items": [
        {
            "kind": "customsearch#result",
            "title": "Barn owl - Wikipedia",
            "link": "https://en.wikipedia.org/wiki/Barn_owl",
            "displayLink": "en.wikipedia.org",
            "snippet": "The barn owl is the most widely distributed species of owl.",
        },
        {
            "kind": "customsearch#result",
            "title": "Barn Owl | Audubon",
            "link": "https://www.audubon.org/field-guide/bird/barn-owl",
            "snippet": "Barn owls hunt voles by sound.",
        },
    ],
}

SERPER_OK = {
    "searchParameters": {"q": "barn owl", "type": "search", "num": 2, "engine": "google"},
    "answerBox": {"title": "Barn owl", "answer": "Tyto alba", "link": "https://en.wikipedia.org/wiki/Barn_owl"},
    "knowledgeGraph": {
        "title": "Barn owl",
        "type": "Bird",
        "description": "The barn owl is the most widely distributed species of owl in the world.",
        "attributes": {"Scientific name": "Tyto alba", "Lifespan": "4 years"},
    },
    "organic": [
        {
            "title": "Barn owl - Wikipedia",
            "link": "https://en.wikipedia.org/wiki/Barn_owl",
            "snippet": "The barn owl is the most widely distributed species of owl.",
            "position": 1,
        }
    ],
    "peopleAlsoAsk": [],
}

BARN_OWL_EXTRACT = """The barn owl (Tyto alba) is the most widely distributed species of owl in the world.

== Description ==
The barn owl is pale, with long wings and a short squarish tail.

== Breeding ==
Barn owls nest in tree hollows, church steeples and old barns, and lay four to seven eggs.

== Diet ==
The diet of the barn owl consists mainly of small mammals such as voles, shrews and mice."""


def wikipedia_handler(request: Request) -> Answer:
    """MediaWiki's action API: list=search, then prop=extracts one title at a time (formatversion=2)."""
    if request.query.get("list") == "search":
        hits = [{"ns": 0, "title": "Barn owl", "pageid": 1}, {"ns": 0, "title": "Owl", "pageid": 2}]
        return json_answer({"batchcomplete": True, "query": {"searchinfo": {"totalhits": 2}, "search": hits}})
    title = request.query["titles"]
    extract = BARN_OWL_EXTRACT if title == "Barn owl" else "Owls are birds of prey.\nMost owls hunt at night."
    return json_answer({"batchcomplete": True, "query": {"pages": [{"pageid": 1, "title": title, "extract": extract}]}})
