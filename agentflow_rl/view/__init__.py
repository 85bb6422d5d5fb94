"""``agentflow view``: evaluation runs, trajectories and training runs as a local page.

The server (``server``) answers ``/api/<path>`` from the readers (``eval_run``,
``trajectory_file``, ``training_run``), chosen per PATH by ``sources``; ``api`` maps paths to
data for the server and for ``export``. The page is plain JavaScript and CSS in ``static/``,
shipped in the package: no build step, no CDN, nothing fetched from elsewhere.
"""

from agentflow_rl.view.api import ViewData
from agentflow_rl.view.server import make_app
from agentflow_rl.view.sources import open_source

__all__ = ["ViewData", "make_app", "open_source"]
