"""Text in: reading inputs, prompts as the model reads them, tokens, the vocabulary, packing."""
