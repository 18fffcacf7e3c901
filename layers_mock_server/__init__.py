"""layers-mock: an offline, deterministic simulator of the Layers Partner API influencer flow."""

__version__ = "0.1.0"
