"""One review from diff text to RunResult, shared by the session gate, the calibration and the fixture.

Imported only when a review is wanted: through the voter it pulls in anthropic.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from . import options
from .core import diff
from .core.budget import ESTIMATE, estimate_input_tokens, oversized_reason
from .core.cache import BUILTIN_CASTER, CacheServes, VoteCache, all_cached, implementation_name, open_cache
from .core.context import build_contexts
from .core.control import Deadline, OnProgress, RunControl
from .core.engine import ReviewStats, review, run_sync
from .core.faults import DeadlineReached, RunFault
from .core.held import ci_files, held_changes
from .core.model import Held, NotReviewed, RunResult, Section, SectionResult, Stopped
from .core.policy import PolicyError, team_policy
from .core.redact import Redactor, credential_problem
from .core.texts import (
    FileSource,
    GitFiles,
    GitTexts,
    NoTexts,
    PatchTexts,
    Reader,
    Texts,
    TreeFiles,
    Unknown,
    merge_base,
    work_tree,
)
from .core.voters import BadCredentials, CastVote, MissingCredentials, profile_directory
from .core.voting import check_voter_ids
from .settings import GateSettings
from .stash import cache_key, deadline_key

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
    held: tuple[Held, ...] = ()
    released: tuple[Held, ...] = ()
    # Notes for the run's report, known before any call (where the context could not come from).
    notes: tuple[str, ...] = ()


def read_source(
    config: pytest.Config, diff_arg: str | None, base: str | None, stdin: bytes | None = None, limit: int | None = None
) -> tuple[str, diff.DiffText]:
    """(label, text) of the diff to review, its pieces each decoded alone; a problem is a one-line UsageError.

    Over `limit` bytes the diff is not read whole: `diff.DiffTooLarge`, which ends the review as incomplete.
    """
    try:
        if diff_arg == "-" and stdin is not None:
            if limit is not None and len(stdin) > limit:
                raise diff.too_large("the diff on stdin", limit)
            return "stdin", diff.DiffText.decode(stdin)
        if diff_arg:
            label = "stdin" if diff_arg == "-" else diff_arg
            path = diff_arg if diff_arg == "-" else str(config.invocation_params.dir / diff_arg)
            return label, diff.read_diff(path, limit)
        if base:
            return f"git diff {base}...HEAD", diff.git_diff_text(base, config.invocation_params.dir, limit)
    except diff.DiffTooLarge:
        raise
    except diff.DiffError as exc:
        raise pytest.UsageError(f"swarmgate: {exc}") from None
    raise pytest.UsageError(
        "swarmgate: no diff to review: give --swarm-diff=PATH, --swarm-diff=- (stdin) or --swarm-base REF"
        " (or set swarm_diff / swarm_base in the ini file)"
    )


def plan(
    config: pytest.Config,
    settings: GateSettings,
    source: str,
    text: str | diff.DiffText,
    *,
    base: str | None = None,
    tree: str | os.PathLike[str] | None = None,
    base_files: Reader | None = None,
) -> Plan:
    """Split the diff into sections and let hooks filter them.

    `base`: the diff is git's `base...HEAD` (full old and new texts from git); `tree`: a
    checkout the patch may apply to (full texts when it does); `base_files`: the files the
    patch applies to, outside any checkout (a calibration fixture's tree). Each lets the held
    check compare what pytest reads, and the context read the files; without them the held
    check judges the hunks alone, more strictly.
    """
    try:
        files = diff.parse_diff(text)
    except diff.DiffError as exc:
        raise pytest.UsageError(f"swarmgate: {source}: {exc}") from None
    sections, not_reviewed = diff.sections_of(
        files, budget=settings.section_budget, include=settings.include, exclude=settings.exclude
    )
    # Before any filter: excluding a file must not hide that it reconfigures the gate.
    everything, unread = diff.sections_of(files)
    config.hook.pytest_swarmgate_filter_sections(config=config, sections=sections, not_reviewed=not_reviewed)
    # Never sent, and held rather than INCONCLUSIVE: `--swarm-on-inconclusive=pass` must not
    # let a pull request skip review by making one hunk too large to read.
    oversized = {s.id: reason for s in sections if (reason := oversized_reason(s, settings.max_section_chars))}
    not_reviewed += [
        NotReviewed(s.id, oversized[s.id], s.old_path, "oversized", s.change) for s in sections if s.id in oversized
    ]
    # Fixture files: one reading serves the held check and the context, each file read once.
    given = None if base_files is None else _patch_texts(base_files, files, everything)
    texts = given if given is not None else _texts(base, tree, everything)
    reviewed = [s for s in sections if s.id not in oversized]
    source_of_context, note = _context_source(settings, base, tree, texts, files, everything, given)
    # A diff over --swarm-max-sections is never sent (over_ceiling stops it): no context to build for it.
    mode = settings.context if len(reviewed) <= settings.max_sections else "off"
    return Plan(
        source=source,
        diff_sha256=diff.diff_sha256(text),
        sections=tuple(build_contexts(reviewed, files, source_of_context, mode, settings.context_budget)),
        not_reviewed=tuple(sorted(not_reviewed, key=lambda n: n.path)),
        held=tuple(
            sorted(
                {
                    *held_changes(
                        everything,
                        unread,
                        texts=texts,
                        ci_files=ci_files(os.environ),
                        policy_files=[settings.policy.path] if settings.policy else [],
                    ),
                    *(Held(i, "oversized", r) for i, r in oversized.items()),
                },
                key=Held.line,
            )
        ),
        notes=(note,) if note and reviewed else (),
    )


def _context_source(
    settings: GateSettings,
    base: str | None,
    tree: str | os.PathLike[str] | None,
    texts: Texts,
    files: list[diff.FileDiff],
    everything: list[Section],
    given: PatchTexts | None = None,
) -> tuple[FileSource, str | None]:
    """Where the voters' context reads files, and a note for the run when it cannot read any.

    With `--swarm-base` the held check's git objects; the `given` files (a fixture's tree); for a
    patch, the checkout's HEAD with the hunks applied in memory (never its working tree, where a
    job may have left secrets); else none.
    """
    if settings.context == "off":
        return NoTexts(), None
    if isinstance(texts, GitTexts):
        return texts, None
    if given is not None:
        return given, None
    if base is not None:
        return NoTexts(), f"context: git cannot tell the merge base of {base}: the voters see the diff only"
    top = work_tree(tree) if tree is not None else None
    if top is None:
        return NoTexts(), (
            "context: no git checkout to read files from (a bare patch): the voters see the diff, the files it "
            "adds and the map of the pull request only"
        )
    return _patch_texts(GitFiles(top, "HEAD", label="checkout HEAD"), files, everything), None


def _patch_texts(reader: Reader, files: list[diff.FileDiff], everything: list[Section]) -> PatchTexts:
    """The old files from `reader`, the new ones made by applying the diff's hunks in memory."""
    return PatchTexts(
        reader,
        everything,
        {f.path: f.change for f in files},
        moves={f.path: f.old_path for f in files if f.old_path},
        diff_paths=[p for f in files for p in (f.path, f.old_path) if p],
    )


