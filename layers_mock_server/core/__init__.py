"""The simulation: plain Python, no HTTP. Nothing under core/ imports Starlette."""
