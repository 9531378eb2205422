"""``tidegate gateway``: run the gateway alone in front of existing workers."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings, SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tidegate gateway", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML settings file")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument(
        "--workers", help="comma-separated worker base URLs; models come from their /v1/models"
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    return parser


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags given on the command line, shaped like the settings."""
    server = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("log_level", args.log_level))
        if v is not None
    }
    overrides: dict[str, Any] = {}
    if server:
        overrides["server"] = server
    if args.workers is not None:
        overrides["discovery"] = {"workers": args.workers}
    return overrides


def serve(settings: GatewaySettings) -> None:
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        loop="uvloop",
        http="httptools",
        log_level=settings.server.log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=round(settings.server.graceful_shutdown_s),
    )


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, overrides_from(args))
    except SettingsError as exc:
        print(f"tidegate gateway: {exc}", file=sys.stderr)
        return 2
    if not settings.discovery.configured:
        print(
            "tidegate gateway: no workers given "
            "(--workers, discovery.workers or discovery.kubernetes)",
            file=sys.stderr,
        )
        return 2
    serve(settings)
    return 0
