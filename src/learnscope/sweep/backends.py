"""Running a sweep: members grouped by :func:`~learnscope.train.ensemble.ensemble_key`, each
group trained by :func:`run_group` (in this process, a local process pool, or Ray tasks).

A member is a run like any other: :func:`run_group` trains it through the run pipeline
(``learnscope.runner``), so it gets the divergence guard, probes, checkpoints in its run
directory, events and a summary, and writes its own rows to the store. Workers (processes, Ray
tasks) therefore open the store at the same runs root: on a Ray cluster of several machines
that root must be on a shared filesystem. ``--resume`` finds the newest sweep with the same
spec and trains only the members without a run that ended (``finished``, ``diverged`` or
``stopped``); a member whose run was cut short continues in that same run (from its last
checkpoint, or from step 0 when it has none), so a member is always one run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch

from learnscope.config import validate_config
from learnscope.errors import UserError, shown
from learnscope.runner import execute, execute_ensemble
from learnscope.store import Store
from learnscope.sweep.calibrate import candidate_sizes, choose_chunk
from learnscope.sweep.spec import Member, Resources, SweepSpec, expand, load_spec
from learnscope.sweep.tables import resolve_sweep
from learnscope.train.ensemble import ensemble_key
from learnscope.train.loop import Callback

#: Statuses of a run that ended by itself; any other (running, interrupted, failed) was cut.
ENDED = ("finished", "diverged", "stopped")


def group_members(members: list[Member], max_members: int) -> list[list[Member]]:
    """Members with equal :func:`ensemble_key` together, cut into pieces of <= max_members.

    Building each member's task here also checks it (e.g. a training fraction that leaves a
    split empty) before any training starts.
    """
    groups: dict[str, list[Member]] = {}
    for m in members:
        try:
            key = ensemble_key(m.config)
        except UserError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in m.axes.items())
            raise UserError(f"sweep member {m.index} ({shown}): {err}") from None
        groups.setdefault(key if key is not None else f"alone-{m.index}", []).append(m)
    return [g[i : i + max_members] for g in groups.values() for i in range(0, len(g), max_members)]


class _Progress(Callback):
    """Reports the members' steps done, in members (``on_progress(members)``), at every eval;
    one instance is shared by the members of a chunk."""

    def __init__(self, on_progress: Callable[[float], None]) -> None:
        self.on_progress = on_progress
        self.done: dict[int, float] = {}

    def on_metrics(self, trainer, step: int, values: dict[str, float]) -> None:
        self.done[id(trainer)] = step / trainer.cfg.steps
        self.on_progress(sum(self.done.values()))


def run_group(
    configs: list[dict[str, Any]],
    store: Store | str,
    sweep_id: str,
    chunk: int | None = None,
    threads: int | None = None,
    on_done: Callable[[int], None] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> list[str]:
    """Train one group of compatible members through the run pipeline; their run ids.

    ``chunk``: members per ensemble (1: the plain trainer, member after member); None
    chooses it with :func:`~learnscope.sweep.calibrate.choose_chunk`. ``on_done(n)`` after
    each chunk of n members, ``on_progress(members)`` as the current chunk evaluates. Ctrl-C
    ends the running members as ``interrupted`` and is raised again.
    """
    if threads:
        torch.set_num_threads(threads)
    store = store if isinstance(store, Store) else Store(store)
    cfgs = [validate_config(c) for c in configs]
    if ensemble_key(cfgs[0]) is None:
        chunk = 1  # a member that cannot be stacked (sequence task, BatchNorm, dropout...)
    if chunk is None and (len(cfgs) == 1 or not candidate_sizes(cfgs)):
        chunk = 1  # nothing to stack, or a run too short to time an ensemble within budget
    if chunk is None:
        chunk, _ = choose_chunk(cfgs)
    run_ids: list[str] = []
    for i in range(0, len(cfgs), chunk):
        part = cfgs[i : i + chunk]
        sinks = [_Progress(on_progress)] if on_progress else []
        if chunk == 1:
            results = [execute(part[0], store, sinks, sweep_id, extra={"mode": "loop"})]
        else:
            results = execute_ensemble(part, store, sinks, sweep_id)
        run_ids += [r.run_id for r in results]
        if on_done is not None:
            on_done(len(part))
        if any(r.status == "interrupted" for r in results):
            raise KeyboardInterrupt  # recorded as interrupted; --resume continues them
    return run_ids


def _continue_member(
    config: dict[str, Any], store: Store | str, run_id: str, threads: int | None = None
) -> list[str]:
    """Continue a member's cut-short run in place: from its last checkpoint, else from 0."""
    from learnscope import checkpoint

    if threads:
        torch.set_num_threads(threads)
    store = store if isinstance(store, Store) else Store(store)
    has_checkpoint = checkpoint.latest(store.root / run_id / "checkpoints") is not None
    if has_checkpoint:
        result = execute(config, store, resume=run_id, extra={"mode": "loop"})
    else:
        result = execute(config, store, restart=run_id, extra={"mode": "loop"})
    if result.status == "interrupted":
        raise KeyboardInterrupt
    return [result.run_id]


