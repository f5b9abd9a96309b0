"""Training pipeline for the sentiment model; its exported SavedModel is the only contract."""
