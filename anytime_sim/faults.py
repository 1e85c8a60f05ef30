"""Fault and transport-mode selection, deterministic per request fingerprint and attempt.

Modes come from ``SimConfig.modes`` and the test-only ``x-sim-mode`` request header
(comma-separated). Fault modes force one fault; transport modes change how bytes go out:

- faults: ``error_5xx``, ``error_5xx_noretry`` (``x-should-retry: false``), ``overloaded``
  (503 / Anthropic 529), ``rate_limit`` (a 429 whatever the buckets say), ``drop`` (connection
  cut mid-stream), ``malformed`` (a chunk that is not JSON), ``stall`` (no bytes for
  ``stall_seconds`` mid-stream), ``stall_first`` (no bytes before the status line),
  ``error_in_stream`` (an error event after the 200), and three that model how providers fail
  under load:

  - ``rate_limit_storm``: the key's shared capacity is taken (another client of the same
    organisation, or the provider shedding load), so for ``storm_seconds`` every request of the
    key gets a 429 with ``retry-after`` set to the time left in the storm; the request that
    sets it off is the first of them. Nothing in a storm is served or billed.
  - ``trickle``: part-way through, the model slows to one chunk every ``trickle_seconds`` (an
    overloaded replica): the bytes keep coming, far below the model's speed, to the end.
  - ``reset``: the connection is reset (TCP RST) after the request arrived and before any byte
    of the response, as a load balancer or a crashed replica does; the client sees
    "connection reset by peer". Nothing is served or billed.
- key: ``bad_key`` (the key is refused with a 401 whose message quotes it back, as OpenAI's
  "Incorrect API key provided: sk-…" once did and some compatible hosts still do);
- transport: ``split`` (events cut across writes at arbitrary bytes), ``crlf`` (``\\r\\n`` line
  endings), ``comments`` (``: keep-alive`` / ``: ping - …`` comment lines), ``unknown_fields``,
  ``done_no_finish`` (``[DONE]`` with no finish chunk, as an interrupted llama.cpp stream),
  ``interrupt`` (the stream stops, as llama-cpp-python's do, when the next request for the same
  model arrives; Chat Completions then sends ``[DONE]`` with no finish chunk).
"""

from __future__ import annotations

import hashlib

import msgspec

FAULT_MODES = (
    "error_5xx",
    "error_5xx_noretry",
    "overloaded",
    "rate_limit",
    "drop",
    "malformed",
    "stall",
    "stall_first",
    "error_in_stream",
    "rate_limit_storm",
    "trickle",
    "reset",
)
KEY_MODES = ("bad_key",)
TRANSPORT_MODES = ("split", "crlf", "comments", "unknown_fields", "done_no_finish", "interrupt")
ALL_MODES = FAULT_MODES + KEY_MODES + TRANSPORT_MODES
BEFORE_STREAM = (
    "error_5xx",
    "error_5xx_noretry",
    "overloaded",
    "rate_limit",
    "stall_first",
    "rate_limit_storm",
    "reset",
)


class FaultRates(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Fault injection rates in [0, 1], applied per request, deterministic per request fingerprint.

    The same fields as a manifest's ``[simulator.faults]`` table. Seconds are real seconds (not
    scaled by ``time_scale``).
    """

    error_5xx: float = 0.0
    drop_mid_stream: float = 0.0
    malformed_chunk: float = 0.0
    stall: float = 0.0
    stall_seconds: float = 30.0
    rate_limit_storm: float = 0.0
    storm_seconds: float = 2.0
    trickle: float = 0.0
    trickle_seconds: float = 0.5
    reset: float = 0.0
    # batch interfaces: a request inside a batch that errors (a 500 in its result), or that the
    # batch's window runs out on before it is processed (``expired``)
    batch_error: float = 0.0
    batch_expire: float = 0.0


class FaultPlan(msgspec.Struct, frozen=True):
    """The fault (if any) one request will suffer.

    Attributes:
        kind: a fault mode name, or "" for none.
        at: where in the stream a mid-stream fault strikes, as a fraction of the pieces.
        status: the HTTP status of a before-stream error.
        should_retry: the ``x-should-retry`` header to send (None: no header).
        stall_s: how long a stall lasts, or the gap between a trickle's chunks.
    """

    kind: str = ""
    at: float = 0.5
    status: int = 500
    should_retry: bool | None = None
    stall_s: float = 0.0


def parse_modes(header: str | None, configured: tuple[str, ...] = ()) -> frozenset[str]:
    """Mode names from a header value plus the configured ones; unknown names are an error."""
    names = {m.strip() for m in (header or "").split(",") if m.strip()} | set(configured)
    unknown = names - set(ALL_MODES)
    if unknown:
        raise ValueError(f"unknown x-sim-mode {', '.join(sorted(unknown))} (known: {', '.join(ALL_MODES)})")
    return frozenset(names)


def draw(*parts: object) -> float:
    """A number in [0, 1) fixed by ``parts`` (the same parts draw the same number)."""
    return _unit(*parts)


def _unit(*parts: object) -> float:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def plan_fault(
    rates: FaultRates, error_in_stream: float, modes: frozenset[str], fingerprint: str, attempt: int
) -> FaultPlan:
    """Choose this attempt's fault: a forced mode first, else a draw against the rates."""
    at = 0.2 + 0.6 * _unit(fingerprint, attempt, "where")
    forced = next((m for m in FAULT_MODES if m in modes), None)
    if forced is not None:
        return _plan(forced, at, rates, fingerprint, attempt)
    roll = _unit(fingerprint, attempt, "fault")
    for kind, rate in (
        ("error_5xx", rates.error_5xx),
        ("drop", rates.drop_mid_stream),
        ("malformed", rates.malformed_chunk),
        ("stall", rates.stall),
        ("error_in_stream", error_in_stream),
        # after the older kinds, so that adding these left every earlier draw as it was
        ("reset", rates.reset),
        ("trickle", rates.trickle),
        ("rate_limit_storm", rates.rate_limit_storm),
    ):
        if roll < rate:
            return _plan(kind, at, rates, fingerprint, attempt)
        roll -= rate
    return FaultPlan()


def _plan(kind: str, at: float, rates: FaultRates, fingerprint: str, attempt: int) -> FaultPlan:
    pick = _unit(fingerprint, attempt, "status")
    if kind == "error_5xx":
        status = (500, 502, 503)[int(pick * 3)]
        # a random fault never says "do not retry": that would make injected faults lose jobs
        return FaultPlan(kind=kind, at=at, status=status, should_retry=True if pick < 0.5 else None)
    if kind == "error_5xx_noretry":
        return FaultPlan(kind=kind, at=at, status=500, should_retry=False)
    if kind == "overloaded":
        return FaultPlan(kind=kind, at=at, status=503)
    if kind in ("rate_limit", "rate_limit_storm"):
        return FaultPlan(kind=kind, at=at, status=429)
    if kind == "trickle":
        return FaultPlan(kind=kind, at=at, stall_s=rates.trickle_seconds)
    return FaultPlan(kind=kind, at=at, stall_s=rates.stall_seconds)
