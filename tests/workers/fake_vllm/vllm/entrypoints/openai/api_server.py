"""A stand-in for vLLM's API server, for the launcher's tests (tests/test_fleet_launcher.py).

Started as ``python -m vllm.entrypoints.openai.api_server`` with this folder on ``PYTHONPATH``, it
does what matters to the launcher in a fraction of a second: takes the same ``--port``, forks a
child that lives as long as it does (vLLM's engine process), writes its argv, the runtime-LoRA
variable and both pids to ``$FAKE_VLLM_REPORT/<port>.json``, and answers ``GET /health``. ``FAKE_VLLM_MODE``
makes it misbehave: ``exit`` (dies at start, saying why) or ``silent`` (never answers /health).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def main() -> None:
    mode = os.environ.get("FAKE_VLLM_MODE", "")
    if mode == "exit":
        print("ValueError: the fake server was told to fail at start", flush=True)
        sys.exit(3)
    engine = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    port = int(sys.argv[sys.argv.index("--port") + 1])
    report = {
        "argv": sys.argv[1:],
        "runtime_lora": os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING"),
        "pids": [os.getpid(), engine.pid],
    }
    with open(os.path.join(os.environ["FAKE_VLLM_REPORT"], f"{port}.json"), "w") as out:
        json.dump(report, out)
    if mode == "silent":
        signal.pause()
    HTTPServer(("127.0.0.1", port), Health).serve_forever()


if __name__ == "__main__":
    main()
