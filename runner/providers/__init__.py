"""Provider adapters: one module per wire protocol, each turning a ChatRequest into typed events.

- `base`: the Adapter contract (ChatRequest, StreamResponse).
- `registry`: manifest provider kinds → adapters (`make_adapter`, `default_base_url`).
- `openai_chat`, `openai_responses`, `anthropic`, `gemini`: the protocols.
- `sse`: the incremental SSE parser; `think`: inline ``<think>`` splitting.
- `headers`: rate-limit and retry headers → `RateLimitReading`.
- `classify`: provider answers → `ProviderError` classes; `wire`: HTTP plumbing and the
  translation of aiohttp failures; `streaming`: the skeleton the SSE adapters share.
"""
