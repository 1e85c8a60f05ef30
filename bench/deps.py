"""Do aiolimiter and orjson earn their place? Each against the product's own code, in one run.

(a) Admission. Ours: `runner.engine.limits.LaneLimiter.acquire` + `Reservation.settle`: a
    concurrency slot, a requests/min bucket and a tokens/min bucket, as every call of a lane does.
    Baselines (aiolimiter 1.x, `AsyncLimiter.acquire`): one bucket alone, and the closest
    aiolimiter gets to a lane: an `AsyncLimiter` for requests, one for tokens and an
    `asyncio.Semaphore` for concurrency.

    - ``free``: capacity available, one task, N admissions back to back; wall µs per admission.
    - ``contended``: K tasks queued at a tokens/min limit that admits R calls/s (the bucket is
      filled first, so every admission waits); CPU µs per admission (user + system of this
      process: waking and re-sleeping waiters included) and the admissions/s reached against R.
      Settles charge what was reserved, so both sides are paced at the same rate. On asyncio's
      loop and, when installed, on uvloop (the loop `anytime run` picks), whose millisecond timers
      make every side poll through the last fraction of a millisecond of each wait.

    Then what a lane needs of its limiter, each tried live on both: give back the tokens a call did
    not use; learn limits and levels from rate-limit headers; pace within the minute (from the
    contended run); not starve a large reservation behind small ones that came later.

(b) Ledger codec, on a realistic record mix (per job: one trace `Attempt`, two `InFlight` of it,
    five answer `Attempt`s, six `Snapshot`s, one `JobDone`; a `RunHeader`, a `Synthesis` and a
    `Note` per 500 jobs). Ours: `runner.ledger.records.encode_line_into` (the writer's append),
    `decode_line` (the reader's per-line decode) and `decode_lines` (one call for a run of lines):
    msgspec, typed. Baseline: orjson, which takes and gives dicts and lists, so the conversion is
    counted: encode = Struct to dict (`msgspec.to_builtins`, or `msgspec.structs.asdict` plus the
    tag through orjson's ``default=``; the faster one is the figure) then `orjson.dumps` with a
    newline; decode = `orjson.loads` then `msgspec.convert(..., Record)` for the typed records the
    product works on (printed for reference: `Struct(**dict)` without validation, orjson's best
    chance at typed records, and plain `orjson.loads`, untyped). ns per record and MB/s of JSON.
    Every encoder's lines are checked to decode back to the same records, and every decoder's
    records to equal them.

Medians over ``--repeats``; ours and the baselines take turns within each repeat, so the load of a
shared machine falls on all of them alike. Quote medians and ratios.

Usage: ``python bench/deps.py [--repeats 5 --loop auto]``. The last line holds
``limiter_ours_us=``, ``limiter_aiolimiter_us=``, ``encode_msgspec_ns=``, ``encode_orjson_ns=``,
``decode_msgspec_ns=``, ``decode_orjson_ns=`` and friends as ``name=value`` pairs.
"""

from __future__ import annotations

import os
import sys

# bench/tokenize.py would shadow the standard library's `tokenize` for a script run from bench/:
# move this folder from the front of the import path to its end
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE] + [_HERE]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import gc  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import typing  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402

import aiolimiter  # noqa: E402  (a baseline: in the bench extra, never imported by the product)
import anyio  # noqa: E402
import msgspec  # noqa: E402
import orjson  # noqa: E402  (a baseline: in the bench extra, never imported by the product)

from runner.engine.limits import LaneLimiter  # noqa: E402
from runner.ledger.records import (  # noqa: E402
    Attempt,
    JobDone,
    Note,
    Record,
    RunHeader,
    Snapshot,
    Synthesis,
    decode_line,
    decode_lines,
    encode_line_into,
    in_flight,
)
from runner.types import RateLimitReading  # noqa: E402

FREE_CALLS = 20_000
TOKENS = 100  # tokens reserved per admission
K_WAITERS = 1_000
PER_WAITER = 2
# admissions/s the contended token bucket allows (30,000 calls/min): a 2 ms wait each. uvloop (libuv)
# keeps timers in whole milliseconds and fires a shorter one at once, so on uvloop every limiter here
# polls through the sub-millisecond rest of each wait (at 4,000/s the loop spun at 100% CPU on every
# side alike); asyncio's loop sleeps it off. Both loops are measured.
RATE = 500
TPM = RATE * TOKENS * 60
HUGE = 10**12  # a limit that never binds


