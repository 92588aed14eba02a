"""`meterhouse deliver-webhooks`: post the outbox's due webhooks, signed, and record each attempt.

Delivery is operational, not billing: it reads the clock (or the `now` it is given), and what it
records (`state.webhook_outbox`'s delivery columns, `state.webhook_attempts`) is never published.
Each due webhook (pending, or retrying with its time come) is posted once per call, with Lago's
headers (`publish/webhooks.headers`); a 2xx answer is a success; any other answer, a redirect
included (Lago's client does not follow them), or no answer in `timeout` seconds, is a failure,
retried after Lago's wait (`publish/webhooks.after_attempt`) until `attempts` were made.
"""

from __future__ import annotations

import datetime as dt
import http.client
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable

from dagster_project.publish import webhooks
from dagster_project.store import webhook_outbox as store
from dagster_project.store.tables import table_exists

HMAC_KEY_VARIABLE = "METERHOUSE_WEBHOOK_HMAC_KEY"
STATUSES = ("pending", "succeeded", "retrying", "failed")  # the order the console lists them in


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # the 3xx answer becomes an HTTPError: a failed attempt


_OPENER = urllib.request.build_opener(_NoRedirects)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POST `body`; (HTTP status, error text): error None on a 2xx answer."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, None
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        return None, str(getattr(exc, "reason", exc))


def deliver(con, key: str, now: dt.datetime, attempts: int = webhooks.DEFAULT_ATTEMPTS, timeout: float = 30.0,
            send: Callable[[str, bytes, dict[str, str], float], tuple[int | None, str | None]] = post) -> dict[str, int]:
    """Post every webhook due at `now` (naive UTC) once; the statuses of this call's attempts and
    of the whole outbox afterwards."""
    if not table_exists(con, "state", "webhook_outbox"):
        return {"attempted": 0}
    outcomes: Counter = Counter()
    for webhook in store.due(con, now):
        body = webhook["body"].encode("utf-8")
        status, error = send(webhook["webhook_url"], body, webhooks.headers(key, body, webhook["webhook_id"]), timeout)
        outcome = webhooks.after_attempt(webhook["attempts"], error is None, now, attempts)
        store.record_attempt(con, webhook["webhook_id"], now, status, error, outcome.status, outcome.attempts,
                             outcome.next_attempt_at)
        outcomes[outcome.status] += 1
    outbox = store.counts(con)
    return {"attempted": sum(outcomes.values()), **{f"attempt_{k}": outcomes[k] for k in STATUSES if outcomes[k]},
            **{f"outbox_{k}": outbox[k] for k in STATUSES if outbox.get(k)}}
