{#
  Schemas are named for the layer (staging, intermediate, marts), not prefixed by the target.
  On Spark, whose metastore may hold more than one warehouse (a Spark Connect server elsewhere),
  a layer's database is `<target.schema>_<layer>`: the profile's schema names the warehouse
  (METERHOUSE_SPARK_DATABASE, `spark_exchange.spark_database`), and each database keeps its tables
  under that warehouse's `<METERHOUSE_SPARK_DIR>/tables/<layer>.db/` (`spark__create_schema`).
  (dbt's sources name theirs alike, in models/staging/_sources.yml.)
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%} {{ target.schema }}
    {%- elif target.type == 'spark' -%} {{ target.schema }}_{{ custom_schema_name }}
    {%- else -%} {{ custom_schema_name }}
    {%- endif -%}
{%- endmacro %}

{# The layer of a Spark database (`meterhouse_marts`: `marts`). #}
{% macro spark_layer(schema) -%}
    {{- schema[target.schema | length + 1:] if schema.startswith(target.schema ~ '_') else schema -}}
{%- endmacro %}

{# A layer's database on Spark keeps its tables under this warehouse's Spark folder, whichever
   Spark serves it (dbt-spark's own creates it under the server's `spark.sql.warehouse.dir`). #}
{% macro spark__create_schema(relation) -%}
    {%- call statement('create_schema') -%}
        create schema if not exists {{ relation }}
        location '{{ env_var("METERHOUSE_SPARK_DIR") }}/tables/{{ spark_layer(relation.schema) }}.db'
    {%- endcall -%}
{%- endmacro %}
