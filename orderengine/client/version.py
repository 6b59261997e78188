"""The engine's version, the one number of everything this repository
ships: both distributions (each pyproject.toml reads it from here), the
CLI's ``--version``, the gateway's OpenAPI document, make run's banner and
every process's ``/metrics`` (orderengine_build_info). CHANGELOG.md says
what each version changed."""

VERSION = "1.0.0"
