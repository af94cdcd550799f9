"""iamwarden: the warden. Knows AWS, rules, state and time; never imports slack_bolt."""

__version__ = "0.1.0"
