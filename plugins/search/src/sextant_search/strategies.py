"""Search strategies over a grid of :class:`~sextant.specs.Param` dimensions.

Each implements ``sextant.runtime.SearchStrategy``: ``ask(history)`` returns the next
configurations to measure (empty when done); ``history`` holds ``(configuration, score)`` with
higher scores better and ``None`` for failed or infeasible configurations.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sextant.api import Param

Config = dict[str, Any]
History = Sequence[tuple[Mapping[str, Any], float | None]]


def _key(config: Mapping[str, Any]) -> str:
    return json.dumps(dict(config), sort_keys=True)


class _Grid:
    def __init__(self, space: Sequence[Param]) -> None:
        self.space = tuple(space)
        self.grids = [p.grid() for p in self.space]

    def config(self, index: Sequence[int]) -> Config:
        return {p.name: grid[i] for p, grid, i in zip(self.space, self.grids, index)}

    def index(self, config: Mapping[str, Any]) -> tuple[int, ...]:
        return tuple(grid.index(config[p.name]) for p, grid in zip(self.space, self.grids))

    def size(self) -> int:
        return math.prod(len(g) for g in self.grids)


class Brute(_Grid):
    """Every point of the grid, in order, except where an exponential dimension has stopped paying:
    after ``patience`` consecutive doublings that each gained under ``min_gain``, or past the edge
    where a value that met the constraints is followed by one that breaks them (a latency budget
    along batch size or concurrency fails from there on)."""

    def __init__(
        self,
        space: Sequence[Param],
        seed: int = 0,
        workspace: Path | None = None,
        name: str = "",
        min_gain: float = 0.05,
        patience: int = 2,
    ) -> None:
        super().__init__(space)
        self.min_gain, self.patience = min_gain, patience

    def ask(self, history: History) -> list[Config]:
        scores = {_key(c): s for c, s in history}
        for index in itertools.product(*(range(len(g)) for g in self.grids)):
            config = self.config(index)
            if _key(config) not in scores and not self._pruned(index, scores):
                return [config]
        return []

    def _pruned(self, index: tuple[int, ...], scores: Mapping[str, float | None]) -> bool:
        for d, param in enumerate(self.space):
            if param.kind != "exponential":
                continue
            below = [self.config(index[:d] + (j,) + index[d + 1 :]) for j in range(index[d])]
            measured = [scores[_key(c)] for c in below if _key(c) in scores]
            feasible_then_not = [
                i for i in range(1, len(measured)) if measured[i] is None and measured[i - 1] is not None
            ]
            if feasible_then_not:  # the edge where a constraint starts to fail: past it, it fails too
                return True
            if len(measured) > self.patience and None not in measured:
                tail = measured[-(self.patience + 1) :]
                if all((1 + b) / (1 + a) - 1 < self.min_gain for a, b in zip(tail, tail[1:])):
                    return True
        return False


class Quick(_Grid):
    """Hill-climbing on the grid's integer lattice from the default point: measure the neighbours
    within ``radius`` steps along each dimension, move to the best one that beats the current point,
    stop when none does (a move is only ever to a strictly better point, so it never revisits)."""

    def __init__(
        self, space: Sequence[Param], seed: int = 0, workspace: Path | None = None, name: str = "", radius: int = 1
    ) -> None:
        super().__init__(space)
        self.radius = radius
        self.current = self.index({p.name: p.default for p in self.space})

    def _neighbours(self, index: tuple[int, ...]) -> list[tuple[int, ...]]:
        out = []
        for d, grid in enumerate(self.grids):
            for step in range(-self.radius, self.radius + 1):
                j = index[d] + step
                if step and 0 <= j < len(grid):
                    out.append(index[:d] + (j,) + index[d + 1 :])
        return out

    def ask(self, history: History) -> list[Config]:
        scores = {_key(c): s for c, s in history}
        while True:
            here = scores.get(_key(self.config(self.current)))
            if _key(self.config(self.current)) not in scores:
                return [self.config(self.current)]
            around = [self.config(n) for n in self._neighbours(self.current)]
            todo = [c for c in around if _key(c) not in scores]
            if todo:
                return todo
            better = [(scores[_key(c)], c) for c in around if scores[_key(c)] is not None]
            best = max(better, key=lambda sc: sc[0], default=None)
            if best is None or here is not None and best[0] <= here:
                return []
            self.current = self.index(best[1])


#: seconds a worker waits for another's write to an SQLite study (sqlite3's default, 5, is short on a loaded machine)
SQLITE_BUSY_S = 60


def _storage(optuna: Any, url: str | None) -> Any:
    """The study's storage: an SQLite URL with a long busy timeout, other URLs as given."""
    if url is None or not url.startswith("sqlite:"):
        return url
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": SQLITE_BUSY_S}})


def _create_study(optuna: Any, attempts: int = 3, **kwargs: Any) -> Any:
    """``optuna.create_study``; workers that start together race to create the database's tables
    (one wins, the others fail with a duplicate key): the losers try again and find them."""
    for attempt in range(attempts):
        try:
            return optuna.create_study(**kwargs)
        except Exception as exc:  # noqa: BLE001 - sqlalchemy's IntegrityError/ProgrammingError, as the database says it
            said = str(exc).lower()
            if attempt == attempts - 1 or not ("already exists" in said or "duplicate key" in said):
                raise
    raise AssertionError("unreachable")


