-- The text of each line with a record rejected at load, for the quarantine.
select
    arrival_date,
    source_file,
    line_number,
    raw_line
from {{ source('raw', 'rejected_lines') }}
