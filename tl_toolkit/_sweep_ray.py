"""``tl sweep --backend ray``: the sweep's trials as Ray tasks, ``--parallel K`` at a time.

Why Ray tasks around an actor rather than Ray Tune: the study, its SQLite file,
the trial directories, ``--resume`` and the leaderboard stay exactly those of
the local backend. The study lives in one actor (:class:`StudyBook`), so one
process writes ``study.db`` and workers on other machines report their epochs
to it over Ray; each task runs one trial with ``sweep.resources`` (CPUs, GPUs)
reserved and ``OMP_NUM_THREADS`` set to its CPUs. A trial given several GPUs
(or ``processes``) runs under ``accelerate launch`` inside its task, on the
GPUs Ray gave the task. Without ``RAY_ADDRESS`` a
local Ray is started for the sweep and shut down after it; with it, trials go
to that cluster, and write their run directories to the trial paths under
``output_dir``, which must then be storage every node sees (NFS, a shared
volume).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ._errors import UserError
from ._sweep_config import SweepResources
from ._sweep_study import StudyBook
from ._sweep_trial import TrialOutcome, TrialSpec, run_launched_trial, run_trial

__all__ = ["ray_backend"]

# Passed on to the workers: offline switches and the like must hold there as here.
_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "TOKENIZERS_PARALLELISM",
        "PYTHONPATH")


def _trial_task(spec: TrialSpec, book: Any, processes: int, gpus: float) -> TrialOutcome:
    import ray

    report = lambda n, v, e: bool(ray.get(book.report.remote(n, v, e)))  # noqa: E731
    if processes > 1:  # the task's GPUs (CUDA_VISIBLE_DEVICES, set by Ray) go to accelerate's processes
        return run_launched_trial(spec, report, processes, gpus)
    return run_trial(spec, report)


class _RayPool:
    def __init__(self, task: Any, book: Any, capacity: int, started: bool, resources: SweepResources) -> None:
        self.capacity, self._task, self._book, self._started = capacity, task, book, started
        self._resources = resources
        self._pending: dict[Any, TrialSpec] = {}

    def submit(self, spec: TrialSpec) -> None:
        launched, gpus = self._resources.launched, self._resources.gpu
        self._pending[self._task.remote(spec, self._book, launched, gpus)] = spec

    def wait(self) -> TrialOutcome:
        import ray

        ready, _ = ray.wait(list(self._pending), num_returns=1)
        self._pending.pop(ready[0])
        try:
            return ray.get(ready[0])
        except ray.exceptions.RayTaskError as e:  # the worker's own exception, with its traceback
            raise e.as_instanceof_cause() from None

    def close(self) -> None:
        import ray

        for ref in self._pending:
            ray.cancel(ref, force=True)
        if self._started:
            ray.shutdown()


def ray_backend(args: tuple[Any, ...], parallel: int, resources: SweepResources,
                echo: Callable[[str], None]) -> tuple[Callable[..., Any], _RayPool]:
    """The study as a Ray actor and a pool running ``parallel`` trials as Ray tasks.

    Raises:
        UserError: ray is not installed, or the cluster at RAY_ADDRESS cannot be reached.
    """
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray: the ray package is not installed; pip install 'tl-toolkit[ray]' "
                        "(or pip install ray), or use --backend local") from None
    threads = str(max(1, int(resources.cpu)))
    env = {k: os.environ[k] for k in _ENV if k in os.environ} | {"OMP_NUM_THREADS": threads,
                                                                   "MKL_NUM_THREADS": threads}
    address = os.environ.get("RAY_ADDRESS")
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=address or None,
                # A local Ray gets room for K trials even on a machine with fewer cores.
                num_cpus=None if address else max(os.cpu_count() or 1, int(parallel * resources.cpu + 0.999)),
                include_dashboard=False, log_to_driver=False, configure_logging=False,
                runtime_env={"env_vars": env},
            )
        except ConnectionError as e:
            raise UserError(f"RAY_ADDRESS: cannot reach the Ray cluster at {address!r} ({e}); start it with "
                            f"`ray start --head` or unset RAY_ADDRESS for a local Ray") from None
    echo(f"sweep: Ray {'cluster at ' + address if address else 'started locally'}, {parallel} trials at once, "
         f"{resources.cpu:g} CPU / {resources.gpu:g} GPU each")
    book = ray.remote(num_cpus=0)(StudyBook).remote(*args)
    task = ray.remote(num_cpus=resources.cpu, num_gpus=resources.gpu, max_retries=0)(_trial_task)

    def call(method: str, *a: Any) -> Any:
        return ray.get(getattr(book, method).remote(*a))

    return call, _RayPool(task, book, parallel, started, resources)
