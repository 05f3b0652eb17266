"""Real models through litellm, with one bounded retry loop of our own.

litellm is imported on first use: it takes seconds to import, and a run on the
simulator should never pay for it. Its own retries and the OpenAI SDK's are
switched off, so the attempt counts recorded with every response are exact.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import random
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from govern.models.base import ModelError, ModelRequest, ModelResponse
from govern.models.limits import UNLIMITED, AdaptiveLimit
from govern.models.providers import missing_credentials, placeholder_key

__all__ = ["LiteLLMClient", "missing_credentials"]

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


@dataclass(frozen=True, slots=True)
class _Failure:
    reason: str
    retryable: bool
    retry_after: float | None = None
    rate_limited: bool = False


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


def _retry_after(chain: list[BaseException]) -> float | None:
    """Seconds from a numeric ``Retry-After`` header, if the provider sent one."""
    for exc in chain:
        headers = getattr(exc, "litellm_response_headers", None)
        if headers is None:
            headers = getattr(getattr(exc, "response", None), "headers", None)
        value = headers.get("retry-after") if hasattr(headers, "get") else None
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            return None
        return seconds if seconds > 0 else None
    return None


class _BadReply(Exception):
    """A reply that arrived whole but holds no answer (no choices, null content)."""

    def __init__(self, reason: str, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


# finish reasons after which a null content is the model's settled answer, not a glitch
_FINAL_FINISH = ("length", "content_filter")


def _reply_text(response: Any) -> str:
    """The answer's text; a reply with no choices or a null content raises ``_BadReply``."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise _BadReply("empty response: no choices", True)
    choice = choices[0]
    content = getattr(getattr(choice, "message", None), "content", None)
    if content is None:
        finish = getattr(choice, "finish_reason", None)
        after = f" (finish_reason {finish})" if finish else ""
        raise _BadReply(f"empty response: null content{after}", finish not in _FINAL_FINISH)
    return str(content)


# litellm's words for a reply it received but could not read (it reports them as HTTP 500)
_UNREADABLE = "Empty or invalid response from LLM endpoint. Received: "
_NO_CHOICES = "provider returned a response with no 'choices'"
_MALFORMED = "Invalid response object"
# where a connection broke, by the class names of httpx, aiohttp and the standard library
_CUT = {"ClientPayloadError", "ContentLengthError", "TransferEncodingError", "RemoteProtocolError"}
_DISCONNECTED = {"ServerDisconnectedError"}


def _body_kind(body: str) -> str:
    """What a body that is not a chat completion looks like, in a few stable words."""
    text = body.strip()
    if not text:
        return "invalid response: empty body"
    head = text[:300].lower()
    if head.startswith("<!doctype html") or "<html" in head:
        return "invalid response: not JSON (an HTML page)"
    return "invalid response: not JSON"


def _unreadable(chain: list[BaseException]) -> str | None:
    """A reply that came back (often with status 200) but was not a chat completion."""
    for link in chain:
        if isinstance(link, json.JSONDecodeError):
            return _body_kind(link.doc)
    message = " ".join(str(getattr(link, "message", None) or link) for link in chain)
    if _UNREADABLE in message:
        received = message.split(_UNREADABLE, 1)[1].split(". Check the reverse proxy", 1)[0]
        if received[:1] in ("'", '"'):  # the SDK handed back text, not JSON
            try:
                text = ast.literal_eval(received)
            except (ValueError, SyntaxError):
                text = received.strip("'\"")
            return _body_kind(str(text))
        return "invalid response: JSON that is not a chat completion"
    if _NO_CHOICES in message:
        return "invalid response: JSON that is not a chat completion (no choices)"
    if _MALFORMED in message:
        return "invalid response: malformed chat completion"
    return None


def _connection(chain: list[BaseException]) -> str | None:
    """How a connection failed, in stable words (no addresses, byte counts or object ids)."""
    names = {type(link).__name__ for link in chain}
    if not any(isinstance(link, ConnectionError | OSError) for link in chain) and not names & (
        _CUT | _DISCONNECTED | {"APIConnectionError", "ConnectError", "ReadError"}
    ):
        return None
    if any(isinstance(link, ConnectionRefusedError) for link in chain):
        return "connection failed: refused"
    if any(isinstance(link, socket.gaierror) for link in chain):
        return "connection failed: host not found"
    if any(isinstance(link, ssl.SSLError) for link in chain):
        return "connection failed: TLS error"
    if any(isinstance(link, ConnectionResetError) for link in chain):
        return "connection failed: reset by the server"
    if names & _CUT:
        return "connection failed: reply cut short"
    if names & _DISCONNECTED:
        return "connection failed: closed by the server before replying"
    return f"connection failed: {type(chain[-1]).__name__}"


