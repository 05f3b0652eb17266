"""draft: work the candidate into a new one: a plan, a dispatch, or a revision that
answers the reasons it was sent back.

The behaviour is the shared answering stage; the prompt differs by the stage's purpose.
"""

from govern.engine.stages.solo import build_answering as build

__all__ = ["build"]
