"""Facts the runner publishes about itself, for displays to render.

The runner never draws anything: each lane offers ``stats()`` returning a frozen `LaneSnapshot`
(as anyio's ``CapacityLimiterStatistics`` does), and the scheduler assembles a `RunSnapshot`
whenever a display asks for one. Displays (`runner.progress`) only read snapshots.

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
        rpm_limit: requests-per-minute limit in force (None: unlimited).
        tpm_limit: tokens-per-minute limit in force (None: unlimited).
        requests_last_min: requests started in the last 60 s.
        tokens_last_min: tokens charged against TPM in the last 60 s.
        paused_for_s: seconds left before the lane sends again (after a 429's retry-after); 0 = live.
        n429: 429 responses received so far.
        retries: attempts retried so far (any cause).
        errors: calls that failed for good.
    """

    name: str
    in_flight: int = 0
    waiting: int = 0
    concurrency_limit: int | None = None
    concurrency_cap: int | None = None
    waiting_for: str | None = None
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    requests_last_min: int = 0
    tokens_last_min: int = 0
    paused_for_s: float = 0.0
    n429: int = 0
    retries: int = 0
    errors: int = 0


class RunSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The whole run at one instant.

    Attributes:
        run_id: the run's id (its ledger folder name).
        started_at: when this process started the run (runner clock).
        now: when this snapshot was taken (runner clock).
        jobs_total: jobs in the sweep, including those already done by an earlier run.
        jobs_done: jobs finished, *including* ``jobs_skipped``.
        jobs_skipped: jobs found complete in the ledger on resume (done instantly, so they are
            left out of the ETA's pace).
        calls_done: call attempts finished in this process (any status).
        calls_in_flight: call attempts currently open.
        tokens_in: input tokens so far.
        tokens_out: output tokens so far (reasoning included).
        tokens_per_s: output tokens per second over a recent window (see `RateMeter`).
        usd_spent: dollars spent so far by this run (earlier runs of the ledger included).
        usd_cap: the manifest's spend cap (None: no cap).
        usd_estimate: the pre-run estimate of the whole sweep's cost (None: not estimated).
        lanes: one snapshot per provider lane.
        stopping: why the run is winding down (e.g. "Ctrl-C: finishing in-flight calls"); None
            while running normally.
        recent: the last few notable events (retries, 429s, spend cap), oldest first.
    """

    run_id: str
    started_at: float
    now: float
    jobs_total: int
    jobs_done: int = 0
    jobs_skipped: int = 0
    calls_done: int = 0
    calls_in_flight: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_per_s: float = 0.0
    usd_spent: float = 0.0
    usd_cap: float | None = None
    usd_estimate: float | None = None
    lanes: tuple[LaneSnapshot, ...] = ()
    stopping: str | None = None
    recent: tuple[str, ...] = ()

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
    def n429(self) -> int:
        """429 responses over all lanes."""
        return sum(lane.n429 for lane in self.lanes)

    @property
    def retries(self) -> int:
        """Retried attempts over all lanes."""
        return sum(lane.retries for lane in self.lanes)

    def eta_s(self) -> float | None:
        """Seconds until every job is done at this process's pace so far.

        Skipped (resumed) jobs took no time, so only jobs run here set the pace. Returns None
        until one such job has finished, and 0.0 once nothing remains.
        """
        remaining = self.jobs_total - self.jobs_done
        if remaining <= 0:
            return 0.0
        ran = self.jobs_done - self.jobs_skipped
        if ran <= 0 or self.elapsed_s <= 0:
            return None
        return self.elapsed_s / ran * remaining
