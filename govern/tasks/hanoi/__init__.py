"""Towers of Hanoi, MAKER's million-step task: the puzzle, its one-step strategy and prompt."""
