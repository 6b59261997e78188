"""Brings a database to the newest schema: ``python -m orderengine.store.migrate``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from orderengine.settings import Settings
from orderengine.store.database import create_database_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    engine = create_database_engine(url)
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()


def main() -> None:
    url = Settings().database_url
    upgrade(url)
    print("database is at the newest schema")


if __name__ == "__main__":
    main()
