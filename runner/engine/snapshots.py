"""Facts the runner publishes about itself, for displays to render.

The runner never draws anything: `runner.engine.progress` assembles a frozen `RunSnapshot` (one
`LaneSnapshot` per lane) whenever a display asks for one. Displays (`runner.ui`) only read
snapshots; `anytime run --json-progress` prints them as they are.

All times are seconds on the runner's clock. In production that is ``time.time()`` so that a
line log can print wall-clock timestamps; tests may use any clock, since durations are only ever
computed as differences.
"""

from __future__ import annotations

import msgspec


class LaneSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One provider lane at one instant.

    Attributes:
        name: lane name (the provider key in the manifest).
        in_flight: calls currently holding a concurrency slot (never more than ``concurrency_limit``).
        waiting: calls queued for the lane's capacity (concurrency, RPM, TPM or a pause).
        concurrency_limit: calls allowed in flight now (None: unlimited): the adaptive cap, or
            more while calls started before AIMD lowered it finish (their slots are retired as
            they end, and nothing starts until ``in_flight`` is under the cap).
        concurrency_cap: the adaptive (AIMD) cap new calls are admitted under (None: unlimited).
        waiting_for: why calls wait for the lane now: ``"retry-after"``, ``"concurrency"``,
            ``"requests/min"``, ``"tokens/min"`` or ``"spend cap"``; None when nothing waits.
        rpm_limit: requests-per-minute limit in force (None: unknown, not configured nor learned).
        tpm_limit: tokens-per-minute limit in force (None: unknown).
        rpm_used: the share of the requests/min bucket in use now, in [0, 1] (None: no known limit).
            The bucket drains continuously, so this is the current window, never "calls in the
            last 60 s" (which a leaky bucket lets exceed the limit without breaking it).
        tpm_used: the same for tokens/min.
        requests_last_min: requests started in the last 60 s.
        tokens_last_min: tokens charged against TPM in the last 60 s.
        tokens_per_s: output tokens per second over the last seconds (streaming ones included).
        paused_for_s: seconds left before the lane sends again (after a 429's retry-after); 0 = live.
        n429: 429 responses received so far.
        retries: attempts retried so far (any cause).
        errors: failed attempts so far, 429s included.
        errors_by_kind: failed attempts by error class (``rate_limit``, ``server``, ``timeout`` ...).
        failed_calls: calls that failed for good (every attempt failed).
        time_left_s: the lane's estimated time left (`runner.engine.eta`); None until it has a pace.
    """

    name: str
    in_flight: int = 0
    waiting: int = 0
    concurrency_limit: int | None = None
    concurrency_cap: int | None = None
    waiting_for: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    rpm_used: float | None = None
    tpm_used: float | None = None
    requests_last_min: int = 0
    tokens_last_min: int = 0
    tokens_per_s: float = 0.0
    paused_for_s: float = 0.0
    n429: int = 0
    retries: int = 0
    errors: int = 0
    errors_by_kind: tuple[tuple[str, int], ...] = ()
    failed_calls: int = 0
    time_left_s: float | None = None


class BatchSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One provider batch of the run (``run.mode = "batch"``) at one instant.

    Attributes:
        lane: the provider (lane) it went to.
        model: the model key of its requests.
        key: our id of it (the ledger's `BatchEvent.key`).
        batch_id: the provider's id (None while it is being submitted).
        state: ``submitting``, ``submitted``, ``in progress``, ``ended`` or ``expired``.
        status: the provider's own word for its state.
        total: its requests; done: those finished (any outcome); failed: those errored or expired.
        age_s: seconds since it was submitted.
    """

    lane: str
    model: str
    key: str
    batch_id: str | None = None
    state: str = "submitting"
    status: str = ""
    total: int = 0
    done: int = 0
    failed: int = 0
    age_s: float = 0.0


class RunSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The whole run at one instant.

    Attributes:
        run_id: the run's id (its ledger folder name).
        started_at: when this process started the run (runner clock).
        now: when this snapshot was taken (runner clock).
        phase: what the run is doing before its first call ("starting the simulator", ...);
            None once the lanes run.
        jobs_total: jobs in the sweep, including those already done by an earlier run.
        jobs_done: jobs finished, *including* ``jobs_skipped``.
        jobs_skipped: jobs found complete in the ledger on resume.
        jobs_failed: jobs that failed for good in this process.
        calls_done: call attempts finished in this process (any status).
        calls_in_flight: call attempts currently open.
        tokens_in: input tokens so far.
        tokens_out: output tokens so far (reasoning included).
        tokens_per_s: output tokens per second over the last seconds, all lanes.
        usd_spent: dollars spent by this run in all, earlier processes of its ledger included.
        usd_earlier: the part of ``usd_spent`` that earlier processes spent (a resume's past).
        usd_cap: the manifest's spend cap, over the run's total (None: no cap).
        usd_estimate: the expected cost of what this process set out to do (on a resume: of what
            was left), as the estimate priced it before the run (None: not estimated).
        eta_s: seconds until every job is done (`runner.engine.eta`); None until a pace is seen.
        eta_complete: every lane could tell its time left; False: ``eta_s`` is a lower bound (a
            lane whose models reason out of sight has no pace until a first job finishes).
        lanes: one snapshot per provider lane.
        stopping: why the run is winding down (e.g. "Ctrl-C: finishing in-flight calls"); None
            while running normally.
        recent: the last few notable events (retries, 429s, stops), oldest first.
        failures: the last calls that failed for good, one line each, oldest first.
        batches: the run's provider batches (``run.mode = "batch"``): those in flight, then the
            last ended ones; empty in stream mode.
    """

    run_id: str
    started_at: float
    now: float
    jobs_total: int
    phase: str | None = None
    jobs_done: int = 0
    jobs_skipped: int = 0
    jobs_failed: int = 0
    calls_done: int = 0
    calls_in_flight: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_per_s: float = 0.0
    usd_spent: float = 0.0
    usd_earlier: float = 0.0
    usd_cap: float | None = None
    usd_estimate: float | None = None
    eta_s: float | None = None
    eta_complete: bool = True
    lanes: tuple[LaneSnapshot, ...] = ()
    stopping: str | None = None
    recent: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    batches: tuple[BatchSnapshot, ...] = ()

    @property
    def elapsed_s(self) -> float:
        """Seconds since this process started the run."""
        return max(0.0, self.now - self.started_at)

    @property
    def fraction_done(self) -> float:
        """Jobs done as a fraction of all jobs, in [0, 1] (1 for an empty sweep)."""
        if self.jobs_total <= 0:
            return 1.0
        return min(1.0, self.jobs_done / self.jobs_total)

    @property
    def usd_now(self) -> float:
        """Dollars spent by this process (the run's total less what earlier processes spent)."""
        return max(0.0, self.usd_spent - self.usd_earlier)

    @property
    def n429(self) -> int:
        """429 responses over all lanes."""
        return sum(lane.n429 for lane in self.lanes)

    @property
    def retries(self) -> int:
        """Retried attempts over all lanes."""
        return sum(lane.retries for lane in self.lanes)

    @property
    def finished(self) -> bool:
        """Every job is done."""
        return self.jobs_done >= self.jobs_total
