"""Results: quality per budget, the Anytime Index, bootstrap intervals, and the report model.

May import: `runner.types`, `runner.errors`, `runner.ledger` (it reads ledgers). Never the engine:
reports read ledgers, not live state. Never the UI: `runner.ui` renders the report model.

- `anytime`: curves, the Anytime Index, bootstrap and paired intervals.
- `report`: the report model built from run folders.
- `transcripts`: the transcripts reader API (one job's calls joined with the ledger), which the
  viewer and the export use.
- `run_state`: one read of a ledger, and whether its run finished, is in progress or was interrupted.
- `traces`, `trace_filter`: every trace as a row (grades per budget, tokens, dollars, failed calls),
  and choosing and ordering them (the viewer's problems table).
"""
