"""Logging set-up, done once by the CLI: readable on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(level: int = logging.WARNING) -> None:
    renderer = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        # The stream is looked up at each log call, not bound now: whoever replaces
        # sys.stderr later (a test, an embedding program) keeps getting the messages.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
    )
