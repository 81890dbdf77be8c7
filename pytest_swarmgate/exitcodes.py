"""The exit codes of a gated session, as a contract CI can rely on (see the README's table).

    0   reviewed and passed (and the project's tests passed)
    1   a section UNSAFE, INCONCLUSIVE under on-inconclusive=fail, or HELD; or a test failed; in a
        calibration, a fixture the gate gets wrong, or no K within the target FPR that catches anything
    2-5 pytest's own: interrupted, internal error, usage error (bad options, no credentials), no tests
    75  the review could not be completed, and trying again later may help: the endpoint
        unreachable, --swarm-deadline reached (calls cancelled), not one valid vote (every call
        timed out or failed), a diff over a ceiling
        (--swarm-max-sections, --swarm-max-input-tokens, or --swarm-max-diff-bytes, which stops
        before the diff is read and writes no report), a review planned but never run. The JSON
        report's `status.stopped` says which.
    78  the review could not be completed, and no retry will help until a person fixes the
        set-up: the key rejected, no permission, a model the endpoint does not have, a request
        the endpoint refuses for every call, the credit exhausted, an endpoint whose replies never
        hold the verdict tool call (`status.stopped.cause` "config").

75 is EX_TEMPFAIL and 78 EX_CONFIG in sysexits.h: outside pytest's 0-5, so "the API is broken"
is never read as "the code is unsafe". Standard library only.
"""

REVIEW_INCOMPLETE = 75
REVIEW_MISCONFIGURED = 78


def stopped_code(cause: str) -> int:
    """The exit code of a review stopped for `cause` (`Stopped.cause`): 78 when only a person can fix it."""
    return REVIEW_MISCONFIGURED if cause == "config" else REVIEW_INCOMPLETE
