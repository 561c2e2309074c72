"""The ``classifier`` function: a small torch head over the embedder's encoder."""
