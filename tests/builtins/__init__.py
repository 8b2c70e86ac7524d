"""The built-in plugins (the repository's plugins/ folder, installed as mission_control.builtins)."""
