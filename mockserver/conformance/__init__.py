"""The conformance suite: holds any deployment, the mock or a real one, to the contract."""
