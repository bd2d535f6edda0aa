"""``python -m llmscope``."""

from llmscope.cli import main

if __name__ == "__main__":
    main()
