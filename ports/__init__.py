"""The interfaces the core needs from the outside world (typing.Protocol).

Every adapter of a port passes that port's contract suite in tests/contract/.
"""
