{# The id of an event record, `file:line:item` (where it was read). Built only where it is shown:
   the event-level tables keep its three parts, which cost far less to write, join and sort. #}
{% macro event_record_id(alias=none) -%}
    {%- set p = (alias ~ '.') if alias else '' -%}
    {{ p }}source_file || ':' || {{ p }}line_number || ':' || {{ p }}item_index
{%- endmacro %}
