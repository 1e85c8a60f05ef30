"""Face (the run viewer): `anytime view`, a local web page over the run folders of a ledger folder.

May import `runner.analysis`, `runner.ledger`, `runner.config` (to count a run's planned jobs and
find its problems), `runner.errors`, `runner.types` and `runner.ui.format`. Never the engine, the
providers or the simulator: the viewer reads ledgers (and transcripts), it never drives a run.
Only `runner.cli.view` imports it.

- `catalog`: which run folders are shown, and their ids in URLs.
- `models`: one ledger read turned into the report, the trace rows and the curves (cached by the
  ledger's size and modification time, so a run in progress is re-read when it grows).
- `payloads`: the JSON each endpoint serves.
- `problems`: a run's problems as its manifest's dataset files state them (statement, gold).
- `transcripts`: the adapter to the transcripts reader.
- `app`: the aiohttp application (routes, errors as JSON); `server`: serving it on 127.0.0.1.
- `static/`: the page (HTML, CSS, and the JS that draws the SVG charts), shipped in the package.
"""
