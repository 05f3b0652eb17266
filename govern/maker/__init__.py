"""MAKER (arXiv 2511.09030): maximal decomposition into one-step subtasks, first-to-ahead-by-k
voting on each step, and red flags that discard suspicious samples."""