def median(xs: list[float]) -> float:
    return statistics.median(xs)


# ================================================================================================
# (a) admission: ours, the product's limiter as a lane calls it
# ================================================================================================


def ours_limiter(tpm: int, concurrency: int) -> LaneLimiter:
    return LaneLimiter(rpm=HUGE, tpm=tpm, max_concurrency=concurrency)


async def ours_admit(limiter: LaneLimiter, n: int, reserve: int, actual: int) -> None:
    for _ in range(n):
        reservation = await limiter.acquire(reserve)
        reservation.settle(actual)


async def ours_fill(limiter: LaneLimiter, tpm: int) -> None:
    (await limiter.acquire(tpm)).settle(tpm)


# ================================================================================================
# (a) admission: the baselines, aiolimiter alone and composed into the nearest thing to a lane
# ================================================================================================


class AioOneBucket:
    """aiolimiter as it comes: one leaky bucket (here the tokens/min one)."""

    def __init__(self, tpm: float, concurrency: int) -> None:
        self.tokens = aiolimiter.AsyncLimiter(tpm, 60)

    async def admit(self, n: int, reserve: int) -> None:
        tokens = self.tokens
        for _ in range(n):
            await tokens.acquire(reserve)

    async def fill(self, tpm: float) -> None:
        await self.tokens.acquire(tpm)


class AioLaneLike:
    """What a lane would be built of with aiolimiter: requests and tokens buckets, a semaphore.

    It cannot settle: the reserved tokens stay charged whatever the call used.
    """

    def __init__(self, tpm: float, concurrency: int) -> None:
        self.requests = aiolimiter.AsyncLimiter(HUGE, 60)
        self.tokens = aiolimiter.AsyncLimiter(tpm, 60)
        self.slots = asyncio.Semaphore(concurrency)

    async def admit(self, n: int, reserve: int) -> None:
        requests, tokens, slots = self.requests, self.tokens, self.slots
        for _ in range(n):
            await slots.acquire()
            try:
                await requests.acquire(1)
                await tokens.acquire(reserve)
            finally:
                slots.release()  # the call is done at once (ours settles at once too)

    async def fill(self, tpm: float) -> None:
        await self.tokens.acquire(tpm)


AioFactory = Callable[[float, int], AioOneBucket | AioLaneLike]


# ================================================================================================
# (a) the measurements, one function per situation, each side timed the same way
# ================================================================================================


