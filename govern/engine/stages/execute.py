"""execute: carry out the candidate and state the final answer.

The behaviour is the shared answering stage; the prompt differs by the stage's purpose.
"""

from govern.engine.stages.solo import build_answering as build

__all__ = ["build"]
