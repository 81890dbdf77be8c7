"""Secrets never shown: the one redactor every text from the HTTP layer, the SDK or a server
passes before it reaches a vote's error, a note, or any report or file. Pure.

A secret reaches error text in more shapes than its literal value: httpx quotes an illegal
header value with repr (`b'sk-...\\n'`), a server may echo it JSON-escaped or percent-encoded,
and a copy-pasted key carries a trailing newline. The redactor knows each secret's raw,
stripped, repr and escaped (JSON, percent) forms and replaces all of them, longest first.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

from .model import Finding, RunResult, SectionResult, Synthesis, Vote

REDACTED = "[redacted]"
# The credentials the SDK reads, and the vote cache's own secret.
SECRET_ENVS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "SWARMGATE_CACHE_KEY")
CREDENTIAL_ENVS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
# URLs whose userinfo is a secret too: `http://user:password@proxy` (httpx sends it as basic auth).
URL_ENVS = ("ANTHROPIC_BASE_URL", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


def url_secrets(url: str | None) -> list[str]:
    """The password of a URL's userinfo, as written and decoded, and `user:password` whole."""
    if not url or "@" not in url:
        return []
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:  # not a URL at all (a bad port): nothing to find in it
        return []
    if not password:
        return []
    return [password, unquote(password), f"{parts.username or ''}:{password}"]


def secret_forms(secret: str) -> set[str]:
    """Every shape `secret` can take in error text: raw, stripped, repr, JSON and percent escaped."""
    found: set[str] = set()
    for value in {secret, secret.strip()}:
        if not value:
            continue
        found |= {
            value,
            repr(value)[1:-1],
            repr(value.encode("utf-8", "surrogateescape"))[2:-1],
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
            quote(value, safe=""),
            quote(value),
            quote_plus(value),
        }
    return {form for form in found if form}


class Redactor:
    """Replaces every form of the given secrets with `[redacted]`."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        forms = {form for secret in secrets if isinstance(secret, str) for form in secret_forms(secret)}
        # Longest first, so a form that contains another is replaced whole.
        self._forms = sorted(forms, key=lambda f: (-len(f), f))

    @classmethod
    def from_env(cls, env: Mapping[str, str], client: Any = None) -> Redactor:
        """The job's secrets from the environment, plus whatever credentials `client` holds."""
        held = (getattr(client, "api_key", None), getattr(client, "auth_token", None)) if client is not None else ()
        urls = [secret for name in URL_ENVS for secret in url_secrets(env.get(name))]
        return cls([*(env.get(name) for name in SECRET_ENVS), *urls, *held])

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self(text)

    def vote(self, vote: Vote) -> Vote:
        """The vote with every text field redacted."""
        return dataclasses.replace(
            vote,
            error=self.optional(vote.error),
            summary=self(vote.summary),
            findings=tuple(self.finding(f) for f in vote.findings),
            settings=dataclasses.replace(vote.settings, notes=tuple(self(n) for n in vote.settings.notes)),
        )

    def finding(self, finding: Finding) -> Finding:
        return dataclasses.replace(
            finding,
            path=self(finding.path),
            category=self(finding.category),
            title=self(finding.title),
            rationale=self(finding.rationale),
        )

    def synthesis(self, synthesis: Synthesis) -> Synthesis:
        """The aggregator's review with every text field redacted: it is model output, like a vote."""
        return dataclasses.replace(
            synthesis,
            title=self(synthesis.title),
            explanation=self(synthesis.explanation),
            findings=tuple(self.finding(f) for f in synthesis.findings),
            disagreement=self(synthesis.disagreement),
            fix=self(synthesis.fix),
            patch=self(synthesis.patch),
            error=self.optional(synthesis.error),
        )

    def section_result(self, result: SectionResult) -> SectionResult:
        synthesis = self.synthesis(result.synthesis) if result.synthesis is not None else None
        return dataclasses.replace(result, votes=tuple(self.vote(v) for v in result.votes), synthesis=synthesis)

    def run(self, run: RunResult) -> RunResult:
        """The run with the text of every vote and note redacted (paths and diff text are the PR's own)."""
        results = tuple(self.section_result(r) for r in run.results)
        return dataclasses.replace(run, results=results, notes=tuple(self(n) for n in run.notes))


def credential_problem(env: Mapping[str, str]) -> str | None:
    """Why a credential in the environment cannot be sent as a header, without showing it, else None.

    A trailing newline (a copy-paste slip in a CI secret) would make every call fail with an
    HTTP-layer error that quotes the key; refusing it up front keeps it out of every report.
    """
    for name in CREDENTIAL_ENVS:
        value = env.get(name)
        # Non-ASCII too: an HTTP header cannot carry it, and no Anthropic credential holds any.
        if value and any(c.isspace() or not c.isprintable() or not c.isascii() for c in value):
            return (
                f"{name} holds whitespace, a control character or a non-ASCII character (a trailing newline "
                "from a copy-paste?); fix the secret (its value is not shown)"
            )
    return None
