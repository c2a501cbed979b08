"""The settings that ship with storypipe (installed as storypipe.config): pipeline.toml and themes.toml."""
