"""The exit codes of a gated session, as a contract CI can rely on (see the README's table).

    0   reviewed and passed (and the project's tests passed)
    1   a section UNSAFE, INCONCLUSIVE under on-inconclusive=fail, or HELD; or a test failed
    2-5 pytest's own: interrupted, internal error, usage error (bad options, no credentials), no tests
    75  the review could not be completed: credentials rejected, permission, unknown model,
        endpoint unreachable, credit exhausted, a rate limit outlasting --swarm-deadline, or a
        diff over a ceiling (--swarm-max-sections, --swarm-max-input-tokens, or
        --swarm-max-diff-bytes, which stops before the diff is read and writes no report).
        The JSON report's `status` says which.

75 is EX_TEMPFAIL in sysexits.h: outside pytest's 0-5, so "the API is broken" is never
read as "the code is unsafe". Standard library only.
"""

REVIEW_INCOMPLETE = 75
