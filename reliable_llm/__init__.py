"""reliable-llm."""
