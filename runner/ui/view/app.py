"""The viewer's aiohttp application: the page, its assets, and the JSON endpoints.

    GET /                                  the page (one HTML file; the JS routes by the URL's #)
    GET /static/{name}                     its CSS and JS, from the package
    GET /api/runs                          every run shown: state, spend, progress, Anytime Index
    GET /api/runs/{run}                    one run: report cells, curves with bands, notes, manifest
    GET /api/runs/{run}/traces?...         the problems table (filters: `runner.analysis.trace_filter`)
    GET /api/runs/{run}/jobs/{job}         one trace: cuts, answers, grades, calls, transcript
    GET /api/compare?a=RUN&b=RUN[&a_cell=&b_cell=]   two runs (or cells) paired by problem

An error is JSON ``{"error": message}`` with a 4xx status (5xx for a bug), never a stack trace;
the message also goes to the terminal once. Ledger reading runs in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import msgspec
from aiohttp import web

from runner.analysis.trace_filter import parse_filter
from runner.errors import AnytimeError, ConfigError
from runner.ui.view import payloads
from runner.ui.view.catalog import RunCatalog, ViewError
from runner.ui.view.models import ModelCache, RunModel

STATIC = {
    "index.html": "text/html",
    "style.css": "text/css",
    **{
        f"{name}.js": "text/javascript"
        for name in ("charts", "common", "page-runs", "page-run", "page-problems", "page-trace", "page-compare", "app")
    },
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CATALOG = web.AppKey("catalog", RunCatalog)
CACHE = web.AppKey("cache", ModelCache)
LOG: web.AppKey[Callable[[str], None]] = web.AppKey("log")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status, content_type="application/json")


def _asset(name: str) -> bytes:
    return resources.files("runner.ui.view").joinpath("static", name).read_bytes()


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into one clear JSON message (and one line on the terminal)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except ViewError as exc:
        status, message = exc.status, exc.message
    except ConfigError as exc:
        status, message = 400, str(exc)
    except AnytimeError as exc:
        status, message = 422, str(exc)
    except Exception as exc:  # a bug of ours: still one line, never a stack trace in the page
        status, message = 500, f"internal error ({type(exc).__name__}): {exc}"
    request.app[LOG](f"{request.path_qs}: {message}")
    return _json({"error": message, "status": status}, status)


async def index(_request: web.Request) -> web.Response:
    return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise ViewError(404, f"no asset {name!r}")
    return web.Response(body=_asset(name), content_type=STATIC[name], charset="utf-8")


async def _model(request: web.Request, run_id: str) -> tuple[str, RunModel]:
    path = request.app[CATALOG].path_of(run_id)
    return run_id, await asyncio.to_thread(request.app[CACHE].get, path)


async def runs(request: web.Request) -> web.Response:
    catalog, cache = request.app[CATALOG], request.app[CACHE]
    shown = []
    for run_id, path in catalog.entries().items():
        try:
            model = await asyncio.to_thread(cache.get, path)
            shown.append(payloads.run_summary(run_id, model))
        except ViewError as exc:
            request.app[LOG](exc.message)  # once per message: the list is polled
            shown.append(payloads.broken_run(run_id, path, exc.message))
    where = str(catalog.ledgers) if not catalog.runs else None
    return _json({"runs": shown, "ledgers": where, "problems": catalog.startup_problems()})


async def run(request: web.Request) -> web.Response:
    run_id, model = await _model(request, request.match_info["run"])
    return _json(await asyncio.to_thread(payloads.run_detail, run_id, model))


async def traces(request: web.Request) -> web.Response:
    _, model = await _model(request, request.match_info["run"])
    query = dict(request.query)
    limit = query.pop("limit", "")
    chosen = parse_filter(query)
    shown = int(limit) if limit.isdigit() else payloads.ROWS_SHOWN
    return _json(await asyncio.to_thread(payloads.traces, model, chosen, shown))


async def job(request: web.Request) -> web.Response:
    _, model = await _model(request, request.match_info["run"])
    return _json(await asyncio.to_thread(payloads.job, model, request.match_info["job"]))


async def compare(request: web.Request) -> web.Response:
    a, b = request.query.get("a", ""), request.query.get("b", "")
    if not a or not b:
        raise ViewError(400, "compare needs two runs: ?a=RUN&b=RUN (the same run twice compares its cells)")
    run_a, run_b = await _model(request, a), await _model(request, b)
    cells = (request.query.get("a_cell"), request.query.get("b_cell"))
    return _json(await asyncio.to_thread(payloads.comparison, run_a, run_b, cells))


async def unknown_api(request: web.Request) -> web.Response:
    raise ViewError(404, f"no endpoint {request.path}")


def build_app(catalog: RunCatalog, log: Callable[[str], None]) -> web.Application:
    """The application serving ``catalog``'s runs; ``log`` gets one line per failed request."""
    app = web.Application(middlewares=[errors_as_json])
    app[CATALOG] = catalog
    app[CACHE] = ModelCache()
    app[LOG] = _once(log)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/runs", runs)
    app.router.add_get("/api/runs/{run}", run)
    app.router.add_get("/api/runs/{run}/traces", traces)
    app.router.add_get("/api/runs/{run}/jobs/{job}", job)
    app.router.add_get("/api/compare", compare)
    app.router.add_get("/api/{tail:.*}", unknown_api)
    return app


def _once(log: Callable[[str], None]) -> Callable[[str], None]:
    """``log`` that says each message once (a page polling a broken run must not flood the terminal)."""
    said: set[str] = set()

    def say(message: str) -> None:
        if message not in said:
            said.add(message)
            log(message)

    return say
