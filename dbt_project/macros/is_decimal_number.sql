{# Lago's rule for a numeric property: an optional minus, digits, an optional fraction. #}
{% macro is_decimal_number(expression) -%}
    {{ return(adapter.dispatch('is_decimal_number')(expression)) }}
{%- endmacro %}

{% macro default__is_decimal_number(expression) -%}
    coalesce(regexp_full_match({{ expression }}, '-?[0-9]+(\.[0-9]+)?'), false)
{%- endmacro %}

{% macro spark__is_decimal_number(expression) -%}
    coalesce({{ expression }} rlike '^-?[0-9]+(\\.[0-9]+)?$', false)
{%- endmacro %}
