"""govern: governance graphs compiled into executable multi-agent topologies."""

__version__ = "0.1.0"
