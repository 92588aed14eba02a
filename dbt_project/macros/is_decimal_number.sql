{# Lago's rule for a numeric property: an optional minus, digits, an optional fraction. #}
{% macro is_decimal_number(expression) -%}
    coalesce(regexp_full_match({{ expression }}, '-?[0-9]+(\.[0-9]+)?'), false)
{%- endmacro %}
