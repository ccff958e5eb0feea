"""The model factory: ChatOpenAI for any OpenAI-compatible endpoint, or the offline analyst."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel

from agent.config import Settings
from agent.toolbox import schemas
from tools.semantic.eventmap import EventMap


def make_llm(settings: Settings, emap: EventMap | None = None) -> BaseChatModel | None:
    """ChatOpenAI with the tools bound when OPENAI_API_KEY or OPENAI_BASE_URL is set, else None.

    `timeout` and `max_retries` are always set: without a timeout a stalled server hangs forever.
    Local servers (Ollama, vLLM, llama.cpp) need no real key; any placeholder works. The tool
    descriptions name `emap`'s funnel and dimensions.
    """
    if not settings.llm_configured:
        return None
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=settings.model, base_url=settings.openai_base_url, api_key=settings.openai_api_key or "not-needed",
        timeout=settings.llm_timeout_s, max_retries=settings.llm_max_retries, temperature=0,
    )
    return llm.bind_tools(schemas(emap))
