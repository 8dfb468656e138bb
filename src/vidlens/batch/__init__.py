"""Many videos at once: one job description (`tasks`, `items`), two engines (`local`: a process pool
on this machine; `ray_engine`: Ray Data actor pools), one resumable results table (`store`).

    store = ResultStore(out)
    todo, done = plan_batch("videos/", "shots", {}, out, store)
    rows = run_local(todo, "shots", resolve_options(get_task("shots"), {}), store, workers=2)
    store.write_table()

See docs/scale.md. Nothing here prints or exits: the CLI (`vidlens batch`) does.
"""

from vidlens.batch.items import BatchItem, plan_batch, run_item
from vidlens.batch.store import ResultStore
from vidlens.batch.tasks import TASKS, TaskSpec, get_task, resolve_options

__all__ = ["BatchItem", "ResultStore", "TASKS", "TaskSpec", "get_task", "plan_batch", "resolve_options", "run_item"]
