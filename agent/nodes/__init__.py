"""The graph's nodes: analyst, run_tools, ground, respond."""
