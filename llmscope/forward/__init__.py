"""One forward pass looked into: log-probabilities and scores, layers, attention, experts, embeddings, the anatomy map."""