# -- running a sweep --------------------------------------------------------------------------


#: config fields that change no training: a member is the same member whatever they say
UNTRAINED_FIELDS = ("description", "claims")


def config_key(config: dict[str, Any]) -> str:
    """What identifies a member's run: its config, less what does not train (a recipe's
    description or claims revised after its runs leave them matched)."""
    return json.dumps(
        {k: v for k, v in config.items() if k not in UNTRAINED_FIELDS}, sort_keys=True
    )


def member_runs(store: Store, sweep_id: str) -> dict[str, tuple[str, str]]:
    """The newest run of each member of a sweep: config key -> (run id, status). A stored
    config is read through today's schema first, so that a field added since the run (with
    its default) does not hide it from a resume or a recheck."""
    runs = store.runs()
    runs = runs[runs["sweep_id"] == sweep_id]
    return {config_key(as_today(r.config)): (r.id, r.status) for r in runs.itertuples()}


def as_today(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with today's defaults filled in, retired fields dropped (as stored if
    today's schema refuses it)."""
    try:
        return validate_config(config, stored=True).to_dict()
    except Exception:  # noqa: BLE001 - any refusal: compare the config as stored
        return config


def resumable(store: Store, spec: SweepSpec, ref: str) -> str:
    """The sweep ``ref`` (an id, prefix, name or ``last``), checked to have been run with
    ``spec``: resuming it with another spec would mix two experiments."""
    sweep_id = resolve_sweep(store, ref)
    stored = store.sweeps().set_index("id").loc[sweep_id, "spec"]
    stored = json.loads(json.dumps(load_spec(stored).model_dump(mode="json")))  # defaults filled
    dump = json.loads(json.dumps(spec.model_dump(mode="json")))
    if stored != dump:
        differ = sorted(k for k in set(stored) | set(dump) if stored.get(k) != dump.get(k))
        raise UserError(
            f"--resume: sweep {sweep_id} was run with another spec (differs in: "
            f"{', '.join(differ)}); give the spec it was run with"
        )
    return sweep_id


#: seconds a Ray address is given to answer before the sweep is refused
RAY_CONNECT_S = 5.0


def _check_backend(backend: str, address: str | None = None) -> None:
    if backend not in ("local", "ray"):
        raise UserError(f"--backend: {shown(backend)}; allowed: local, ray")
    if address is not None and backend != "ray":
        raise UserError("--address: only with --backend ray")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError(
                "--backend ray: ray is not installed; pip install 'learnscope[ray]'"
            ) from None
        if address is not None and address not in ("auto", "local"):
            _check_reachable(address)


def _check_reachable(address: str) -> None:
    """A :class:`UserError` unless ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``) accepts
    a TCP connection within :data:`RAY_CONNECT_S` (``ray.init`` would wait minutes)."""
    import socket

    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address: {shown(address)}; give HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_S).close()
    except OSError as err:
        why = "no answer" if isinstance(err, TimeoutError) else err.strerror or str(err)
        raise UserError(
            f"--address: cannot reach a Ray cluster at {shown(address)} ({why} within "
            f"{RAY_CONNECT_S:g} s); nothing was recorded"
        ) from None


