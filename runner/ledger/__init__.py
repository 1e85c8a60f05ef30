"""Money: the ledger (records, writer, recovery, reader), prices, the pre-run estimate and the audit.

May import: `runner.types`, `runner.errors`, `runner.config`, `runner.tasks`, `runner.tokens`.
Never the engine or the providers: the ledger and the estimate never drive a run.

- `records`: the tagged record Structs; `writer`: batched, fsynced appends; `recovery`: after a crash;
  `reader`: iterating records, and the summary a resume needs.
- `transcripts`: the transcripts file (records, gzip members, torn-tail recovery);
  `transcript_writer`: batched, compressed, fsynced appends to it.
- `prices` (+ `prices.toml`): dated prices, the cost of an attempt, the worst case of a call.
- `estimate`: calls, tokens, dollars and least wall time of a manifest, offline; `job_cost`: what one
  job costs given how its trace behaves (answer schedule and prompt caching included); `samples`: how
  traces behave (a stated prior, or finished jobs of ledgers).
- `audit`: per-problem summary, CSV export, and `verify` (every dollar recomputed).
"""
