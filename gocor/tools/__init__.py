"""Tools: benchmark, cost accounting, the notebook reproduction, the command line."""
