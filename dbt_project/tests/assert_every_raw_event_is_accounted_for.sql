-- raw = accepted + duplicates + rejected, for every arrival day.
select *
from {{ ref('fct_event_loads') }}
where events_raw <> events_accepted + events_duplicate + events_rejected
