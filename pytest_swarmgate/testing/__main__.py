"""`python -m pytest_swarmgate.testing`: run the stub Anthropic server until Ctrl-C.

    python -m pytest_swarmgate.testing [--port 8765] [--latency 0.2]
        [--sampling accept|reject|legacy] [--script script.json] [--unsafe GLOB ...] [--unsafe-if TEXT ...]
        [--answer-model NAME] [--strict accept|reject] [--plain-text]
        [--require-key KEY] [--revoke-key-after N] [--models LIST]
        [--rate-limit RPS] [--token-rate TPS] [--log-limit N]

`--unsafe GLOB` makes every voter answer UNSAFE (with a finding at the first added line)
on sections whose id or path matches GLOB; `--unsafe-if TEXT` makes every voter whose prompt
holds TEXT answer UNSAFE (what reached which voter, e.g. the context). Both take precedence over
the script's rules.
The script format is documented in `pytest_swarmgate.testing.script`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checks import SAMPLING_MODES, STRICT_MODES
from .ratelimit import RateLimit
from .replies import Reply
from .script import Script, ScriptError
from .server import DEFAULT_LOG_LIMIT, OPTIONAL_ROUTES, StubServer

# The key the env file gives the SDK: the stub takes any key (unless --require-key), and this one
# reads as what it is. The help text and the file are made from the same function.
ENV_FILE_KEY = "stub-not-a-secret"


def env_exports(url: str) -> str:
    """The line the stub prints and writes to `--env-file`: what `. FILE` sets."""
    return f"export ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY={ENV_FILE_KEY}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_swarmgate.testing",
        description="Serve an Anthropic-compatible stub API on 127.0.0.1 for pytest-swarmgate",
    )
    parser.add_argument("--port", type=int, default=8765, help="Port to listen on (0 = any free port)")
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        help=f"Once listening, write the line `{env_exports('http://127.0.0.1:PORT')}` to FILE (for `. FILE`),"
        " atomically; removed again when the stub stops",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds every request waits before its reply")
    parser.add_argument(
        "--sampling", choices=SAMPLING_MODES, default="accept", help="How temperature/top_p/top_k are treated"
    )
    parser.add_argument("--script", metavar="FILE", help="JSON script of replies per section and voter")
    parser.add_argument(
        "--unsafe", metavar="GLOB", nargs="+", action="extend", default=[], help="Sections every voter calls UNSAFE"
    )
    parser.add_argument(
        "--unsafe-if",
        metavar="TEXT",
        nargs="+",
        action="extend",
        default=[],
        help="Every voter whose prompt holds TEXT answers UNSAFE",
    )
    parser.add_argument("--require-key", metavar="KEY", help="Answer 401 unless requests carry this API key")
    parser.add_argument(
        "--revoke-key-after", type=int, metavar="N", help="Answer 401 to every message call after the first N"
    )
    parser.add_argument("--models", metavar="LIST", help="Comma list of the models that exist (default: any)")
    parser.add_argument(
        "--routes",
        metavar="LIST",
        default=",".join(OPTIONAL_ROUTES),
        help="Comma list of the optional routes served, of model, models, count_tokens (default: all;"
        " empty: a gateway that serves /v1/messages only)",
    )
    parser.add_argument(
        "--rate-limit", type=float, metavar="RPS", help="Requests per second; more are answered 429 with retry-after"
    )
    parser.add_argument("--token-rate", type=float, metavar="TPS", help="Input tokens per second (with --rate-limit)")
    parser.add_argument(
        "--log-limit", type=int, default=DEFAULT_LOG_LIMIT, metavar="N", help="Requests the request log keeps"
    )
    parser.add_argument(
        "--batch-polls",
        type=int,
        default=1,
        metavar="N",
        help="Batch status polls that report in_progress before ended",
    )
    parser.add_argument("--answer-model", metavar="NAME", help="Name this model in every reply, whatever was requested")
    parser.add_argument(
        "--strict", choices=STRICT_MODES, default="accept", help="Whether a tool sent with strict: true is accepted"
    )
    parser.add_argument("--plain-text", action="store_true", help="Answer every call in plain text, with no tool call")
    return parser


def build_script(script_file: str | None, unsafe: Sequence[str], unsafe_if: Sequence[str] = ()) -> Script:
    """The script file (or all SAFE), with an UNSAFE rule per `--unsafe` glob and `--unsafe-if` text in front."""
    base = Script.load(script_file) if script_file else Script()
    script = Script(base.default)
    for glob in unsafe:
        script.on(glob, reply=Reply.verdict("UNSAFE"))
    for text in unsafe_if:
        script.on_prompt(text, reply=Reply.verdict("UNSAFE"))
    return script.on_call(base.reply_for)


def _raise_interrupt(signum: int, frame: Any) -> None:
    """SIGINT, SIGTERM and SIGHUP end the server quietly, its env file removed (SIGINT even when
    the shell ignored it for a background job)."""
    raise KeyboardInterrupt


class EnvFile:
    """`--env-file`: written whole or not at all, and removed when the stub stops.

    A shell waiting for the file must not source half a line, so the line goes to a temporary
    file in the same directory first, then `os.replace` puts it in place. A stopped stub leaves
    no file behind that points at its dead port (the next `until [ -s FILE ]` would take it);
    a file another stub has since written in its place is that one's, and stays.
    (The stub uses the standard library only, so not the package's own writer.)
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.text: str | None = None

    def write(self, line: str) -> None:
        text = line + "\n"
        self.partial.write_text(text, encoding="utf-8")
        os.replace(self.partial, self.path)
        self.text = text

    def remove(self) -> None:
        self.partial.unlink(missing_ok=True)
        if self.text is None:
            return
        try:
            if self.path.read_text(encoding="utf-8") == self.text:
                self.path.unlink()
        except FileNotFoundError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        script = build_script(args.script, args.unsafe, args.unsafe_if)
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        rate_limit = RateLimit(args.rate_limit, args.token_rate) if args.rate_limit is not None else None
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = StubServer(
        script,
        models=args.models.split(",") if args.models else None,
        routes=[r for r in args.routes.split(",") if r],
        revoke_key_after=args.revoke_key_after,
        rate_limit=rate_limit,
        log_limit=args.log_limit,
        port=args.port,
        latency=args.latency,
        sampling=args.sampling,
        require_key=args.require_key,
        batch_polls_before_done=args.batch_polls,
        answer_model=args.answer_model,
        strict=args.strict,
        plain_text=args.plain_text,
    )
    # Handlers first: a caller may send SIGTERM the instant the ready line appears, and the
    # default action would kill the process without stopping the server cleanly.
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # no SIGHUP on Windows
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _raise_interrupt)
    env_file = EnvFile(args.env_file) if args.env_file else None
    try:
        try:
            server.start()
        except OSError as exc:
            print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        exports = env_exports(server.url)
        if env_file is not None:
            env_file.write(exports)
        print(
            f"stub Anthropic server on {server.url} ({exports}); stop it with Ctrl-C or kill {os.getpid()}", flush=True
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if env_file is not None:
            env_file.remove()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
