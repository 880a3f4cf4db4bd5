"""Wire contracts: the messages other teams produce and consume."""
