"""Engine: runs a sweep. Lanes admit calls under limits and the spend cap, attempts stream through
an adapter, consumers cut traces, the pipeline turns jobs into calls and graded snapshots, and the
sweep drives it all and writes the ledger.

May import: `runner.types`, `runner.errors`, `runner.config`, `runner.tasks`, `runner.tokens`,
`runner.providers`, `runner.ledger`. Never `runner.ui` or `runner.cli`: the engine publishes
snapshots (`snapshots`) that a display renders. Never `anytime_sim` except in `simulator`, which
starts it for a run.

- `limits`: one limiter per lane (concurrency, RPM, TPM, pauses, adaptation); `meter`: rate counters.
- `retry`: when and after how long to try again; `spend`: the spend cap.
- `attempt`: one HTTP attempt (send, stream, settle) and its ledger record; `lane`: a call through its attempts.
- `consumers`: what a call's text goes into; `pipeline`: one job, start to finish; `sweep`: the run.
- `answers`: when a trace's forced answers are sent (at each cut, or after the trace); `prefixes`:
  a group's first trace warms its shared preface in the provider's cache.
- `snapshots`: the facts displays render; `simulator`: starting the built-in simulator.
- `preflight`: the one check of a manifest before anything is spent (run, validate, estimate, doctor).
- `transcribe`: what each call sent and streamed, as transcript records (off: `NO_TRANSCRIPTS`).
"""
