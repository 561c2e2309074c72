"""What every package uses and none owns: the error root, S3 access, identifiers, child processes."""