async def timed_wall(run: Callable[[], Awaitable[None]]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    await run()
    return time.perf_counter() - t0


async def free_round() -> dict[str, float]:
    """One repeat of the no-wait case: µs per admission of each side."""
    out: dict[str, float] = {}
    lane = ours_limiter(HUGE, 1)
    out["ours"] = await timed_wall(lambda: ours_admit(lane, FREE_CALLS, TOKENS, TOKENS // 2)) / FREE_CALLS * 1e6
    for name, factory in (("aio_lane", AioLaneLike), ("aio_1bucket", AioOneBucket)):
        aio = factory(HUGE, 1)
        out[name] = await timed_wall(lambda aio=aio: aio.admit(FREE_CALLS, TOKENS)) / FREE_CALLS * 1e6
    return out


async def contended(
    fill: Callable[[], Awaitable[None]], admit: Callable[[], Awaitable[None]]
) -> tuple[float, float, float]:
    """K tasks queue behind a full bucket; returns (CPU µs per admission, admissions/s, CPU busy share)."""
    await fill()
    gc.collect()
    n = K_WAITERS * PER_WAITER
    c0, t0 = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(K_WAITERS):
            tg.start_soon(admit)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return cpu / n * 1e6, n / wall, cpu / wall


async def contended_round() -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float, float]] = {}
    lane = ours_limiter(TPM, K_WAITERS)
    out["ours"] = await contended(lambda: ours_fill(lane, TPM), lambda: ours_admit(lane, PER_WAITER, TOKENS, TOKENS))
    for name, factory in (("aio_lane", AioLaneLike), ("aio_1bucket", AioOneBucket)):
        aio = factory(TPM, K_WAITERS)
        out[name] = await contended(lambda aio=aio: aio.fill(TPM), lambda aio=aio: aio.admit(PER_WAITER, TOKENS))
    return out


# -- what the lane needs, tried on each ---------------------------------------------------------


async def can_refund() -> tuple[str, str]:
    """A call reserved 8,000 of a 10,000-token minute and used 1,000; can the next 8,000 go now?"""
    lane = LaneLimiter(rpm=None, tpm=10_000, max_concurrency=8)
    (await lane.acquire(8_000)).settle(1_000)
    level = lane.stats().tpm_level or 0.0
    with anyio.move_on_after(0.2) as scope:
        (await lane.acquire(8_000)).settle(8_000)
    ours = "no" if scope.cancelled_caught else f"yes (level {level:,.0f} after settle(1000): the next 8,000 go at once)"
    aio = aiolimiter.AsyncLimiter(10_000, 60)
    await aio.acquire(8_000)  # used 1,000: there is no call to say so
    wait_s = (8_000 + 8_000 - 10_000) / (10_000 / 60)
    base = (
        "no" if not aio.has_capacity(8_000) else "yes"
    ) + f" (no call gives capacity back: the next 8,000 waits {wait_s:.0f} s for tokens never used)"
    return ours, base


async def can_learn() -> tuple[str, str]:
    """Limits unknown at start; one response's headers say 500 RPM / 30,000 TPM, 12,000 tokens left."""
    lane = LaneLimiter(rpm=None, tpm=None, max_concurrency=8)
    lane.observe(
        RateLimitReading(limit_requests=500, remaining_requests=499, limit_tokens=30_000, remaining_tokens=12_000)
    )
    s = lane.stats()
    learned = s.rpm_limit == 500 and s.tpm_limit == 30_000 and s.tpm_level is not None and s.tpm_level >= 17_999
    ours = f"yes (rpm_limit={s.rpm_limit}, tpm_limit={s.tpm_limit}, tpm_level={s.tpm_level:,.0f})" if learned else "no"
    public = sorted(n for n in dir(aiolimiter.AsyncLimiter) if not n.startswith("_"))
    base = f"no (needs max_rate up front; public API: {', '.join(public)}: nothing takes a reading)"
    return ours, base


async def big_behind_small() -> tuple[str, str]:
    """A full 60,000 TPM bucket; one call wants 500 tokens, then 40 calls of 10 tokens arrive.

    Returns where the big one was admitted on each side (1 = first, FIFO)."""

    async def order(admit: Callable[[int], Awaitable[None]], fill: Callable[[], Awaitable[None]]) -> tuple[int, float]:
        await fill()
        admitted: list[int] = []
        t0 = time.perf_counter()
        big_at = 0.0

        async def one(tokens: int) -> None:
            nonlocal big_at
            await admit(tokens)
            admitted.append(tokens)
            if tokens == 500:
                big_at = time.perf_counter() - t0

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 500)
            await anyio.sleep(0.01)
            for _ in range(40):
                tg.start_soon(one, 10)
        return admitted.index(500) + 1, big_at

    lane = LaneLimiter(rpm=None, tpm=60_000, max_concurrency=64)

    async def lane_admit(tokens: int) -> None:
        (await lane.acquire(tokens)).settle(tokens)

    pos, at = await order(lane_admit, lambda: ours_fill(lane, 60_000))
    ours = f"{'yes' if pos == 1 else 'no'} (the 500-token call admitted #{pos} of 41 after {at:.2f} s)"
    aio = aiolimiter.AsyncLimiter(60_000, 60)
    pos, at = await order(aio.acquire, lambda: aio.acquire(60_000))
    base = f"{'yes' if pos == 1 else 'no'} (the 500-token call admitted #{pos} of 41 after {at:.2f} s)"
    return ours, base


async def free_rounds(repeats: int) -> dict[str, list[float]]:
    free: dict[str, list[float]] = {k: [] for k in SIDES}
    await free_round()  # warm-up
    for _ in range(repeats):
        for k, v in (await free_round()).items():
            free[k].append(v)
    return free


async def needs() -> dict[str, tuple[str, str]]:
    return {
        "refund unused tokens": await can_refund(),
        "learn limits from headers": await can_learn(),
        "large call not starved": await big_behind_small(),
    }


SIDES = {
    "ours": "ours      LaneLimiter.acquire + Reservation.settle (slot, RPM, TPM)",
    "aio_lane": "baseline  aiolimiter x2 (RPM, TPM) + asyncio.Semaphore",
    "aio_1bucket": "baseline  aiolimiter x1 (one bucket only)",
}


