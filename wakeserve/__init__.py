"""wakeserve: event-driven, scale-to-zero model inference. Command line and the one-machine runtime."""
