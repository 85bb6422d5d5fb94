"""What a run trains on: questions with gold answers, a scorer, and the agent that solves them.

``setup`` turns ``[task]`` into a ``TaskSetup`` (questions, scorer, plugins, agent config);
``records`` reads question files (JSONL or parquet) and hands them out in a seeded, resumable order;
``data/`` holds the shipped question files. Two tasks come with the package: ``synthetic``, a
tool-use world small enough to train a tiny model on a CPU, and ``tool_choice``, modules that
train *which* tool a planner picks over any enabled tools (with ``tool_choice_questions``, the
generator of its shipped questions). ``choice`` holds what their model-driven modules share.
The embedded default's recipe adds ``embedded_questions`` (its arithmetic, fact and two-step
questions), ``embedded_world`` (the made-up world those facts come from) and ``decisions_only``
(the shipped planner with its analysis skipped, for cheap tool-choice rollouts).
"""
