"""Config: what a sweep is. The manifest's Structs, the jobs it expands to, and the calls each job
makes (`calls`), shared by the run and the estimate so that the two cannot drift.

May import: `runner.types`, `runner.errors`, `runner.tasks`, `runner.tokens`. Never the engine,
the ledger, the providers or the UI: planning decides, it never drives a run.

- `manifest`: TOML → frozen msgspec Structs; errors name the file and the field path.
- `plan`: jobs with stable ids, lazily, in a deterministic order.
- `fidelity`: how much of a model's reasoning can be cut (raw, content, summarised, hidden).
- `kinds`: static facts of each provider kind (keyless, minimum thinking budget).
- `calls`: the requests a job makes (prompts, caps, thinking budgets), for run and estimate alike.
"""
