"""One small module per command: parse options, call one core function, render its result."""
