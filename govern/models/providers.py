"""What a model name needs before any call: its provider's credentials, and a provider at all.

Both answers come without importing litellm, which takes seconds: credentials
from a small table of our own, providers from the lists litellm ships as plain
files (read, never imported). Each answers only when sure; a provider or a
layout it does not know gives no answer, so a run is never stopped on a guess.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

# provider prefix -> what it needs; each need is a tuple of alternatives, any one of which will do
_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "openai": (("OPENAI_API_KEY",),),
    "text-completion-openai": (("OPENAI_API_KEY",),),
    "anthropic": (("ANTHROPIC_API_KEY",),),
    "gemini": (("GEMINI_API_KEY", "GOOGLE_API_KEY"),),
    "mistral": (("MISTRAL_API_KEY",),),
    "codestral": (("CODESTRAL_API_KEY",),),
    "groq": (("GROQ_API_KEY",),),
    "together_ai": (
        ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHER_AI_TOKEN"),
    ),
    "cohere": (("COHERE_API_KEY", "CO_API_KEY"),),
    "cohere_chat": (("COHERE_API_KEY", "CO_API_KEY"),),
    "deepseek": (("DEEPSEEK_API_KEY",),),
    "openrouter": (("OPENROUTER_API_KEY", "OR_API_KEY"),),
    "xai": (("XAI_API_KEY",),),
    "perplexity": (("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),),
    "fireworks_ai": (("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY", "FIREWORKSAI_API_KEY"),),
    "deepinfra": (("DEEPINFRA_API_KEY",),),
    "cerebras": (("CEREBRAS_API_KEY",),),
    "replicate": (("REPLICATE_API_KEY", "REPLICATE_API_TOKEN"),),
    "nvidia_nim": (("NVIDIA_NIM_API_KEY",),),
    "moonshot": (("MOONSHOT_API_KEY",),),
    "dashscope": (("DASHSCOPE_API_KEY",),),
    "novita": (("NOVITA_API_KEY",),),
    "nebius": (("NEBIUS_API_KEY",),),
    "ai21": (("AI21_API_KEY",),),
    "ai21_chat": (("AI21_API_KEY",),),
    "azure": (("AZURE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_AD_TOKEN"),),
}
# needs that an explicit api_base answers rather than a key
_BASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "azure": (("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),),
}
# providers whose client refuses to send without a key even to an api_base of one's own
# (the OpenAI SDK does): for a local server, govern sends PLACEHOLDER_KEY instead
_KEY_DESPITE_BASE = frozenset({"openai", "text-completion-openai"})
PLACEHOLDER_KEY = "no-key"  # what a local OpenAI-compatible server that checks none is sent
# bare names litellm sends to a provider without a prefix
_BARE = (
    (re.compile(r"^(gpt-|chatgpt-|o[1-9](-|$))"), "openai"),
    (re.compile(r"^claude-"), "anthropic"),
)


def provider_of(model: str) -> str | None:
    """The provider prefix of ``model``, or the provider of a well-known bare name."""
    if "/" in model:
        return model.split("/", 1)[0]
    for pattern, provider in _BARE:
        if pattern.match(model):
            return provider
    return None


def placeholder_key(model: str, *, api_key: str | None, api_base: str | None) -> str | None:
    """The key to send to a server of one's own that needs none, where the provider's client
    refuses to send without one and no key was given or set; else None."""
    provider = provider_of(model)
    if api_key or not api_base or provider not in _KEY_DESPITE_BASE:
        return None
    if any(os.environ.get(name) for names in _KEYS.get(provider, ()) for name in names):
        return None
    return PLACEHOLDER_KEY


def missing_credentials(
    model: str, *, api_key: str | None = None, api_base: str | None = None
) -> list[str]:
    """The environment variables ``model``'s provider needs that are unset.

    Alternatives are named together (``GEMINI_API_KEY or GOOGLE_API_KEY``). Empty
    when nothing is missing or the provider is not in the table (a local server,
    cloud credentials from a profile), and for a key when an ``api_base`` is given
    unless the provider's client insists on one, so callers only fail fast on a
    definite gap.
    """
    provider = provider_of(model)
    if provider is None:
        return []
    needs: list[tuple[str, ...]] = []
    if not api_key and not api_base:
        needs += _KEYS.get(provider, ())
    if not api_base:
        needs += _BASES.get(provider, ())
    return [" or ".join(names) for names in needs if not any(os.environ.get(n) for n in names)]


# --- providers litellm knows, read from the files it ships -------------------------

_ENUM_MEMBER = re.compile(r'^\s+[A-Z0-9_]+\s*=\s*"([^"]+)"', re.MULTILINE)
_QUOTED = re.compile(r'"([^"\s]+)"')


@cache
def _litellm_folder() -> Path | None:
    try:
        spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _known() -> tuple[frozenset[str], frozenset[str], dict, list[re.Pattern]] | None:
    """litellm's provider prefixes, the hosts it recognises from api_base, its model
    list and its routing rules for unknown names; None if its files are not as expected."""
    folder = _litellm_folder()
    if folder is None:
        return None
    try:
        source = (folder / "types" / "utils.py").read_text(encoding="utf-8")
        start = source.index("class LlmProviders(")
        end = source.find("\nclass ", start + 1)
        providers = set(_ENUM_MEMBER.findall(source[start : end if end > 0 else None]))
        json_providers = json.loads(
            (folder / "llms" / "openai_like" / "providers.json").read_text(encoding="utf-8")
        )
        providers |= set(json_providers)
        constants = (folder / "constants.py").read_text(encoding="utf-8")
        start = constants.index("= [", constants.index("openai_compatible_endpoints:"))
        block = constants[start : constants.index("\n]", start)]
        endpoints = _QUOTED.findall(block) + [
            str(p.get("base_url", "")) for p in json_providers.values() if isinstance(p, dict)
        ]
        prices = json.loads(
            (folder / "model_prices_and_context_window_backup.json").read_text(encoding="utf-8")
        )
        rules = (prices.get("fallback_generalizations") or {}).get("rules", [])
        routing = [
            re.compile(rule["pattern"], re.IGNORECASE)
            for rule in rules
            if isinstance(rule, dict) and "litellm_provider" in rule.get("model_info", {})
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError, re.error):
        return None
    if len(providers) < 20 or "openai" not in providers:  # not the layout this was written for
        return None
    hosts = frozenset(h for h in (_host(e) for e in endpoints) if h)
    return frozenset(providers), hosts, prices, routing


def _host(url: str) -> str:
    return (urlparse(url if "://" in url else f"https://{url}").hostname or "").lower()


def unknown_provider(model: str, *, api_base: str | None = None) -> str | None:
    """The prefix of ``provider/model`` when litellm would refuse it as naming no provider.

    None when the provider is known, when litellm could still place the model
    (a listed model name, a routing rule, an api_base of a known host, a
    Replicate version id), for bare names, and when litellm's lists cannot be read.
    """
    if "/" not in model or ":" in model:
        return None
    known = _known()
    if known is None:
        return None
    providers, hosts, prices, routing = known
    prefix = model.split("/", 1)[0]
    if prefix in providers or model in prices:
        return None
    if api_base and _host(api_base) in hosts:
        return None
    if any(rule.search(model) for rule in routing):
        return None
    return prefix