def limiter_section(repeats: int, loop: str, loops: list[str]) -> dict[str, object]:
    """The free case on ``loop``; the contended case on each of ``loops`` (asyncio's loop sleeps
    between admissions; uvloop's rounds timers to whole milliseconds and polls through shorter
    ones); the lane's needs on ``loop``."""

    def run(fn: Callable[..., Awaitable[object]], on: str, *args: object) -> typing.Any:
        return anyio.run(fn, *args, backend_options={"use_uvloop": on == "uvloop"})

    free = run(free_rounds, loop, repeats)
    busy: dict[str, dict[str, list[tuple[float, float, float]]]] = {lp: {k: [] for k in SIDES} for lp in loops}
    for _ in range(repeats):
        for lp in loops:
            for k, v in run(contended_round, lp).items():
                busy[lp][k].append(v)
    f = {k: median(v) for k, v in free.items()}
    c = {lp: {k: median([x[0] for x in v]) for k, v in b.items()} for lp, b in busy.items()}
    r = {lp: {k: median([x[1] for x in v]) for k, v in b.items()} for lp, b in busy.items()}
    u = {lp: {k: median([x[2] for x in v]) for k, v in b.items()} for lp, b in busy.items()}
    print(f"# (a) admission; medians of {repeats}")
    print(f"#   free: {FREE_CALLS:,} admissions back to back, capacity available, {loop} loop: wall us per admission")
    for k, label in SIDES.items():
        print(f"  {label:68s} {f[k]:6.2f} us")
    print(
        f"  ratio aiolimiter / ours: {f['aio_lane'] / f['ours']:.2f} (lane-like), "
        f"{f['aio_1bucket'] / f['ours']:.2f} (one bucket)"
    )
    for lp in loops:
        print(
            f"#   contended, {lp} loop: {K_WAITERS:,} tasks x {PER_WAITER} behind a full bucket that admits "
            f"{RATE:,}/s: CPU us per admission, admissions/s, CPU busy"
        )
        for k, label in SIDES.items():
            print(f"  {label:68s} {c[lp][k]:6.1f} us  {r[lp][k]:5,.0f}/s ({r[lp][k] / RATE:.3f})  busy {u[lp][k]:4.0%}")
        print(
            f"  ratio aiolimiter / ours: {c[lp]['aio_lane'] / c[lp]['ours']:.2f} (lane-like), "
            f"{c[lp]['aio_1bucket'] / c[lp]['ours']:.2f} (one bucket)"
        )
    found = run(needs, loop)
    first = loops[0]
    pace = tuple(
        f"{'yes' if abs(r[first][k] / RATE - 1) < 0.05 else 'no'} "
        f"({r[first][k] / RATE:.3f} of the drain rate, from a full bucket)"
        for k in ("ours", "aio_lane")
    )
    found = {**dict(list(found.items())[:2]), "pace within the minute": pace, **dict(list(found.items())[2:])}
    print("# what a lane needs of its limiter, tried live")
    for need, (o, b) in found.items():
        print(f"  {need:26s} ours:       {o}\n  {'':26s} aiolimiter: {b}")
    print(
        "  (and only ours has: a lane-wide pause on a 429's Retry-After, the AIMD concurrency cap, "
        "limits unknown until learned, stats for the dashboard)"
    )
    fields: dict[str, object] = {
        "limiter_ours_us": round(f["ours"], 2),
        "limiter_aiolimiter_us": round(f["aio_lane"], 2),
        "limiter_aiolimiter_1bucket_us": round(f["aio_1bucket"], 2),
        "limiter_ratio": round(f["aio_lane"] / f["ours"], 2),
    }
    for lp in loops:
        pre = "contended" if lp == first else f"contended_{lp}"
        fields |= {
            f"{pre}_ours_us": round(c[lp]["ours"], 1),
            f"{pre}_aiolimiter_us": round(c[lp]["aio_lane"], 1),
            f"{pre}_aiolimiter_1bucket_us": round(c[lp]["aio_1bucket"], 1),
            f"{pre}_ratio": round(c[lp]["aio_lane"] / c[lp]["ours"], 2),
        }
    fields |= {"pace_ours": round(r[first]["ours"] / RATE, 3), "pace_aiolimiter": round(r[first]["aio_lane"] / RATE, 3)}
    fields |= {
        "refund_ours": found["refund unused tokens"][0].split()[0],
        "refund_aiolimiter": found["refund unused tokens"][1].split()[0],
        "learn_ours": found["learn limits from headers"][0].split()[0],
        "learn_aiolimiter": found["learn limits from headers"][1].split()[0],
        "fifo_ours": found["large call not starved"][0].split()[0],
        "fifo_aiolimiter": found["large call not starved"][1].split()[0],
    }
    return fields


