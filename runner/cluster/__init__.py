"""Many workers, one run: worker processes or Ray actors share a sweep's jobs, limits, spend cap
and ledger through one coordinator (`coordinator`). The transport is an interface (`channel`):
a Unix socket between the processes of one machine (`processes`), TCP between Ray actors
(`ray_backend`, the only module that imports ray).

May import: types, errors, config, tasks, tokens, providers, ledger, engine. Never: ui, cli.
The engine never imports it: a sweep is handed a driver (`runner.engine.sweep.Driver`).
"""
