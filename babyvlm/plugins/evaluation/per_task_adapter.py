"""Eval adapter ``per_task``: one adapter per task — how a *task-specific* tuned study is scored.

In the paper's task-specific tuning mode every DevCV task gets its own model, each fine-tuned from the same
phase-2 weights (``tuning="task_specific"`` on a phase, see ``core/experiment.py``). This adapter routes each
request to the adapter of its task (``Request.task``) and the rest to ``default``; a task with no adapter
and no default is refused by name. Inner adapters are built on first use, so a run over a few tasks loads
only their models.

    dict(type="per_task", adapters={"baby_pv": dict(type="babyvlm", path="WORK/phases/3/baby_pv/model")},
         default=dict(type="babyvlm", path="WORK/checkpoint"))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from babyvlm import registry
from babyvlm.core.contracts import show_items
from babyvlm.core.errors import ConfigError
from babyvlm.core.records import Request, TaskItem
from babyvlm.core.specs import is_spec


class PerTaskAdapter:
    name = "per_task"

    def __init__(self, adapters: Mapping[str, Any], default: Any = None):
        if not isinstance(adapters, Mapping) or not adapters:
            raise ConfigError("eval adapter 'per_task': adapters must map task names to adapter specs, "
                              f"got {adapters!r:.80}")
        self.specs = dict(adapters)
        self.default_spec = default
        self._built: dict[str | None, Any] = {}

    def adapter_for(self, task: str) -> Any:
        """The adapter that answers ``task``'s requests (built on first use)."""
        key = task if task in self.specs else None
        if key is None and self.default_spec is None:
            raise ConfigError(f"eval adapter 'per_task': no adapter for task {task!r} and no default "
                              f"(adapters for: {', '.join(sorted(self.specs))})")
        if key is None:
            return self._default()
        if key not in self._built:
            spec = self.specs[key]
            self._built[key] = registry.build("eval_adapter", spec) if is_spec(spec) else spec
        return self._built[key]

    def fingerprint(self) -> str:
        # every inner adapter's own fingerprint (a babyvlm adapter's hashes its weights), so results resumed
        # after one task's model was retrained in place are never mixed with the old model's
        parts = [f"{task}={self.adapter_for(task).fingerprint()}" for task in sorted(self.specs)]
        if self.default_spec is not None:
            parts.append(f"*={self._default().fingerprint()}")
        return f"per_task({';'.join(parts)})"

    def _default(self) -> Any:
        if None not in self._built:
            spec = self.default_spec
            self._built[None] = registry.build("eval_adapter", spec) if is_spec(spec) else spec
        return self._built[None]

    def see_items(self, task_name: str, items: Sequence[TaskItem], task: Any = None, mode: str = "generate") -> None:
        show_items(self.adapter_for(task_name), task_name, items, task=task, mode=mode)

    def generate_until(self, requests: Sequence[Request]) -> list[str]:
        return self._routed(requests, lambda adapter, part: adapter.generate_until(part))

    def loglikelihood(self, requests: Sequence[Request]) -> list[list[tuple[float, bool]]]:
        return self._routed(requests, lambda adapter, part: adapter.loglikelihood(part))

    def generate_until_multi_round(self, requests: Sequence[Request]) -> list[list[str]]:
        return self._routed(requests, lambda adapter, part: adapter.generate_until_multi_round(part))

    def _routed(self, requests: Sequence[Request], call: Callable[[Any, list[Request]], list[Any]]) -> list[Any]:
        """Answers in the requests' order, each group of one task's requests answered by its adapter."""
        places: dict[str, list[int]] = {}
        for position, request in enumerate(requests):
            places.setdefault(request.task, []).append(position)
        answers: list[Any] = [None] * len(requests)
        for task, positions in places.items():
            got = call(self.adapter_for(task), [requests[p] for p in positions])
            if len(got) != len(positions):
                raise ConfigError(f"eval adapter 'per_task': the adapter for {task} returned {len(got)} answers "
                                  f"for {len(positions)} requests")
            for position, answer in zip(positions, got, strict=True):
                answers[position] = answer
        return answers