# ================================================================================================
# (b) ledger codec: the record mix
# ================================================================================================


def record_mix(jobs: int) -> list[Record]:
    """Records as a sweep writes them (see the module docstring)."""
    manifest: dict[str, object] = {
        "name": "bench",
        "models": [{"key": "reasoner", "provider": "openai", "model": "o4-mini", "rpm": 500, "tpm": 200_000}],
        "datasets": [{"name": "aime", "split": "2024"}],
        "methods": ["cot", "pdp"],
        "budgets": [256, 512, 1024, 2048, 4096, 8192],
        "samples": 4,
    }
    prices: dict[str, dict[str, object]] = {"reasoner": {"input": 1.1, "cached_input": 0.275, "output": 4.4}}
    out: list[Record] = []
    for job in range(jobs):
        job_id = f"{job:016x}"
        if job % 500 == 0:
            out.append(
                RunHeader(
                    run_id=f"run{job}",
                    tool_version="0.1.0",
                    started_at=1.79e9 + job,
                    manifest_path="manifests/bench.toml",
                    manifest_sha256="ab" * 32,
                    manifest=manifest,
                    prices=prices,
                    resumed=job > 0,
                )
            )
            out.append(
                Synthesis(
                    key=f"{job:032x}",
                    model="reasoner",
                    dataset="aime",
                    method="pdp",
                    pool_problem_ids=[f"p{i}" for i in range(8)],
                    examples=[{"problem_id": f"p{i}", "budget": 512, "score": i % 2} for i in range(8)],
                    text="Prefer short derivations; check the remainder step. " * 6,
                )
            )
            out.append(Note(at=1.79e9 + job, kind="encoding_fallback", message="counting reasoner with o200k_base"))
        trace = _attempt(job * 8, job_id, "trace")
        out.append(in_flight(msgspec.structs.replace(trace, status="ok", output_tokens=None, usd=trace.usd / 3)))
        out.append(in_flight(msgspec.structs.replace(trace, output_tokens=None, usd=trace.usd * 2 / 3)))
        out.append(trace)
        out += [_attempt(job * 8 + a, job_id, "answer") for a in range(1, 6)]
        out += [
            Snapshot(
                job_id=job_id,
                instance="i0",
                model="reasoner",
                dataset="aime",
                problem_id=f"2024-I-{job % 15 + 1}",
                method="cot",
                sample=job % 4,
                budget=256 << b if b < 5 else None,
                tokens=min(256 << b, 6000),
                answer=str(job * 7 % 1000),
                score=float((job + b) % 2),
                exact=None,
                reused=b == 4,
            )
            for b in range(6)
        ]
        out.append(
            JobDone(
                job_id=job_id,
                instance="i0",
                model="reasoner",
                dataset="aime",
                problem_id=f"2024-I-{job % 15 + 1}",
                method="cot",
                sample=job % 4,
                fidelity="raw",
                trace_tokens=6000,
                trace_finish="stop",
                provider_reasoning_tokens=5800,
            )
        )
    return out


def _attempt(i: int, job_id: str, kind: str) -> Attempt:
    trace = kind == "trace"
    return Attempt(
        call_id=f"{i:016x}",
        job_id=job_id,
        kind=kind,  # type: ignore[arg-type]
        provider="openai",
        model="reasoner",
        attempt=1 + (i % 11 == 0),
        status="ok" if i % 13 else "error",
        budget=None if trace else 256 << (i % 5),
        http_status=200 if i % 13 else 429,
        error_class=None if i % 13 else "rate_limit",
        error=None if i % 13 else "Rate limit reached for o4-mini on tokens per min (TPM)",
        input_tokens=400 + i % 97,
        cached_input_tokens=(i % 3) * 128,
        output_tokens=6000 if trace else 12 + i % 31,
        reasoning_tokens=5800 if trace else 0,
        input_tokens_counted=401 + i % 97,
        output_tokens_counted=6000 if trace else 12 + i % 31,
        reasoning_tokens_counted=5790 if trace else 0,
        priced_from="reported",
        usd=(400 + i % 97) * 1.1e-6 + (6000 if trace else 12 + i % 31) * 4.4e-6,
        started_at=1.79e9 + i * 0.01,
        latency_s=0.5 + i % 7 / 10,
        ttft_s=0.2 + i % 5 / 100,
        request_id=f"req_{i:024x}",
    )


