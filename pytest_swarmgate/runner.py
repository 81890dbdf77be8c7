"""One review from diff text to RunResult, shared by the session gate and the fixture.

Imported only when a review is wanted: it pulls in unidiff and, through the voter, anthropic.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from dataclasses import dataclass
from typing import Any, Coroutine, TypeVar

import pytest

from .configuration import GateSettings
from .core import diff
from .core.cache import VoteCache, all_cached, implementation_name
from .core.control import OnProgress, RunControl
from .core.engine import ReviewStats, review, run_sync
from .core.held import held_changes
from .core.model import NotReviewed, RunResult, Section, SectionResult, Stopped
from .core.voters import MissingCredentials

T = TypeVar("T")
# Below about 1,000 tokens of section (plus the policy) a model may not cache the prefix at all
# (each model has a minimum cacheable length), so a prewarm call would buy nothing.
PREWARM_MIN_CHARS = 4000


@dataclass(frozen=True)
class Plan:
    """What a run will review: known before any call is made."""

    source: str
    diff_sha256: str
    sections: tuple[Section, ...]
    not_reviewed: tuple[NotReviewed, ...]
    held: tuple[str, ...] = ()
    released: tuple[str, ...] = ()


def read_source(
    config: pytest.Config, diff_arg: str | None, base: str | None, stdin: bytes | None = None
) -> tuple[str, str]:
    """(label, text) of the diff to review; a problem is a one-line UsageError."""
    try:
        if diff_arg == "-" and stdin is not None:
            return "stdin", diff.decode(stdin)
        if diff_arg:
            label = "stdin" if diff_arg == "-" else diff_arg
            path = diff_arg if diff_arg == "-" else str(config.invocation_params.dir / diff_arg)
            return label, diff.read_diff_file(path)
        if base:
            return f"git diff {base}...HEAD", diff.git_diff(base, config.invocation_params.dir)
    except diff.DiffError as exc:
        raise pytest.UsageError(f"swarmgate: {exc}") from None
    raise pytest.UsageError(
        "swarmgate: no diff to review: give --swarm-diff=PATH, --swarm-diff=- (stdin) or --swarm-base REF"
        " (or set swarm_diff / swarm_base in the ini file)"
    )


def plan(config: pytest.Config, settings: GateSettings, source: str, text: str) -> Plan:
    """Split the diff into sections and let hooks filter them."""
    try:
        sections, not_reviewed = diff.parse_sections(
            text, budget=settings.section_budget, include=settings.include, exclude=settings.exclude
        )
    except diff.DiffError as exc:
        raise pytest.UsageError(f"swarmgate: {source}: {exc}") from None
    # Before any filter: excluding a file must not hide that it reconfigures the gate.
    everything, unread = diff.parse_sections(text, budget=max(len(text), 1))
    config.hook.pytest_swarmgate_filter_sections(config=config, sections=sections, not_reviewed=not_reviewed)
    return Plan(
        source=source,
        diff_sha256=diff.diff_sha256(text),
        sections=tuple(sections),
        not_reviewed=tuple(sorted(not_reviewed, key=lambda n: n.path)),
        held=tuple(held_changes(everything, unread)),
    )


def endpoint(client: Any) -> str:
    """Where votes come from, part of the cache key so a stub's votes never serve a real run."""
    return str(getattr(client, "base_url", "") or os.environ.get("ANTHROPIC_BASE_URL", ""))


def check_size(plan: Plan, settings: GateSettings) -> None:
    """A cost ceiling checked before any call: the PR decides how many files it touches."""
    problem = over_ceiling(plan, settings)
    if problem:
        raise pytest.UsageError(f"swarmgate: {problem}")


def over_ceiling(plan: Plan, settings: GateSettings) -> str | None:
    """Why the plan is over --swarm-max-sections, naming where its sections are; None when it fits."""
    if len(plan.sections) <= settings.max_sections:
        return None
    hints = "; ".join(
        f"{count} of {len(plan.sections)} sections under {d}: --swarm-exclude='{d}**'"
        for d, count in diff.crowded_directories([s.path for s in plan.sections])
    )
    return (
        f"{plan.source} has {len(plan.sections)} sections ({len(plan.sections) * settings.n} calls), "
        f"over --swarm-max-sections={settings.max_sections}: narrow it with --swarm-include/--swarm-exclude "
        "or raise the limit" + (f" ({hints})" if hints else "")
    )


def stopped_run(plan: Plan, settings: GateSettings, stopped: Stopped) -> RunResult:
    """The result of a review that could not be completed: no votes, and why."""
    return RunResult(
        plan.source, plan.diff_sha256, settings.panel, settings.k, (), plan.not_reviewed,
        held=plan.held, released=plan.released, stopped=stopped,
    )


