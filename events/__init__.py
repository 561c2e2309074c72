"""The asynchronous path: CloudEvents codec and contract, Kafka consumer and ingress, claim-check payloads."""
