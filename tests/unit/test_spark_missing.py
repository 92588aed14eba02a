"""`--engine spark` says what is missing before anything runs (`cli.spark_missing`)."""

import importlib.util
import shutil

from dagster_project import cli


def test_without_the_spark_extra_the_message_names_the_extra_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a))
    message = cli.spark_missing()
    assert message.startswith("--engine spark: pyspark and dbt-spark are not installed")
    assert "uv sync --extra spark" in message and "meterhouse[spark]" in message


def test_without_java_the_message_says_spark_needs_java_17(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in ("pyspark", "dbt.adapters.spark") else real(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    assert cli.spark_missing() == ("--engine spark: no Java runtime found (Spark 4 needs Java 17 or later; "
                                   "set JAVA_HOME or PATH)")


def test_with_both_nothing_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in ("pyspark", "dbt.adapters.spark") else real(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name, path=None: "/usr/bin/java")
    assert cli.spark_missing() is None


def test_a_spark_connect_server_elsewhere_needs_no_java_here(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in ("pyspark", "dbt.adapters.spark") else real(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name, path=None: None)
    monkeypatch.setenv("SPARK_REMOTE", "sc://spark.internal:15002")
    assert cli.spark_missing() is None
    monkeypatch.setenv("SPARK_REMOTE", "local[2]")  # (a Connect server started here: Java again)
    assert cli.spark_missing().startswith("--engine spark: no Java runtime found")
