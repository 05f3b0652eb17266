"""What a run's events say while it runs: Deficit-Triggered Integration (``dti``) watches the
coordination and merges of decomposed or parallel work and says when their outputs must be
integrated."""
