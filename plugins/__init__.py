"""Built-in plugins of Mission Control; each module reads exactly like a third-party plugin."""
