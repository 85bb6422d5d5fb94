"""A synthetic multi-turn tool-use environment where only the Planner's choices decide success.

Questions name an operation and one or two operands; an operand is a number (``7``) or a key
(``k3``) whose number must first be fetched with the ``lookup`` tool, one key per call::

    twice of 7      -> double                      (1 turn)
    squared of k3   -> lookup, square              (2 turns)
    k3 plus k5      -> lookup, lookup, add         (3 turns, no slack)

Calling an arithmetic tool before its keys are looked up is a tool error (a wasted turn); a wrong
operation gives a wrong answer. The Executor, Verifier and Generator are deterministic rules,
registered through the public hooks like any plugin: the Executor fills arguments from the
question and earlier lookups, the Verifier stops after the first successful arithmetic call, the
Generator answers with that call's output. So a trajectory succeeds exactly when the Planner
looks up what is needed and then picks the right operation, within the turn limit.

Training a model Verifier too (``verifier = "synthetic_chat"``) wants ``generator =
"synthetic_stopped"``: there a trajectory answers only if its Verifier said STOP, so stopping at
the right turn is part of success (see ``StoppedGenerator``).

This is a test bed for the trainer, not a benchmark: the rules are simple on purpose so that a
tiny random policy can learn them on a CPU, and so that a learning curve means the trainer works.

``world`` holds the numbers and the questions, ``tools`` the lookup and arithmetic tools, ``rules``
the fixed Executor, Verifier and Generator; ``compact`` (the tiny policy's words) and ``chat``
(English, for an instruction-tuned model) the Planners and Verifiers a model drives; ``plugin``
registers them all through the public hooks.
"""
