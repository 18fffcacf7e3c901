"""The conformance suite: contract clauses checked against the mock or any deployment."""
