"""Compile institutions to LangGraph and run their stages."""
