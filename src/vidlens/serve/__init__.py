"""`vidlens serve`: an HTTP service over the tasks (FastAPI app, job store, worker processes).

The app (`app.py`) accepts uploads, checks them (size, `probe()`), and queues jobs; a pool of
worker processes (`pool.py`, `worker.py`) that loaded the models once at start-up runs them, each
under a timeout. Nothing here imports `engine` or `cli` (DESIGN.md section 2).
"""

from vidlens.serve.config import ServeConfig

__all__ = ["ServeConfig"]
