"""The ``switchboard`` command: up, serve, migrate, codegen."""

from __future__ import annotations

import argparse
import sys

from switchboard.shared.config import SERVICES, ConfigError
from switchboard.shared.logs import configure_logging
from switchboard.supervisor import MAX_REPLICAS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Switchboard control plane")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the whole stack on this machine (embedded PostgreSQL unless DATABASE_URL)")
    up.add_argument("--replicas", type=_positive, default=1, help="processes per gRPC service (default 1)")

    serve = commands.add_parser("serve", help="run one service (what compose runs)")
    serve.add_argument("service", choices=[*SERVICES, "edge"])
    serve.add_argument("--port", type=int, default=None, help="override the service's configured port")
    serve.add_argument("--metrics-port", type=int, default=None, help="override the Prometheus port (gRPC services)")
    # Set by `up`: the child stops when that process is gone, so nothing outlives a killed `up`.
    serve.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    # Set by `up`: a pipe to say "serving" on, so that `up` knows its own child serves (a health
    # probe on the port could be answered by another process).
    serve.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)

    health = commands.add_parser("health", help="exit 0 when the local process of a service is serving")
    health.add_argument("service", choices=[*SERVICES, "edge"])
    health.add_argument("--host", default="127.0.0.1")
    health.add_argument("--port", type=int, default=None, help="default: the service's configured port")

    commands.add_parser(
        "migrate", help="apply pending migrations of every service, each to its database (safe to run concurrently)"
    )
    commands.add_parser("codegen", help="regenerate switchboard/*/v1 from protos/ (development)")
    commands.add_parser("policies", help="print the authorization matrix (every RPC × kind of caller)")
    return parser


def _positive(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"expected a number from 1 to {MAX_REPLICAS}")
    return value


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "codegen":
        from switchboard.codegen import main as codegen

        return codegen()
    if args.command == "policies":
        from switchboard.policies import main as policies

        return policies()
    from switchboard.catalog import load_configuration

    try:
        configuration = load_configuration()
    except ConfigError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    settings = configuration.platform
    process_name = args.service if args.command == "serve" else args.command
    configure_logging(settings.log_level, process=process_name)

    from switchboard.shared.process import run

    try:
        if args.command == "up":
            from switchboard.supervisor import up

            return run(up(settings, args.replicas))
        if args.command == "health":
            from switchboard.healthcheck import is_serving

            port = settings.port_of(args.service) if args.port is None else args.port
            serving = run(is_serving(args.service, args.host, port, timeout=2.0))
            print("SERVING" if serving else "NOT_SERVING")
            return 0 if serving else 1
        if args.command == "migrate":
            from switchboard.shared.migrate import migrate_databases

            run(migrate_databases(settings))
            return 0
        from switchboard.serve import serve_edge, serve_grpc

        if args.service == "edge":
            run(serve_edge(configuration, port=args.port, parent_pid=args.parent_pid, ready_fd=args.ready_fd))
        else:
            run(
                serve_grpc(
                    configuration,
                    args.service,
                    port=args.port,
                    metrics_port=args.metrics_port,
                    parent_pid=args.parent_pid,
                    ready_fd=args.ready_fd,
                )
            )
        return 0
    except ConfigError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
