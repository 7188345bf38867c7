"""The `countersign` command: serve, migrate, token, version."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from countersign import __version__
from countersign.config import AuthMode, Settings

log = logging.getLogger("countersign")


def _settings() -> Settings:
    """The configuration, or a clean one-line exit (no traceback) saying what is wrong with it."""
    try:
        settings = Settings()
    except ValidationError as exc:
        # pydantic's messages already name the variable; one line, without pydantic's framing.
        reasons = "; ".join(
            str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
        )
        sys.exit(f"countersign: invalid configuration: {reasons}")
    except ValueError as exc:
        sys.exit(f"countersign: invalid configuration: {exc}")
    refusals = settings.production_refusals()
    if refusals:
        sys.exit(
            "countersign: refusing to start with COUNTERSIGN_ENV=production: "
            + "; ".join(refusals)
        )
    return settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> None:
    # Configuration first: a refusal is one line, before any import logs anything.
    settings = _settings()

    import uvicorn

    from countersign import bootstrap
    from countersign.app import create_app

    if settings.auth_mode is AuthMode.dev and not _is_loopback(args.host):
        if not args.allow_dev_auth_on_network:
            sys.exit(
                f"countersign: refusing to serve dev-mode auth on {args.host}: anyone who can reach it can "
                "mint admin tokens. Bind to 127.0.0.1, set COUNTERSIGN_AUTH_MODE=oidc, or pass "
                "--allow-dev-auth-on-network if you really mean it."
            )
        log.warning(
            "DEV AUTH IS EXPOSED ON %s: tokens are self-issued; never do this in production",
            args.host,
        )
    settings = bootstrap.prepare_embedded(settings, migrate_schema=not args.no_migrate)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        # uvicorn's loggers go through the root handler, whose filter keeps values out of logs.
        log_config=None,
    )


def cmd_migrate(args: argparse.Namespace) -> None:
    from countersign import migrate

    settings = _settings()
    migrate.upgrade(settings.database_url, args.revision)
    log.info("database migrated to %s", args.revision)


def cmd_policy(args: argparse.Namespace) -> None:
    import asyncio
    from pathlib import Path

    from pydantic import ValidationError

    from countersign.errors import AppError
    from countersign.policies import files
    from countersign.wiring import one_transaction

    settings = _settings()
    text = (
        Path(args.file).read_text(encoding="utf-8")
        if args.policy_command == "apply"
        else ""
    )

    async def run() -> str:
        async with one_transaction(settings) as session:
            if args.policy_command == "apply":
                data = files.parse(text)
                applied = await files.apply(
                    session, data, actor=args.actor, activate=not args.draft
                )
                state = "changed" if applied.changed else "unchanged"
                return f"{applied.policy_key} version {applied.version} {applied.status} ({state})\n"
            return await files.export(
                session, policy_key=args.key, version=args.version
            )

    try:
        sys.stdout.write(asyncio.run(run()))
    except (AppError, ValidationError, OSError) as exc:
        problems = "".join(
            f"\n  {p.pointer}: {p.detail}" for p in getattr(exc, "problems", [])
        )
        sys.exit(f"countersign: {exc}{problems}")


def cmd_token(args: argparse.Namespace) -> None:
    from countersign.identity.dev import DevIssuer

    settings = _settings()
    if settings.auth_mode is not AuthMode.dev:
        sys.exit(
            "countersign: `token` mints dev-mode tokens only; get real tokens from your identity provider"
        )
    issued = DevIssuer(settings).issue(
        args.sub, roles=args.role or [], azp=args.azp, ttl_seconds=args.ttl
    )
    sys.stdout.write(issued.access_token + "\n")


def cmd_worker(args: argparse.Namespace) -> None:
    settings = _settings()
    if not settings.redis_url:
        sys.exit(
            "countersign: `worker` needs COUNTERSIGN_REDIS_URL; without Redis, `serve` runs the worker in-process"
        )
    from countersign.worker.settings import check_health, run

    if args.check:
        sys.exit(check_health())
    # Not arq's run_worker: that one exits for good when Redis restarts.
    run()


def cmd_version(_: argparse.Namespace) -> None:
    sys.stdout.write(__version__ + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="countersign", description="Multi-stage approval engine service."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser(
        "serve", help="run the API (and, without Redis, the in-process worker)"
    )
    serve.add_argument(
        "--host", default=os.environ.get("COUNTERSIGN_HOST", "127.0.0.1")
    )
    serve.add_argument(
        "--port", type=int, default=int(os.environ.get("COUNTERSIGN_PORT", "8000"))
    )
    serve.add_argument(
        "--no-migrate", action="store_true", help="do not apply migrations at start"
    )
    serve.add_argument(
        "--allow-dev-auth-on-network",
        action="store_true",
        help="serve dev-mode auth on a non-loopback address (prints a loud warning)",
    )
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--revision", default="head")
    migrate.set_defaults(func=cmd_migrate)

    policy = sub.add_parser("policy", help="apply or export policies as YAML files")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    apply = policy_sub.add_parser(
        "apply", help="create or version a policy from a file and activate it"
    )
    apply.add_argument(
        "-f", "--file", required=True, help="policy YAML (the PolicyIn body)"
    )
    apply.add_argument(
        "--draft", action="store_true", help="store the version but do not activate it"
    )
    apply.add_argument(
        "--actor", default="system:cli", help="recorded in the audit trail"
    )
    apply.set_defaults(func=cmd_policy)
    export = policy_sub.add_parser("export", help="print a policy version as YAML")
    export.add_argument("key", help="policy_key")
    export.add_argument(
        "--version", type=int, help="default: the active version, else the newest"
    )
    export.set_defaults(func=cmd_policy)

    token = sub.add_parser("token", help="dev mode: print a token this service accepts")
    token.add_argument(
        "--sub", required=True, help="principal id (also preferred_username)"
    )
    token.add_argument("--role", action="append", help="realm role; repeat for several")
    token.add_argument("--azp", help="client id (the caller)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.set_defaults(func=cmd_token)

    worker = sub.add_parser(
        "worker", help="run the arq worker (needs COUNTERSIGN_REDIS_URL)"
    )
    worker.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a worker reported healthy recently",
    )
    worker.set_defaults(func=cmd_worker)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=os.environ.get("COUNTERSIGN_LOG_LEVEL", "INFO"),
        format="%(levelname)s %(name)s: %(message)s",
    )
    from countersign.kit import logsafe

    # No context value, secret or credential in a log line, whoever logs it (arq, uvicorn, us).
    logsafe.install()
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
