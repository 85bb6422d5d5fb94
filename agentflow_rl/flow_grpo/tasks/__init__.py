"""What a run trains on: questions with gold answers, a scorer, and the agent that solves them.

``setup`` turns ``[task]`` into a ``TaskSetup`` (questions, scorer, plugins, agent config);
``records`` reads question files (JSONL or parquet) and hands them out in a seeded, resumable order;
``data/`` holds the shipped question files. Two tasks come with the package: ``synthetic``, a
tool-use world small enough to train a tiny model on a CPU, and ``tool_choice``, modules that
train *which* tool a planner picks over any enabled tools (with ``tool_choice_questions``, the
generator of its shipped questions). ``choice`` holds what their model-driven modules share.
"""