class OptunaSearch(_Grid):
    """TPE through Optuna. ``storage`` is any database URL Optuna accepts (default: ``optuna.sqlite``
    in the workspace; PostgreSQL to share one study between machines); workers that name the same study
    work on it together. Stops after ``trials`` trials (default: ``share`` of the grid, at least
    ``min_trials``, at most ``max_trials`` and the grid) or ``patience`` trials in a row without improvement.
    The configurations the study already held are asked for first: a re-run reports what the earlier
    run measured (the results store has them), and with more trials goes on with the same study."""

    def __init__(
        self,
        space: Sequence[Param],
        seed: int = 0,
        workspace: Path | None = None,
        name: str = "",
        storage: str | None = None,
        study_name: str | None = None,
        trials: int | None = None,
        share: float = 0.3,
        min_trials: int = 2,
        max_trials: int | None = None,
        patience: int = 20,
    ) -> None:
        import optuna

        super().__init__(space)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.study = _create_study(
            optuna,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            storage=_storage(optuna, storage or (f"sqlite:///{workspace / 'optuna.sqlite'}" if workspace else None)),
            study_name=study_name or name or "sextant",
            load_if_exists=True,
        )
        size = self.size()
        self.trials = trials or min(max(min_trials, math.ceil(share * size)), max_trials or size, size)
        self.patience = patience
        # ordered dimensions by grid index, so TPE can use their order; categories as categories
        self.distributions = {
            p.name: optuna.distributions.CategoricalDistribution(list(grid))
            if p.kind == "categorical"
            else optuna.distributions.IntDistribution(0, len(grid) - 1)
            for p, grid in zip(self.space, self.grids)
        }
        self.pending: dict[str, Any] = {}
        # what the study already holds (an earlier run of this search, or another worker's trials):
        # asked for again first, so this search reports them too (the store has their measurements),
        # and not told to the study again; the trial budget counts them, so a larger one goes on from there
        earlier = self.study.get_trials(deepcopy=False)
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
        configs = [
            self._config(t.params) for t in earlier if t.state in finished and t.distributions == self.distributions
        ]
        self.replay: list[Config] = list({_key(c): c for c in configs}.values())  # first-asked order
        self.told: set[str] = {_key(c) for c in self.replay}
        if earlier:  # a sampler seeded as before would propose the earlier trials again
            self.study.sampler = optuna.samplers.TPESampler(seed=seed + len(earlier))

    def _params(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            p.name: config[p.name] if p.kind == "categorical" else grid.index(config[p.name])
            for p, grid in zip(self.space, self.grids)
        }

    def _config(self, params: Mapping[str, Any]) -> Config:
        return {
            p.name: params[p.name] if p.kind == "categorical" else grid[params[p.name]]
            for p, grid in zip(self.space, self.grids)
        }

    def _tell(self, config: Mapping[str, Any], score: float | None) -> None:
        key = _key(config)
        trial = self.pending.pop(key, None)
        state = self.optuna.trial.TrialState
        if trial is not None:
            self.study.tell(trial, score, state=state.COMPLETE if score is not None else state.FAIL)
        elif key not in self.told:  # measured without a trial (the default point): record it
            self.study.add_trial(
                self.optuna.trial.create_trial(
                    params=self._params(config),
                    distributions=self.distributions,
                    value=score,
                    state=state.COMPLETE if score is not None else state.FAIL,
                )
            )
        self.told.add(key)

    def _ours(self) -> list[Any]:
        """The study's trials over this search's space (a study in the workspace may also hold an
        earlier run's over another space: other threads, other options; they count for nothing here)."""
        return [t for t in self.study.get_trials(deepcopy=False) if t.distributions == self.distributions]

    def _stalled(self, trials: list[Any]) -> bool:
        values = [t.value for t in trials if t.value is not None]
        if len(values) <= self.patience:
            return False
        best_before = max(values[: -self.patience])
        return max(values[-self.patience :]) <= best_before

    def ask(self, history: History) -> list[Config]:
        known = {_key(c): s for c, s in history}
        for config, score in history:
            if _key(config) not in self.told:
                self._tell(config, score)
        replay, self.replay = [c for c in self.replay if _key(c) not in known], []
        if replay:
            return replay
        for _ in range(4 * self.size()):  # TPE may propose a point already measured: answer it at once
            ours = self._ours()
            if len(ours) >= self.trials or self._stalled(ours):
                return []
            trial = self.study.ask(self.distributions)
            config = self._config(trial.params)
            key = _key(config)
            if key in known:
                self.study.tell(
                    trial,
                    known[key],
                    state=self.optuna.trial.TrialState.COMPLETE
                    if known[key] is not None
                    else self.optuna.trial.TrialState.FAIL,
                )
                continue
            self.pending[key] = trial
            return [config]
        return []