def _http_status(chain: list[BaseException]) -> int | None:
    """The status the server really sent, if one arrived (litellm invents 500s and 422s)."""
    import httpx
    import openai

    for link in chain:
        # litellm's own exceptions subclass the SDK's, with a status of its choosing
        if isinstance(link, openai.APIStatusError) and type(link).__module__.startswith("openai"):
            return link.status_code
        if isinstance(link, httpx.HTTPStatusError):
            return link.response.status_code
    return None


def _error_in_reply(chain: list[BaseException]) -> _Failure | None:
    """An error object inside a 200 reply (OpenRouter and others); litellm calls it HTTP 422."""
    for link in chain:
        code = getattr(link, "status_code", None)
        if type(link) is Exception and code is not None:
            try:
                status = int(code)
            except (TypeError, ValueError):
                status = None
            # 422 is litellm's stand-in when the error object carries no code of its own
            where = f" (code {status})" if status not in (None, 422) else ""
            retryable = status is not None and (status >= 500 or status in (408, 429))
            reason = f"error inside an HTTP 200 reply{where}: {_detail(chain[0])}"
            return _Failure(reason, retryable)
    return None


class LiteLLMClient:
    """Any non-simulated model, e.g. ``openai/gpt-4o-mini`` or ``anthropic/claude-...``.

    Each attempt has ``timeout`` seconds in all (not per read: a server that
    drips a byte at a time is cut off too), and the whole call, retries and
    backoff included, ``deadline`` seconds. Retried, with jittered exponential
    backoff (never shorter than a ``Retry-After``): rate limits, server errors,
    timeouts, failed or cut connections, and replies that hold no answer (not
    JSON, no choices, a null content unless the model finished on its length or
    a content filter, which repeating would not change). Auth errors, rejected
    requests and unknown providers fail at once.
    """

    def __init__(
        self,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        deadline: float = 180.0,
        max_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        limit_for: Callable[[str], AdaptiveLimit] | None = None,
    ) -> None:
        if timeout <= 0 or deadline <= 0 or max_retries < 0:
            raise ValueError("timeout and deadline must be positive, max_retries at least 0")
        self.api_base = api_base
        self.api_key = api_key
        self.timeout = timeout
        self.deadline = deadline
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep
        unlimited = AdaptiveLimit(UNLIMITED)
        self.limit_for = limit_for or (lambda model: unlimited)  # a slot for each attempt

    async def complete(self, request: ModelRequest) -> ModelResponse:
        litellm = _litellm()
        kwargs = self._call_kwargs(request)  # request.oracle is deliberately never read
        limit = self.limit_for(request.model)
        started: float | None = None  # the deadline runs from the first attempt sent
        attempts = 0
        while True:
            attempts += 1
            async with limit:
                started = started if started is not None else time.perf_counter()
                left = self.deadline - (time.perf_counter() - started)
                budget = min(self.timeout, left)
                clock = asyncio.timeout(budget)
                try:
                    async with clock:
                        response = await litellm.acompletion(**kwargs, timeout=budget)
                    text = _reply_text(response)
                except Exception as exc:
                    cut_by_deadline = clock.expired() and budget < self.timeout
                    if cut_by_deadline:
                        failure = _Failure(
                            f"no reply within the call's {self.deadline:g} s deadline", True
                        )
                    else:
                        failure = self._classify(exc, request.model, budget)
                    if failure.rate_limited:
                        limit.rate_limited()
                    left = self.deadline - (time.perf_counter() - started)
                    delay = self._delay(attempts - 1, failure.retry_after)
                    waits_too_long = (failure.retry_after or 0) > self.backoff_max
                    if (
                        not failure.retryable
                        or attempts > self.max_retries
                        or delay >= left
                        or waits_too_long
                    ):
                        reason = failure.reason
                        if waits_too_long:
                            reason += (
                                f"; the server asks to wait {failure.retry_after:g} s, longer "
                                f"than govern's {self.backoff_max:g} s backoff limit"
                            )
                        if (
                            failure.retryable
                            and attempts <= self.max_retries
                            and not cut_by_deadline
                            and not waits_too_long
                        ):
                            reason += (
                                f"; no time left before the call's {self.deadline:g} s deadline"
                            )
                        raise ModelError(
                            model=request.model,
                            reason=reason,
                            attempts=attempts,
                            retryable=failure.retryable,
                        ) from exc
                else:
                    limit.succeeded()
                    delay = None
            if delay is not None:
                await self.sleep(delay)  # the slot is free while backing off
                continue
            return ModelResponse(
                text=text,
                model=request.model,
                prompt_tokens=_usage(response, "prompt_tokens"),
                completion_tokens=_usage(response, "completion_tokens"),
                cost=_cost(litellm, response),
                latency=time.perf_counter() - started,
                attempts=attempts,
                simulated=False,
                finish_reason=_finish_reason(response),
            )

    def _call_kwargs(self, request: ModelRequest) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            **request.extra,  # the manifest's provider parameters; they cannot name the rest
            "model": request.model,
            "messages": request.messages,
            "num_retries": 0,  # litellm's own retry wrapper
            "max_retries": 0,  # the OpenAI SDK's client, which otherwise retries twice
        }
        optional = {
            "seed": request.seed,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "api_base": self.api_base,
            "api_key": self.api_key
            or placeholder_key(request.model, api_key=None, api_base=self.api_base),
        }
        kwargs.update({key: value for key, value in optional.items() if value is not None})
        return kwargs

    def _delay(self, retry: int, retry_after: float | None) -> float:
        """Backoff for the ``retry``-th retry (from 0), never shorter than the server asked."""
        backoff = min(self.backoff_max, self.backoff_base * 2**retry) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return min(self.backoff_max, backoff)

    def _classify(self, exc: Exception, model: str, budget: float) -> _Failure:
        import openai  # loaded with litellm; its classes mark where the failure happened

        if isinstance(exc, _BadReply):
            return _Failure(exc.reason, exc.retryable)
        chain = list(_chain(exc))
        if any(type(link) is openai.OpenAIError for link in chain):
            # The SDK refused to send the request, most often for want of an API key.
            hint = self._missing_hint(model)
            return _Failure(
                f"missing credentials{hint}" if hint else f"not sent: {_detail(exc)}", False
            )
        if any(isinstance(link, openai.APITimeoutError | TimeoutError) for link in chain):
            return _Failure(f"timed out ({budget:g} s per attempt)", True)
        if "LLM Provider NOT provided" in str(exc):
            prefix = model.split("/", 1)[0] if "/" in model else model
            return _Failure(
                f"unknown provider '{prefix}': litellm has no such provider "
                "(write the model as provider/name, e.g. openai/NAME)",
                False,
            )
        status = _http_status(chain)
        if status is None:
            found = _connection(chain)
            if found is not None:
                return _Failure(found, True)
            found = _unreadable(chain)
            if found is not None:
                return _Failure(found, True)
            embedded = _error_in_reply(chain)
            if embedded is not None:
                return embedded
            status = getattr(exc, "status_code", None)
        if not isinstance(status, int):
            return _Failure(f"{type(exc).__name__}: {_detail(exc)}", False)
        if status == 429:
            return _Failure("rate limited (HTTP 429)", True, _retry_after(chain), rate_limited=True)
        if status == 408:
            return _Failure("timed out (HTTP 408)", True)
        if status >= 500:
            return _Failure(f"server error (HTTP {status})", True, _retry_after(chain))
        if status in (401, 403):
            what = "authentication failed" if status == 401 else "permission denied"
            hint = self._missing_hint(model) or "; check the API key"
            return _Failure(f"{what} (HTTP {status}){hint}", False)
        return _Failure(f"request rejected (HTTP {status}): {_detail(exc)}", False)

    def _missing_hint(self, model: str) -> str:
        """Name the unset variables, the usual cause of an auth failure; empty if none."""
        missing = missing_credentials(model, api_key=self.api_key, api_base=self.api_base)
        return f"; set {', '.join(missing)}" if missing else ""


def _usage(response: Any, field: str) -> int:
    return int(getattr(getattr(response, "usage", None), field, 0) or 0)


def _cost(litellm: ModuleType, response: Any) -> float | None:
    """USD from litellm's bundled prices; None for a model it has no price for."""
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:
        return None


def _finish_reason(response: Any) -> str | None:
    try:
        reason = response.choices[0].finish_reason
    except (AttributeError, IndexError, TypeError):
        return None
    return str(reason) if reason is not None else None
