"""propose: put a first candidate forward; brought again (after a defeat or a veto),
the agent sees its earlier motion and the reasons, and answers them.

The behaviour is the shared answering stage; the prompt differs by the stage's purpose.
"""

from govern.engine.stages.solo import build_answering as build

__all__ = ["build"]
