"""Dialect not implemented yet."""

from __future__ import annotations

from aiohttp import web


async def handle(request: web.Request) -> web.StreamResponse:
    return web.json_response({"error": {"message": "not implemented yet in the simulator"}}, status=501)
