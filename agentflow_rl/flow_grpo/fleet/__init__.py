"""Rollouts on a fleet of vLLM OpenAI servers: what the ``vllm`` rollout backend
(:mod:`agentflow_rl.flow_grpo.model.backends.fleet`) is made of.

The pieces, each usable on its own:

* :mod:`~agentflow_rl.flow_grpo.fleet.launcher`: start N servers on this machine for a run, stopped
  with it however it ends (or give the URLs of servers started elsewhere);
* :mod:`~agentflow_rl.flow_grpo.fleet.publisher`: after a step, write each trained module's adapter
  once and load it in place on every server, checked; :mod:`~agentflow_rl.flow_grpo.fleet.weights`
  does the same with a one-module run's full weights;
* :mod:`~agentflow_rl.flow_grpo.fleet.client`: a module's completion, token ids in and out with
  vLLM's log-probabilities, from the least busy live server, tagged with the adapter version
  that produced it (:mod:`~agentflow_rl.flow_grpo.fleet.versions`).

The spreading and the dropping of dead servers is :class:`agentflow_core.engines.endpoints.EndpointPool`,
the same as an engine with several ``base_urls`` uses.
"""
