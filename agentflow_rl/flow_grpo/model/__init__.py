"""The model being trained: the base it starts from, the trained modules on it, and where rollouts generate.

``policy`` loads the base from ``[policy] source`` (``tiny_policy`` builds the CPU-sized one);
``trained`` holds the trained modules, one LoRA adapter each (``lora``) or one model each, and
their KL reference; ``sharded`` keeps an unsharded twin for generation under FSDP; ``backends``
are the rollout backends that make the ``policy:<module>`` engines.
"""
