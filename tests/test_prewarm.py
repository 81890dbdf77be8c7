"""Prewarming: one output-less call writes a large section into the prompt cache, then the voters read it."""

from __future__ import annotations

import pytest
from conftest import CLEAN_DIFF, write_diff

from pytest_swarmgate.testing import Reply, Script


def large_diff(lines: int = 400) -> str:
    body = "".join(f"+ROW_{i} = {i}  # a constant of the lookup table\n" for i in range(lines))
    return (
        "diff --git a/app/table.py b/app/table.py\nnew file mode 100644\nindex 0000000..1111111\n"
        f"--- /dev/null\n+++ b/app/table.py\n@@ -0,0 +1,{lines} @@\n{body}"
    )


def run(pytester: pytest.Pytester, diff: str, *args: str) -> pytest.RunResult:
    path = write_diff(pytester.path, diff)
    return pytester.runpytest("--swarm-review", f"--swarm-diff={path}", "--swarm-no-cache", *args)


def test_a_large_section_is_prewarmed_once_per_model_and_voters_read_the_cache(pytester, serve) -> None:
    server = serve(latency=0.2)
    result = run(pytester, large_diff(), "--swarm-models=m-a,m-a,m-b,m-b,m-b")
    assert result.ret == 0
    warm = [r for r in server.requests if r.reply == "prewarm"]
    assert sorted(r.body["model"] for r in warm) == ["m-a", "m-b"]
    assert all(r.body["max_tokens"] == 0 and "voter:" not in str(r.body["messages"]) for r in warm)
    votes = [r for r in server.calls() if r.voter]
    assert len(votes) == 5
    # Every vote went out after its model's prewarm call had answered.
    for vote in votes:
        [w] = [w for w in warm if w.body["model"] == vote.body["model"]]
        assert vote.time >= w.time + 0.2
    result.stdout.fnmatch_lines(["*totals: 1 section x 5 voters, 7 calls*cache_write=*"])


def test_without_prewarm_voters_sent_together_all_write_the_cache(pytester, serve) -> None:
    server = serve(latency=0.2)
    result = run(pytester, large_diff(), "--swarm-prewarm=off")
    assert result.ret == 0
    assert not [r for r in server.requests if r.reply == "prewarm"]
    assert len(server.calls()) == 5


def test_small_sections_are_not_prewarmed_in_auto_mode_but_are_when_on(pytester, serve) -> None:
    server = serve()
    assert run(pytester, CLEAN_DIFF).ret == 0
    assert not [r for r in server.requests if r.reply == "prewarm"]
    assert run(pytester, CLEAN_DIFF, "--swarm-prewarm=on").ret == 0
    assert len([r for r in server.requests if r.reply == "prewarm"]) == 1


def test_a_failed_prewarm_is_a_note_and_the_votes_still_go_out(pytester, serve) -> None:
    script = Script(default=Reply.verdict("SAFE")).on_call(
        lambda ctx: Reply.status(500, "api_error", "cache busy") if ctx.body.get("max_tokens") == 0 else None
    )
    serve(script)
    result = run(pytester, large_diff(), "--swarm-max-retries=0", "--swarm-json=r.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*note: prewarm of app/table.py for claude-sonnet-5-5 failed: *cache busy*"])
    assert "cache busy" in (pytester.path / "r.json").read_text()
