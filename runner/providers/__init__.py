"""Provider adapters: one module per wire protocol, each turning a ChatRequest into typed events."""