def _texts(base: str | None, tree: str | os.PathLike[str] | None, sections: list[Section]) -> Texts:
    """Where the held check finds the full old and new text of a changed file."""
    if base is not None and tree is not None:
        old = merge_base(tree, base)
        return GitTexts(tree, old, "HEAD") if old else NoTexts()
    if tree is not None:
        return PatchTexts(tree, sections, {s.path: s.change for s in sections})
    return NoTexts()


def endpoint(client: Any) -> str:
    """Where votes come from, part of the cache key so a stub's votes never serve a real run."""
    return str(getattr(client, "base_url", "") or os.environ.get("ANTHROPIC_BASE_URL", ""))


def prewarm_min_chars(settings: GateSettings) -> int | None:
    """The shortest section the engine prewarms, None when prewarming is off."""
    return None if settings.prewarm == "off" else PREWARM_MIN_CHARS if settings.prewarm == "auto" else 0


def check_size(plan: Plan, settings: GateSettings) -> None:
    """The cost ceilings checked before any call: the PR decides how many files it touches."""
    problem = over_ceiling(plan, settings)
    if problem:
        raise pytest.UsageError(f"swarmgate: {problem}")


def over_ceiling(plan: Plan, settings: GateSettings) -> str | None:
    """Why the plan is over --swarm-max-sections or --swarm-max-input-tokens, naming where its
    sections are; None when it fits."""
    narrow = "narrow it with --swarm-include/--swarm-exclude or raise the limit"
    if len(plan.sections) > settings.max_sections:
        problem = (
            f"{plan.source} has {len(plan.sections)} sections ({len(plan.sections) * settings.n} calls), "
            f"over --swarm-max-sections={settings.max_sections}: {narrow}"
        )
    else:
        tokens = estimate_input_tokens(plan.sections, settings.panel, prewarm_min_chars(settings))
        if tokens <= settings.max_input_tokens:
            return None
        problem = (
            f"{plan.source} needs about {tokens} input tokens ({len(plan.sections)} sections x "
            f"{settings.n} voters, at {ESTIMATE}), over "
            f"--swarm-max-input-tokens={settings.max_input_tokens}: {narrow}"
        )
    hints = "; ".join(
        f"{count} of {len(plan.sections)} sections under {d}: --swarm-exclude='{d}**'"
        for d, count in diff.crowded_directories([s.path for s in plan.sections])
    )
    return problem + (f" ({hints})" if hints else "")


