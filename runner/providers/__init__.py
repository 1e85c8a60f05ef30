"""Wire: one module per wire protocol, each turning a `runner.types.ChatRequest` into typed events.

May import: `runner.types`, `runner.errors`. Never the engine, the ledger, the config or the UI:
an adapter returns decisions (an error's class and retry-after, a rate-limit reading) and acts on
nothing; the lane acts.

- `base`: the Adapter contract (`StreamResponse`); `registry`: provider kinds → adapters.
- `openai_chat`, `openai_responses`, `anthropic`, `gemini`: the protocols.
- `sse`: the incremental SSE parser; `think`: inline ``<think>`` splitting.
- `headers`: rate-limit and retry headers → `RateLimitReading`; `counts`: the token counts and
  charges a call is priced from, as types that refuse negative or absurd values.
- `classify`: provider answers → `ProviderError` classes; `wire`: HTTP plumbing and the
  translation of aiohttp failures; `streaming`: the skeleton the SSE adapters share.
"""
