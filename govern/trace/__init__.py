"""The event tracer: a run's events (``events``), their cascades, elites and extremes
(``cascades``, ``elites``, ``analyze``), power-law fits done as Clauset, Shalizi & Newman
did them (``powerlaw``), an offline agent society to measure them on (``society``), and
Deficit-Triggered Integration (``dti``), which says when parallel work must be integrated."""