def stopped_run(plan: Plan, settings: GateSettings, stopped: Stopped) -> RunResult:
    """The result of a review that could not be completed: no votes, and why."""
    return RunResult(
        plan.source,
        plan.diff_sha256,
        settings.panel,
        settings.gate,
        (),
        plan.not_reviewed,
        notes=plan.notes,
        held=plan.held,
        released=plan.released,
        stopped=stopped,
    )


def preflight(config: pytest.Config, settings: GateSettings, plan: Plan | None, *, force: bool = False) -> list[str]:
    """Check the credentials, the endpoint and every model with one cheap call each.

    Skipped (returns []) when the vote cache can serve every vote of `plan`, and for a voter
    without a `preflight` method; otherwise returns what passed for each model (a custom
    voter's `preflight` may return a count instead). A failure is a RunFault with one line
    naming the cause; missing credentials are a UsageError.
    """
    cache, _ = session_cache(config, settings)
    planned = planned_endpoint(config)
    # Asked before any client is built: a run the cache serves whole never imports the SDK.
    if (
        not force
        and plan is not None
        and planned is not None
        and all_cached(
            cache, plan.sections, settings.panel, planned, BUILTIN_CASTER, policy_key(settings), settings.aggregation
        )
    ):
        return []
    choice = hook_voter(config, settings)
    client, cast = choice.client, choice.cast
    try:
        check = getattr(cast, "preflight", None)
        served = plan is not None and all_cached(
            cache,
            plan.sections,
            settings.panel,
            planned or endpoint(client),
            implementation_name(cast),
            policy_key(settings),
            settings.aggregation,
        )
        models = [v.model for v in settings.panel]
        if check is None or (served and not force) or (plan is not None and not plan.sections and not force):
            run_sync(_closing(client, _nothing()))
            return []
        checked: list[str] | int = run_sync(_closing(client, run_deadline(config, settings).bound(check(models))))
    except MissingCredentials as exc:
        raise no_credentials(exc) from None
    except DeadlineReached:
        raise RunFault(f"--swarm-deadline={settings.deadline:g} reached during the preflight", retry=True) from None
    return [f"{checked} model(s)"] if isinstance(checked, int) and checked else list(checked or [])


def session_cache(config: pytest.Config, settings: GateSettings) -> tuple[VoteCache | None, str | None]:
    """The session's one vote cache (and why it is off), shared by the preflight and the review:
    each entry is read once."""
    if cache_key not in config.stash:
        config.stash[cache_key] = open_cache(settings.cache_dir, os.environ)
    return config.stash[cache_key]