# ================================================================================================
# (b) ledger codec: ours, the product's codec
# ================================================================================================


def ours_encode(records: list[Record]) -> bytearray:
    buffer = bytearray()
    for record in records:
        encode_line_into(record, buffer)
    return buffer


def ours_decode_each(lines: list[bytes]) -> list[Record]:
    return [decode_line(line) for line in lines]


def ours_decode_lines(data: bytes) -> list[Record]:
    return decode_lines(data)


# ================================================================================================
# (b) ledger codec: the baseline, orjson with the conversions it needs
# ================================================================================================

_TAGS = {cls: cls.__struct_config__.tag for cls in typing.get_args(Record)}
_NL = orjson.OPT_APPEND_NEWLINE


def _struct_to_dict(obj: object) -> dict[str, object]:
    """orjson's ``default=`` hook: a record as a tagged dict."""
    tag = _TAGS.get(type(obj))
    if tag is None:
        raise TypeError(f"not a ledger record: {type(obj).__name__}")
    return {"type": tag, **msgspec.structs.asdict(obj)}  # type: ignore[arg-type]


def orjson_encode_builtins(records: list[Record]) -> bytearray:
    buffer = bytearray()
    dumps, to_builtins = orjson.dumps, msgspec.to_builtins
    for record in records:
        buffer += dumps(to_builtins(record), option=_NL)
    return buffer


def orjson_encode_asdict(records: list[Record]) -> bytearray:
    buffer = bytearray()
    dumps = orjson.dumps
    for record in records:
        buffer += dumps(record, default=_struct_to_dict, option=_NL)
    return buffer


def orjson_decode_each(lines: list[bytes]) -> list[Record]:
    loads, convert = orjson.loads, msgspec.convert
    return [convert(loads(line), Record) for line in lines]  # type: ignore[arg-type]


def orjson_decode_lines(data: bytes) -> list[Record]:
    loads, convert = orjson.loads, msgspec.convert
    return [convert(loads(line), Record) for line in data.splitlines()]  # type: ignore[arg-type]


_BY_TAG = {tag: cls for cls, tag in _TAGS.items()}


def _dict_to_struct(d: dict[str, typing.Any]) -> Record:
    """orjson's best chance at typed records: build the Struct from the dict, unvalidated."""
    cls = _BY_TAG[d.pop("type")]
    return cls(**d)  # type: ignore[no-any-return]


def orjson_decode_unchecked(lines: list[bytes]) -> list[Record]:
    loads = orjson.loads
    return [_dict_to_struct(loads(line)) for line in lines]


def orjson_decode_untyped(lines: list[bytes]) -> list[object]:
    loads = orjson.loads
    return [loads(line) for line in lines]


# ================================================================================================
# (b) the measurements
# ================================================================================================


def timed_ns(fn: Callable[[], object], n: int) -> float:
    gc.collect()
    t0 = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - t0) / n


