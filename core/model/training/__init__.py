"""Personal models: the photos a user trains on, and (later) the training itself."""