DEFAULT_BASE_URL = "https://api.anthropic.com"


def planned_endpoint(config: pytest.Config) -> str | None:
    """The endpoint the built-in client would call, told without building it (nor importing the SDK),
    as the vote cache keys it; None when only a client can tell: a client or voter from another
    plugin's hook, or an anthropic profile, which may name its own base URL."""
    hook = config.pluginmanager.hook
    impls = [*hook.pytest_swarmgate_make_client.get_hookimpls(), *hook.pytest_swarmgate_make_voter.get_hookimpls()]
    if any(getattr(impl.plugin, "__name__", None) != "pytest_swarmgate.plugin" for impl in impls):
        return None
    if os.environ.get("ANTHROPIC_PROFILE") or profile_directory(os.environ) is not None:
        return None
    return os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL


def policy_key(settings: GateSettings) -> str:
    """The sha256 of the team's guidance the voters read, for the vote cache; "" without one."""
    return settings.policy.sha256 if settings.policy else ""


def load_policy(config: pytest.Config, settings: GateSettings, base: str | None) -> GateSettings:
    """The settings with the team's guidance (--swarm-policy) read from the trusted side: under
    `--swarm-base` the merge base's file through git (the checkout is the pull request's), else
    the checkout's (the base checkout of the recipe; were it the pull request's, a change to the
    file is held for a human). A file that cannot be used is a one-line usage error."""
    raw = options.get(config, "policy")
    if not raw:
        return settings
    root = config.rootpath
    given = Path(str(raw))
    try:
        path = (given.resolve().relative_to(root.resolve()) if given.is_absolute() else given).as_posix()
    except ValueError:
        raise pytest.UsageError(f"swarmgate: --swarm-policy={raw}: outside the project ({root})") from None
    try:
        if base is not None:
            old = merge_base(root, base)
            if old is None:
                raise PolicyError(f"--swarm-policy={path}: git cannot tell the merge base of {base} to read it from")
            top = work_tree(root) or str(root)
            source = f"git {base} (merge base)"
            text = GitFiles(top, old, label=source).read(path)
        else:
            source = "checkout"
            text = TreeFiles(root, label=source).read(path)
        policy = team_policy(path, text, source)
    except Unknown as exc:
        raise pytest.UsageError(f"swarmgate: --swarm-policy={path}: {exc}") from None
    except PolicyError as exc:
        raise pytest.UsageError(f"swarmgate: {exc}") from None
    return dataclasses.replace(settings, policy=policy)


def run_deadline(config: pytest.Config, settings: GateSettings) -> Deadline:
    """The session's one deadline, shared by its preflight and its review (it starts at the first call)."""
    if deadline_key not in config.stash:
        config.stash[deadline_key] = Deadline(settings.deadline)
    return config.stash[deadline_key]


async def _nothing() -> None:
    return None


def settle_panel(config: pytest.Config, settings: GateSettings) -> GateSettings:
    """Let hooks adjust the panel, then check that K still fits it."""
    panel = list(settings.panel)
    config.hook.pytest_swarmgate_modify_panel(config=config, panel=panel)
    if not panel:
        raise pytest.UsageError("swarmgate: the panel is empty after pytest_swarmgate_modify_panel")
    try:
        check_voter_ids(panel)
        gate = dataclasses.replace(settings.gate, n=len(panel))  # checks K against the new N
    except ValueError as exc:
        raise pytest.UsageError(f"swarmgate: {exc}") from None
    return dataclasses.replace(settings, panel=tuple(panel), gate=gate)


@dataclass(frozen=True)
class VoterChoice:
    """The client the hooks built and the voter that casts every vote of a run through it."""

    client: Any
    cast: CastVote


