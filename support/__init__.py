"""Rigs shared by the tests and the benchmarks: fakes of every port, the servers the tests start, random checkpoints.

Never shipped (pyproject packages only assistant, skills and hardware), and the daemon imports none of it.
"""
