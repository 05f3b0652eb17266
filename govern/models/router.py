"""Resolve model names to clients and bound how many calls are in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace

from govern.models.base import ModelClient, ModelRequest, ModelResponse
from govern.models.cache import ResponseCache, request_key
from govern.models.limits import AdaptiveLimit
from govern.models.sim.client import SimClient
from govern.models.sim.params import is_simulated, resolve_sim_params
from govern.spec.models import Endpoint, Price, SimOverride

# Where calls go, for their concurrency limit: a server's base URL, or a model without one.
EndpointKey = tuple[str, str]


class ModelRouter:
    """``sim/...`` names go to the simulator, anything else to litellm (imported lazily), each
    to its own endpoint's server if it has one.

    ``concurrency`` bounds the calls in flight in all; an endpoint's ``concurrency`` bounds
    those sent to its server, which models with the same base URL share. A call takes its
    endpoint's slot first, then a global one, for each attempt (always in that order, so no
    two calls can each hold what the other waits for; and none while backing off, so a
    rate-limited server does not hold up another's calls), and only then starts its timeout.
    """

    def __init__(
        self,
        *,
        simulator: dict[str, SimOverride] | None = None,
        api_base: str | None = None,
        endpoints: dict[str, Endpoint] | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        deadline: float = 180.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        concurrency: int = 8,
        clients: dict[str, ModelClient] | None = None,
        cache: ResponseCache | None = None,
        prices: dict[str, Price] | None = None,
    ) -> None:
        self.simulator = simulator or {}
        self.api_base = api_base
        self.endpoints = endpoints or {}
        self.api_key = api_key
        self.timeout = timeout  # seconds for one attempt, all of it
        self.deadline = deadline  # seconds for a whole call, retries and backoff included
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.concurrency = concurrency
        self.cache = cache  # real models' responses, by what decides them
        self.prices = prices or {}  # the user's prices, by model: they replace litellm's
        self._clients: dict[str, ModelClient] = dict(clients or {})
        self._given = frozenset(self._clients)  # clients given whole: the run's slot is theirs
        self._remote: dict[str | None, ModelClient] = {}  # api_base -> its client
        self._slots: asyncio.Semaphore | None = None
        self._ceilings: dict[EndpointKey, int] = {}
        for model, endpoint in self.endpoints.items():
            if endpoint.concurrency is not None:
                key = self._endpoint(model)
                ceiling = min(endpoint.concurrency, self._ceilings.get(key, endpoint.concurrency))
                self._ceilings[key] = ceiling
        self.limits: dict[EndpointKey, AdaptiveLimit] = {}  # made on first use

    def base_of(self, model: str) -> str | None:
        """The server a real model's calls go to: its endpoint's api_base, else the run's."""
        endpoint = self.endpoints.get(model)
        return endpoint.api_base if endpoint and endpoint.api_base else self.api_base

    def _endpoint(self, model: str) -> EndpointKey:
        base = None if is_simulated(model) else self.base_of(model)
        return ("api_base", base.rstrip("/")) if base else ("model", model)

    def client(self, model: str) -> ModelClient:
        if model not in self._clients:
            if is_simulated(model):
                self._clients[model] = SimClient(resolve_sim_params(model, self.simulator))
            else:
                self._clients[model] = self._remote_client(self.base_of(model))
        return self._clients[model]

    def _remote_client(self, api_base: str | None) -> ModelClient:
        if api_base not in self._remote:
            from govern.models.litellm_client import LiteLLMClient

            self._remote[api_base] = LiteLLMClient(
                api_base=api_base,
                api_key=self.api_key,
                timeout=self.timeout,
                deadline=self.deadline,
                max_retries=self.max_retries,
                backoff_base=self.backoff_base,
                backoff_max=self.backoff_max,
                limit_for=self._limit,
            )
        return self._remote[api_base]

    def waits(self, model: str) -> bool:
        """Whether a call to ``model`` can wait on anything (a server, a simulated latency):
        only then are several calls worth running side by side."""
        client = self.client(model)
        return not isinstance(client, SimClient) or client.params.latency_ms > 0

    def _run_slots(self) -> asyncio.Semaphore:
        """The run's bound on calls in flight (made in the event loop that uses it)."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._slots

    async def complete(self, request: ModelRequest) -> ModelResponse:
        client = self.client(request.model)
        key = None
        if self.cache is not None and not is_simulated(request.model):
            key = request_key(request, self.base_of(request.model))
            if (kept := self.cache.get(key)) is not None:
                return kept
        if is_simulated(request.model) or request.model in self._given:
            async with self._run_slots():
                response = await client.complete(request)
        else:  # a real model's client takes its endpoint's slot, then the run's, per attempt
            response = await client.complete(request)
        price = self.prices.get(request.model)
        if price is not None and not response.simulated:
            cost = price.cost(response.prompt_tokens, response.completion_tokens)
            response = replace(response, cost=cost)
        if key is not None and self.cache is not None:
            self.cache.put(key, response)
        return response

    def _limit(self, model: str) -> AdaptiveLimit:
        """The in-flight limit of a real model's endpoint: its ceiling is the endpoint's
        concurrency, or the run's; rate limits lower it for a while."""
        key = self._endpoint(model)
        if key not in self.limits:
            ceiling = self._ceilings.get(key, self.concurrency)
            self.limits[key] = AdaptiveLimit(ceiling, self._run_slots())
        return self.limits[key]

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
                except (KeyError, ValueError) as exc:
                    found.append(str(exc.args[0]))
                continue
            api_base = self.base_of(model)
            prefix = unknown_provider(model, api_base=api_base)
            if prefix is not None:
                found.append(
                    f"model '{model}': litellm knows no provider '{prefix}' (write the model as "
                    "provider/name, e.g. openai/NAME for an OpenAI-compatible server)"
                )
            elif self.api_key is None:
                missing = missing_credentials(model, api_base=api_base)
                if missing:  # never with an api_base: a server of one's own needs no key
                    found.append(
                        f"model '{model}' needs {', '.join(missing)} in the environment (or use "
                        "a sim/ model to run offline)"
                    )
        return found