def no_credentials(exc: MissingCredentials) -> pytest.UsageError:
    """One usage error for credentials the SDK cannot find or the gate refuses; never the secret itself."""
    if isinstance(exc, BadCredentials):
        return pytest.UsageError(f"swarmgate: {exc}")
    why = Redactor.from_env(os.environ)(str(exc))
    return pytest.UsageError(
        f"swarmgate: no Anthropic credentials ({why}): set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN, "
        "or an anthropic profile), or supply a client with the pytest_swarmgate_make_client hook"
    )


def hook_voter(config: pytest.Config, settings: GateSettings) -> VoterChoice:
    """The client and voter the make_client and make_voter hooks return (the built-in ones are trylast)."""
    try:
        client = config.hook.pytest_swarmgate_make_client(config=config, settings=settings)
        cast = config.hook.pytest_swarmgate_make_voter(config=config, settings=settings, client=client)
    except MissingCredentials as exc:
        raise no_credentials(exc) from None
    return VoterChoice(client, cast)


def execute(
    config: pytest.Config,
    settings: GateSettings,
    plan: Plan,
    voter: VoterChoice | None = None,
    stats: ReviewStats | None = None,
    on_progress: OnProgress | None = None,
) -> RunResult:
    """Cast every vote of the plan and judge every section (the panel is already settled).

    `voter`: the client and voter to use, closed when the run ends; by default the hooks' (`hook_voter`).
    `stats`, when given, is live during the run (calls in flight, retries) for a progress line.
    A run-wide fault (a rejected key, an unknown model...) stops the calls: the result's
    `stopped` says why, once.
    """
    panel = settings.panel
    if not plan.sections:
        return RunResult(
            plan.source,
            plan.diff_sha256,
            tuple(panel),
            settings.gate,
            (),
            plan.not_reviewed,
            held=plan.held,
            released=plan.released,
        )
    problem = credential_problem(os.environ)
    if problem:
        # Before any call: sent as a header, the key would come back quoted in every error.
        raise pytest.UsageError(f"swarmgate: {problem}")
    cache, cache_off = session_cache(config, settings)
    stats = stats if stats is not None else ReviewStats()
    planned = planned_endpoint(config)
    policy = policy_key(settings)
    aggregation = settings.aggregation
    if (
        voter is None
        and planned is not None
        and all_cached(cache, plan.sections, panel, planned, BUILTIN_CASTER, policy, aggregation)
    ):
        choice = VoterChoice(None, CacheServes())  # no client: the SDK is not even imported
    else:
        choice = voter if voter is not None else hook_voter(config, settings)
    client, cast = choice.client, choice.cast
    redact = Redactor.from_env(os.environ, client)

    def on_section(result: SectionResult) -> None:
        config.hook.pytest_swarmgate_section_result(config=config, result=redact.section_result(result))

    control = RunControl(getattr(cast, "pacer", None), deadline=run_deadline(config, settings), on_progress=on_progress)
    try:
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
                    endpoint=planned or endpoint(client),
                    on_section=on_section,
                    prewarm=getattr(cast, "prewarm", None) if settings.prewarm != "off" else None,
                    prewarm_min_chars=prewarm_min_chars(settings) or 0,
                    stats=stats,
                    control=control,
                    policy=policy,
                    aggregation=aggregation,
                    synthesize=getattr(cast, "synthesize", None),
                ),
            )
        )
    except MissingCredentials as exc:
        raise no_credentials(exc) from None
    notes = [*plan.notes, *stats.notes, *filter(None, [cache.note() if cache else None, cache_off])]
    run = RunResult(
        source=plan.source,
        diff_sha256=plan.diff_sha256,
        panel=tuple(panel),
        gate=settings.gate,
        results=tuple(results),
        not_reviewed=plan.not_reviewed,
        wall_time_s=time.monotonic() - start,
        prewarm_calls=stats.prewarm_calls,
        prewarm_usage=stats.prewarm_usage,
        notes=tuple(notes),
        held=plan.held,
        released=plan.released,
        stopped=control.result(),
        policy=settings.policy,
    )
    # Every text that came from the HTTP layer, the SDK, a server or a custom voter, once more.
    return redact.run(run)


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
