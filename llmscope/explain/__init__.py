"""Views that explain a prediction (``why``): above forward and decoding, as they use both (a generation to
explain, the forward pass to attribute)."""
