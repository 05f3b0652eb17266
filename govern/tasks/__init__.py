"""Tasks: a data set plus prompts and a scorer (``gsm8k`` now; ``hanoi``, ``cournot`` later)."""
