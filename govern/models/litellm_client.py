"""Real models through litellm, with one bounded retry loop of our own.

litellm is imported on first use: it takes seconds to import, and a run on the
simulator should never pay for it. Its own retries and the OpenAI SDK's are
switched off, so the attempt counts recorded with every response are exact.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from govern.models.base import ModelError, ModelRequest, ModelResponse

_DETAIL_CHARS = 200  # keep provider messages in a reason to one readable line
# litellm prefixes messages with class names: "litellm.BadRequestError: OpenAIException - ..."
_CLASS_PREFIXES = re.compile(r"^(?:(?:litellm\.)?\w*(?:Error|Exception|Timeout)(?::| -) )+")


def _litellm() -> ModuleType:
    """Import litellm so that it reads only its bundled files and prints nothing.

    Without these variables litellm fetches its price map (and, for some
    providers, header configs and tokenizers) from the network.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
    import litellm

    litellm.suppress_debug_info = True  # else every error prints a "Give Feedback" banner
    return litellm


def missing_credentials(
    model: str, *, api_key: str | None = None, api_base: str | None = None
) -> list[str]:
    """The environment variables litellm says ``model`` needs but are unset.

    Empty when nothing is missing or litellm cannot tell (an unknown provider,
    a local server), so callers only ever fail fast on a definite gap.
    """
    try:
        found = _litellm().validate_environment(model=model, api_key=api_key, api_base=api_base)
    except Exception:
        return []
    return [str(key) for key in found.get("missing_keys", [])]


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    retryable: bool
    retry_after: float | None = None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps: litellm reports a refused connection as HTTP 500."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _detail(exc: BaseException) -> str:
    """The provider's own words, without litellm's class-name prefixes."""
    message = str(getattr(exc, "message", None) or exc).strip()
    first_line = message.splitlines()[0] if message else ""
    text = _CLASS_PREFIXES.sub("", first_line) or type(exc).__name__
    return text if len(text) <= _DETAIL_CHARS else text[: _DETAIL_CHARS - 1] + "…"


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from a numeric ``Retry-After`` header, if the provider sent one."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and seconds > 0 else None


class LiteLLMClient:
    """Any non-simulated model, e.g. ``openai/gpt-4o-mini`` or ``anthropic/claude-...``.

    Rate limits, server errors, dropped connections and timeouts are retried
    with jittered exponential backoff; auth errors and rejected requests fail at
    once, since repeating them cannot help.
    """

    def __init__(
        self,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep

    async def complete(self, request: ModelRequest) -> ModelResponse:
        litellm = _litellm()
        kwargs = self._call_kwargs(request)  # request.oracle is deliberately never read
        started = time.perf_counter()
        attempts = 0
        while True:
            attempts += 1
            try:
                response = await litellm.acompletion(**kwargs)
            except Exception as exc:
                failure = self._classify(exc, request.model)
                if not failure.retryable or attempts > self.max_retries:
                    raise ModelError(
                        model=request.model,
                        reason=failure.reason,
                        attempts=attempts,
                        retryable=failure.retryable,
                    ) from exc
                await self.sleep(self._delay(attempts - 1, failure.retry_after))
                continue
            return ModelResponse(
                text=_text(response),
                model=request.model,
                prompt_tokens=_usage(response, "prompt_tokens"),
                completion_tokens=_usage(response, "completion_tokens"),
                cost=_cost(litellm, response),
                latency=time.perf_counter() - started,
                attempts=attempts,
                simulated=False,
            )

    def _call_kwargs(self, request: ModelRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "timeout": self.timeout,
            "num_retries": 0,  # litellm's own retry wrapper
            "max_retries": 0,  # the OpenAI SDK's client, which otherwise retries twice
        }
        optional = {
            "seed": request.seed,
            "max_tokens": request.max_tokens,
            "api_base": self.api_base,
            "api_key": self.api_key,
        }
        kwargs.update({key: value for key, value in optional.items() if value is not None})
        return kwargs

    def _delay(self, retry: int, retry_after: float | None) -> float:
        """Backoff for the ``retry``-th retry (from 0), never shorter than the server asked."""
        backoff = min(self.backoff_max, self.backoff_base * 2**retry) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(self.backoff_max, backoff)

    def _classify(self, exc: Exception, model: str) -> _Failure:
        import openai  # loaded with litellm; its classes mark where the failure happened

        chain = list(_chain(exc))
        if any(type(link) is openai.OpenAIError for link in chain):
            # The SDK refused to send the request, most often for want of an API key.
            hint = self._missing_hint(model)
            return _Failure(
                f"missing credentials{hint}" if hint else f"not sent: {_detail(exc)}", False
            )
        if any(isinstance(link, openai.APITimeoutError | TimeoutError) for link in chain):
            return _Failure(f"timed out after {float(self.timeout)} s", True)
        if any(isinstance(link, openai.APIConnectionError | ConnectionError) for link in chain):
            return _Failure(f"connection failed: {_detail(exc)}", True)
        status = getattr(exc, "status_code", None)
        if not isinstance(status, int):
            return _Failure(f"{type(exc).__name__}: {_detail(exc)}", False)
        if status == 429:
            return _Failure("rate limited (HTTP 429)", True, _retry_after(exc))
        if status == 408:
            return _Failure(f"timed out after {float(self.timeout)} s", True)
        if status >= 500:
            return _Failure(f"server error (HTTP {status})", True, _retry_after(exc))
        if status in (401, 403):
            what = "authentication failed" if status == 401 else "permission denied"
            hint = self._missing_hint(model) or "; check the API key"
            return _Failure(f"{what} (HTTP {status}){hint}", False)
        return _Failure(f"request rejected (HTTP {status}): {_detail(exc)}", False)

    def _missing_hint(self, model: str) -> str:
        """Name the unset variables, the usual cause of an auth failure; empty if none."""
        missing = missing_credentials(model, api_key=self.api_key, api_base=self.api_base)
        return f"; set {', '.join(missing)}" if missing else ""


def _text(response: Any) -> str:
    try:
        return response.choices[0].message.content or ""
    except (AttributeError, IndexError):
        return ""


def _usage(response: Any, field: str) -> int:
    return int(getattr(getattr(response, "usage", None), field, 0) or 0)


def _cost(litellm: ModuleType, response: Any) -> float | None:
    """USD from litellm's bundled prices; None for a model it has no price for."""
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:
        return None
