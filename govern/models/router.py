"""Resolve model names to clients and bound how many calls are in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from govern.models.base import ModelClient, ModelRequest, ModelResponse
from govern.models.sim.client import SimClient
from govern.models.sim.params import is_simulated, resolve_sim_params
from govern.spec.models import SimOverride


class ModelRouter:
    """``sim/...`` names go to the simulator, anything else to litellm (imported lazily)."""

    def __init__(
        self,
        *,
        simulator: dict[str, SimOverride] | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        deadline: float = 180.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        concurrency: int = 8,
        clients: dict[str, ModelClient] | None = None,
    ) -> None:
        self.simulator = simulator or {}
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout  # seconds for one attempt, all of it
        self.deadline = deadline  # seconds for a whole call, retries and backoff included
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = concurrency
        self._clients: dict[str, ModelClient] = dict(clients or {})
        self._remote: ModelClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def client(self, model: str) -> ModelClient:
        if model not in self._clients:
            if is_simulated(model):
                self._clients[model] = SimClient(resolve_sim_params(model, self.simulator))
            else:
                self._clients[model] = self._remote_client()
        return self._clients[model]

    def _remote_client(self) -> ModelClient:
        if self._remote is None:
            from govern.models.litellm_client import LiteLLMClient

            self._remote = LiteLLMClient(
                api_base=self.api_base,
                api_key=self.api_key,
                timeout=self.timeout,
                deadline=self.deadline,
                max_retries=self.max_retries,
                backoff_base=self.backoff_base,
                backoff_max=self.backoff_max,
            )
        return self._remote

    async def complete(self, request: ModelRequest) -> ModelResponse:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        client = self.client(request.model)
        async with self._slots:
            return await client.complete(request)

    def problems(self, models: Iterable[str]) -> list[str]:
        """What stops these models from running, before any call is made.

        Never imports litellm: credentials and providers are looked up in
        ``govern.models.providers``, which answers in milliseconds.
        """
        from govern.models.providers import missing_credentials, unknown_provider

        found: list[str] = []
        for model in sorted(set(models)):
            if model in self._clients:
                continue
            if is_simulated(model):
                try:
                    resolve_sim_params(model, self.simulator)
                except KeyError as exc:
                    found.append(str(exc.args[0]))
                continue
            prefix = unknown_provider(model, api_base=self.api_base)
            if prefix is not None:
                found.append(
                    f"model '{model}': litellm knows no provider '{prefix}' (write the model as "
                    "provider/name, e.g. openai/NAME for an OpenAI-compatible server)"
                )
            elif self.api_key is None:
                missing = missing_credentials(model, api_base=self.api_base)
                if missing:  # never with an api_base: a server of one's own needs no key
                    found.append(
                        f"model '{model}' needs {', '.join(missing)} in the environment (or use "
                        "a sim/ model to run offline)"
                    )
        return found
