"""Shared event-side building blocks: the error root, S3 access, CloudEvents and Kafka (issue B)."""
