"""Face (rendering): the dashboard, tables, plots and the one set of number formatters.

May import anything of the product except `runner.cli` and the viewer. Renders what the other
parts publish; decides nothing.

- `format`: numbers, dollars, tokens and durations, one way everywhere.
- `dashboard`: the live rich dashboard and the plain line log.
- `report`, `report_files`, `plot`: the report's tables, files and figure.
- `estimate`, `ledger`: the estimate and the ledger summary as tables.
- `view/`: `anytime view`, the run viewer served on 127.0.0.1 (its own import rules).
"""
