"""Sentiment inference service: a FastAPI app serving a TensorFlow SavedModel."""
