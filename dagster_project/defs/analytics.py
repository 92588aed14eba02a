"""The revenue report asset: `<out_dir>/reports/revenue.html`, rendered from the analytics marts.

In group `outputs`, so the period-end job renders it with every run; linked from the asset's
metadata in the Dagster UI.
"""

from pathlib import Path

import dagster as dg

from dagster_project.analytics.report import collect, render
from dagster_project.publish.files import write_atomically
from dagster_project.defs.resources import MeterhouseSettings

# The dbt analytics marts the report reads (dbt_project/models/marts/analytics).
ANALYTICS_MARTS = [
    "fct_revenue_daily", "fct_revenue_monthly", "fct_gross_revenue", "fct_invoiced_usage", "fct_mrr",
    "fct_wallet_balances_daily", "fct_prepaid_credits_monthly", "fct_top_customers", "fct_usage_growth",
]
REVENUE_REPORT = dg.AssetKey(["outputs", "revenue_report"])


@dg.asset(
    key=REVENUE_REPORT,
    group_name="outputs",
    owners=["team:billing-data"],
    kinds={"html"},
    deps=[dg.AssetKey(["marts", name]) for name in ANALYTICS_MARTS],
    pool="duckdb_writer",
)
def revenue_report(settings: MeterhouseSettings) -> dg.MaterializeResult:
    """Static HTML revenue report (inline SVG charts, no script): usage revenue by model and type
    over time, gross revenue, invoiced usage, MRR, top customers, prepaid credits outstanding and
    usage growth."""
    with settings.connect() as con:
        data = collect(con)
    path = Path(settings.out_dir).resolve() / "reports" / "revenue.html"
    write_atomically(path, render(data).encode("utf-8"))
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(str(path)),
        "url": dg.MetadataValue.url(path.as_uri()),
        "through": data.through or "",
        "months": len({r["month"] for r in data.gross_revenue}),
    })
