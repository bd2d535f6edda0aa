"""What a config alone says: its values, parameter counts, the KV cache and recurrent state, the architecture."""