def preflight(config: pytest.Config, settings: GateSettings, plan: Plan | None, *, force: bool = False) -> int:
    """Check the credentials, the endpoint and every model with one cheap call each.

    Skipped (returns 0) when the vote cache can serve every vote of `plan`, and for a voter
    without a `preflight` method; otherwise returns the number of models checked. A failure
    is a RunFault with one line naming the cause; missing credentials are a UsageError.
    """
    try:
        client = config.hook.pytest_swarmgate_make_client(config=config, settings=settings)
        cast = config.hook.pytest_swarmgate_make_voter(config=config, settings=settings, client=client)
        check = getattr(cast, "preflight", None)
        cache = VoteCache(settings.cache_dir) if settings.cache_dir else None
        served = plan is not None and all_cached(
            cache, plan.sections, settings.panel, endpoint(client), implementation_name(cast)
        )
        models = [v.model for v in settings.panel]
        if check is None or (served and not force) or (plan is not None and not plan.sections and not force):
            run_sync(_closing(client, _nothing()))
            return 0
        checked: int = run_sync(_closing(client, check(models)))
    except MissingCredentials as exc:
        raise no_credentials(exc) from None
    return checked


async def _nothing() -> None:
    return None


def no_credentials(exc: MissingCredentials) -> pytest.UsageError:
    return pytest.UsageError(
        f"swarmgate: no Anthropic credentials ({exc}): set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN, "
        "or an anthropic profile), or supply a client with the pytest_swarmgate_make_client hook"
    )


def settle_panel(config: pytest.Config, settings: GateSettings) -> GateSettings:
    """Let hooks adjust the panel, then check that K still fits it."""
    panel = list(settings.panel)
    config.hook.pytest_swarmgate_modify_panel(config=config, panel=panel)
    if not panel:
        raise pytest.UsageError("swarmgate: the panel is empty after pytest_swarmgate_modify_panel")
    ids = [v.id for v in panel]
    if len(set(ids)) != len(ids):
        # Votes and cached votes are keyed by voter id: two voters with one id would mix.
        raise pytest.UsageError(f"swarmgate: voter ids repeat in the panel: {', '.join(ids)}")
    if not 1 <= settings.k <= len(panel):
        raise pytest.UsageError(f"swarmgate: threshold K={settings.k} does not fit a panel of {len(panel)}")
    return dataclasses.replace(settings, panel=tuple(panel))


def execute(
    config: pytest.Config, settings: GateSettings, plan: Plan, on_progress: OnProgress | None = None
) -> RunResult:
    """Cast every vote of the plan and judge every section (the panel is already settled).

    A run-wide fault (a rejected key, an unknown model...) stops the calls: the result's
    `stopped` says why, once.
    """
    panel = settings.panel
    if not plan.sections:
        return RunResult(
            plan.source, plan.diff_sha256, tuple(panel), settings.k, (), plan.not_reviewed,
            held=plan.held,
            released=plan.released,
        )
    cache = VoteCache(settings.cache_dir) if settings.cache_dir else None

    def on_section(result: SectionResult) -> None:
        config.hook.pytest_swarmgate_section_result(config=config, result=result)

    stats = ReviewStats()
    try:
        client = config.hook.pytest_swarmgate_make_client(config=config, settings=settings)
        cast = config.hook.pytest_swarmgate_make_voter(config=config, settings=settings, client=client)
        control = RunControl(getattr(cast, "pacer", None), deadline_s=settings.deadline, on_progress=on_progress)
        # The clock starts after set-up: the first `import anthropic` is not review time.
        start = time.monotonic()
        results = run_sync(
            _closing(
                client,
                review(
                    plan.sections,
                    panel,
                    settings.k,
                    cast,
                    concurrency=settings.concurrency,
                    cache=cache,
                    endpoint=endpoint(client),
                    on_section=on_section,
                    prewarm=getattr(cast, "prewarm", None) if settings.prewarm != "off" else None,
                    prewarm_min_chars=PREWARM_MIN_CHARS if settings.prewarm == "auto" else 0,
                    stats=stats,
                    control=control,
                ),
            )
        )
    except MissingCredentials as exc:
        raise no_credentials(exc) from None
    stopped = None
    if control.stopped is not None:
        stopped = Stopped(control.cause, control.stopped, control.sent, control.total)
    return RunResult(
        source=plan.source,
        diff_sha256=plan.diff_sha256,
        panel=tuple(panel),
        k=settings.k,
        results=tuple(results),
        not_reviewed=plan.not_reviewed,
        wall_time_s=time.monotonic() - start,
        prewarm_calls=stats.prewarm_calls,
        prewarm_usage=stats.prewarm_usage,
        notes=tuple(stats.notes),
        held=plan.held,
        released=plan.released,
        stopped=stopped,
    )


async def _closing(client: Any, work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, then close the client in the same event loop that used its connections."""
    try:
        return await work
    finally:
        close = getattr(client, "close", None)
        if close is not None:
            closed = close()
            if inspect.isawaitable(closed):
                await closed
