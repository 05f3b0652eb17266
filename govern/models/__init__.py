"""The model layer: one client interface; ``sim/...`` in-process, anything else via litellm."""
