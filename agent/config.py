"""Settings from environment variables (INSIGHT_*, OPENAI_*) and an optional TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEFAULT_HOME = Path(".insight")


class Settings(BaseSettings):
    """Runtime configuration; explicit arguments to InsightAgent win over these."""

    model_config = SettingsConfigDict(env_prefix="INSIGHT_", toml_file="insight.toml", extra="ignore")

    db: Path = Field(DEFAULT_HOME / "demo.duckdb",
                     description="analytics data (read-only): a DuckDB file or a Parquet lake directory")
    map: Path | None = Field(None, description="event map YAML to use instead of the one stored with the data")
    engine: Literal["duckdb", "spark"] = Field("duckdb", description="query engine; spark reads a Parquet lake")
    spark_remote: str | None = Field(None, description="Spark Connect URL, e.g. sc://spark-host:15002")
    spark_master: str = Field("local[2]", description="Spark master when no Spark Connect URL is set")
    state_dir: Path = Field(DEFAULT_HOME / "state", description="checkpoints, digest history, schedules")
    digest_base_url: str | None = Field(None, description="where the digest HTML files are served; Slack "
                                        "messages link to <digest_base_url>/<week>.html (no link when unset)")
    model: str = Field("gpt-4o-mini", description="chat model name for the OpenAI-compatible endpoint")
    openai_api_key: str | None = Field(None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    llm_timeout_s: float = Field(60.0, gt=0, description="per-request timeout of the chat model")
    llm_max_retries: int = Field(2, ge=0)
    memory_limit: str = Field("2GB", description="DuckDB memory_limit of the analytics connection")
    threads: int = Field(2, ge=1)
    query_timeout_s: float = Field(30.0, gt=0, description="statement timeout (interrupt) in seconds")
    row_cap: int = Field(10_000, gt=0)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    def open_warehouse(self, db: Path | None = None, event_map=None):
        """The read-only warehouse of `db` (default: this `db`) on the configured engine, read with
        `event_map`, else the event map file `map` when one is set (MapError names a bad one), else the
        map stored with the data."""
        from tools.engines import open_warehouse
        from tools.semantic.eventmap import load_map

        return open_warehouse(db or self.db, self.engine, spark_remote=self.spark_remote,
                              spark_master=self.spark_master, memory_limit=self.memory_limit,
                              threads=self.threads, timeout_s=self.query_timeout_s, row_cap=self.row_cap,
                              event_map=event_map or (load_map(self.map) if self.map else None))

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)