def codec_section(repeats: int, jobs: int) -> dict[str, object]:
    records = record_mix(jobs)
    n = len(records)
    data = bytes(ours_encode(records))
    lines = data.splitlines(keepends=True)
    mb = len(data) / 1e6
    # both sides must do the same job: every encoding decodes back to the same records
    for encode in (ours_encode, orjson_encode_builtins, orjson_encode_asdict):
        assert decode_lines(bytes(encode(records))) == records, encode.__name__
    assert orjson_decode_each(lines) == records and orjson_decode_lines(data) == records
    assert ours_decode_each(lines) == records and orjson_decode_unchecked(lines) == records
    same_bytes = bytes(orjson_encode_asdict(records)) == data
    cases: dict[str, Callable[[], object]] = {
        "encode_msgspec": lambda: ours_encode(records),
        "encode_orjson_builtins": lambda: orjson_encode_builtins(records),
        "encode_orjson_asdict": lambda: orjson_encode_asdict(records),
        "decode_msgspec": lambda: ours_decode_lines(data),
        "decode_orjson": lambda: orjson_decode_lines(data),
        "decode_line_msgspec": lambda: ours_decode_each(lines),
        "decode_line_orjson": lambda: orjson_decode_each(lines),
        "decode_orjson_unchecked": lambda: orjson_decode_unchecked(lines),
        "decode_orjson_untyped": lambda: orjson_decode_untyped(lines),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():  # warm-up
        fn()
    for _ in range(repeats):
        for k, fn in cases.items():
            times[k].append(timed_ns(fn, n))
    t = {k: median(v) for k, v in times.items()}
    best_enc = min(("encode_orjson_builtins", "encode_orjson_asdict"), key=t.__getitem__)
    t["encode_orjson"] = t[best_enc]

    def row(label: str, key: str) -> None:
        ns = t[key]
        print(f"  {label:72s} {ns:6.0f} ns/record  {mb * 1e9 / (ns * n):5.0f} MB/s")

    kinds = sorted({type(r).__name__ for r in records})
    print(
        f"# (b) ledger codec: {n:,} records ({', '.join(kinds)}), {len(data) / n:.0f} B/record, {mb:.1f} MB; "
        f"medians of {repeats}; orjson's lines byte-identical to ours: {'yes' if same_bytes else 'no'}"
    )
    row("encode  ours      records.encode_line_into (msgspec encode_into)", "encode_msgspec")
    row("encode  baseline  orjson.dumps(msgspec.to_builtins(r))", "encode_orjson_builtins")
    row("encode  baseline  orjson.dumps(r, default=tag + structs.asdict)", "encode_orjson_asdict")
    row("decode  ours      records.decode_lines (one call, typed)", "decode_msgspec")
    row("decode  baseline  split + orjson.loads + msgspec.convert(Record)", "decode_orjson")
    row("decode  ours      records.decode_line per line (typed)", "decode_line_msgspec")
    row("decode  baseline  orjson.loads + msgspec.convert(Record) per line", "decode_line_orjson")
    row("decode  baseline  orjson.loads + Struct(**dict) per line (no validation)", "decode_orjson_unchecked")
    row("decode  baseline  orjson.loads per line (untyped dicts: not enough)", "decode_orjson_untyped")
    print(
        f"  ratios (orjson / ours): encode {t['encode_orjson'] / t['encode_msgspec']:.2f} "
        f"(best orjson: {best_enc.removeprefix('encode_orjson_')}), "
        f"decode_lines {t['decode_orjson'] / t['decode_msgspec']:.2f}, "
        f"per line {t['decode_line_orjson'] / t['decode_line_msgspec']:.2f}, "
        f"unvalidated per line {t['decode_orjson_unchecked'] / t['decode_line_msgspec']:.2f}, "
        f"untyped per line {t['decode_orjson_untyped'] / t['decode_line_msgspec']:.2f}"
    )
    return {
        "records": n,
        "bytes_per_record": round(len(data) / n),
        "encode_msgspec_ns": round(t["encode_msgspec"]),
        "encode_orjson_ns": round(t["encode_orjson"]),
        "encode_ratio": round(t["encode_orjson"] / t["encode_msgspec"], 2),
        "decode_msgspec_ns": round(t["decode_msgspec"]),
        "decode_orjson_ns": round(t["decode_orjson"]),
        "decode_ratio": round(t["decode_orjson"] / t["decode_msgspec"], 2),
        "decode_line_msgspec_ns": round(t["decode_line_msgspec"]),
        "decode_line_orjson_ns": round(t["decode_line_orjson"]),
        "decode_orjson_unchecked_ns": round(t["decode_orjson_unchecked"]),
        "decode_orjson_untyped_ns": round(t["decode_orjson_untyped"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2_000, help="jobs in the record mix (15 records each)")
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="loop of the free case and the needs; auto: uvloop when installed, as `anytime run` does "
        "(the contended case runs on asyncio's loop, and on uvloop too when it is the loop)",
    )
    args = parser.parse_args()
    if args.loop == "auto":
        try:
            import uvloop  # noqa: F401

            args.loop = "uvloop"
        except ImportError:
            args.loop = "asyncio"
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average {os.getloadavg()[0]:.1f}, "
        f"{args.loop} loop, aiolimiter {_version('aiolimiter')}, msgspec {msgspec.__version__}, "
        f"orjson {orjson.__version__}"
    )
    fields: dict[str, object] = {"loop": args.loop}
    loops = ["asyncio", "uvloop"] if args.loop == "uvloop" else ["asyncio"]
    fields |= limiter_section(args.repeats, args.loop, loops)
    fields |= codec_section(args.repeats, args.jobs)
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    sys.exit(main())