def run_sweep(
    spec: SweepSpec,
    store: Store,
    backend: str = "local",
    workers: int | None = None,
    max_members: int = 128,
    resume: str | None = None,
    address: str | None = None,
    chunk: int | None = None,
    progress: Callable[[float, int], None] | None = None,
) -> str:
    """Expand, validate, group and train ``spec``; record everything; return the sweep id.

    ``resume``: continue that sweep (an id, prefix, name or ``last``; it must have been run
    with ``spec``). ``progress(done, total)`` is called as members finish, and in between with
    fractional ``done`` as the running chunk evaluates (inline runs only; for the CLI's
    progress bar). Everything that can be refused (the spec, every member's config and task,
    the backend) is checked before the sweep is recorded, and a sweep that ends before any
    member started leaves no record.
    """
    _check_backend(backend, address)
    if max_members < 1:
        raise UserError(f"--max-members: must be >= 1 (got {max_members})")
    if chunk is not None and chunk < 1:
        raise UserError(f"--chunk: must be >= 1 (got {chunk})")
    if workers is not None and workers < 1:
        raise UserError(f"--workers: must be >= 1 (got {workers})")
    members = expand(spec)
    sweep_id = resumable(store, spec, resume) if resume is not None else None
    previous = member_runs(store, sweep_id) if sweep_id else {}
    todo, cut = [], []  # members never started; members whose run was cut short
    for m in members:
        run_id, status = previous.get(config_key(m.config.to_dict()), (None, None))
        if run_id is None:
            todo.append(m)
        elif status not in ENDED:
            cut.append((m, run_id))
    groups = group_members(todo, max_members)  # validates every member's task too
    # Ray is joined before anything is recorded (a cluster that cannot be joined leaves no
    # sweep behind); _run_ray leaves it
    own_ray = backend == "ray" and _ray_start(workers, address)
    if sweep_id is None:
        sweep_id = store.create_sweep(spec.name, spec.model_dump(mode="json"), len(members))
    else:
        store.set_sweep_status(sweep_id, "running")
    finished = len(members) - len(todo) - len(cut)
    if progress:
        progress(finished, len(members))

    def partial(in_flight: float) -> None:  # members' worth of the running chunk
        if progress:
            progress(finished + in_flight, len(members))

    def take(n: int) -> None:
        nonlocal finished
        finished += n
        if progress:
            progress(finished, len(members))

    # (function, payload, extra args): the members cut short first, then the groups
    jobs: list[tuple[Callable, dict | list, tuple]] = [
        (_continue_member, m.config.to_dict(), (run_id,)) for m, run_id in cut
    ]
    jobs += [(run_group, [m.config.to_dict() for m in g], (sweep_id, chunk)) for g in groups]
    status = "finished"
    try:
        if backend == "ray":
            _run_ray(jobs, str(store.root), spec.resources, take, workers, address, own_ray)
        else:
            _run_local(jobs, store, take, workers, partial)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        started = bool(member_runs(store, sweep_id))
        if status != "finished" and not started and resume is None:
            store.delete_sweep(sweep_id)  # nothing trained: nothing to show or resume
        else:
            store.set_sweep_status(sweep_id, status)
    return sweep_id


def die_with_parent(parent: int) -> None:
    """In a sweep's worker process: be killed when the sweep's process dies, however it dies
    (Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; a member cut so is continued by ``sweep
    --resume`` like any killed run). Elsewhere a no-op: the pool's workers then end when they
    find their parent gone."""
    import ctypes
    import signal
    import sys

    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _run_local(jobs, store: Store, take, workers: int | None, partial=None) -> None:
    """One process when ``workers`` is 1 (or there is one job); else a spawn process pool,
    each worker with ``cores // workers`` torch threads."""
    cores = os.cpu_count() or 1
    workers = min(workers or cores, len(jobs)) if jobs else 1
    if workers <= 1:
        for fn, payload, args in jobs:
            if fn is run_group:
                run_group(payload, store, *args, on_done=take, on_progress=partial)
            else:
                fn(payload, store, *args)
                take(1)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, cores // workers)
    ctx = multiprocessing.get_context("spawn")
    root = str(store.root)
    store.close()  # the workers write; this process only reads when they are done
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        futures = [pool.submit(fn, payload, root, *args, threads) for fn, payload, args in jobs]
        for f in as_completed(futures):
            take(len(f.result()))


def _ray_start(workers: int | None, address: str | None) -> bool:
    """Join the Ray cluster at ``address``, or start one on this machine; whether this call
    started (joined) it, and so must shut it down. A cluster that cannot be joined is a
    :class:`UserError`."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, TimeoutError, ValueError) as err:
            line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(
                f"--address: cannot join a Ray cluster at {shown(address)}: {line}"
            ) from None
    else:
        ray.init(
            num_cpus=workers or 2,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    return True


def _run_ray(jobs, root: str, res: Resources, take, workers, address, own=False) -> None:
    """Each job is a Ray task with the spec's ``num_cpus`` / ``num_gpus``; the tasks write
    their runs to the store at ``root`` (a shared filesystem on a multi-machine cluster). A
    Ray instance started here binds to this machine only and runs no dashboard. ``own``: the
    caller started (joined) Ray for this sweep, and this call shuts it down when done."""
    import ray

    started = _ray_start(workers, address) or own
    try:
        threads = max(1, int(res.num_cpus))
        remote = {
            fn: ray.remote(num_cpus=res.num_cpus, num_gpus=res.num_gpus)(fn)
            for fn in {fn for fn, _, _ in jobs}
        }
        pending = [remote[fn].remote(payload, root, *args, threads) for fn, payload, args in jobs]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            take(len(ray.get(ready[0])))
    finally:
        if started:
            ray.shutdown()
