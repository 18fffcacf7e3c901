"""Serve the mock or the bare endpoint on a chosen engine, for bench/run.py's side-by-side rows.

    python bench/on_engine.py mock uvicorn --port 0   # "mock listening on http://127.0.0.1:PORT"
    python bench/on_engine.py bare granian --port 0

`mock` is the app `layers-mock serve` runs (default Settings, FrozenHeap around build_app);
`bare` is bench/bare.py. `granian` serves it exactly as `serve` does
(layers_mock_server.serving, same limits); `uvicorn` as `serve` did before granian (default
loop and HTTP implementation, so uvloop and httptools; access log, lifespan and the server
header off). The socket is bound before the banner line in both cases.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def build(what: str) -> Any:
    if what == "bare":
        from bare import app

        return app
    from layers_mock_server.http.app import build_app
    from layers_mock_server.http.heap import FrozenHeap
    from layers_mock_server.settings import Settings, make_deps

    return FrozenHeap(build_app(make_deps(Settings())))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", choices=("mock", "bare"))
    parser.add_argument("engine", choices=("granian", "uvicorn"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    from layers_mock_server import serving

    app = build(args.app)
    sock = serving.bind(args.host, args.port)
    print(f"{args.app} listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    if args.engine == "granian":
        serving.serve(app, sock)
        return
    import uvicorn

    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", server_header=False
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
