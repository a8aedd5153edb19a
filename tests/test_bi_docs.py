"""docs/BI.md is the dashboards' manual: every SQL query in it runs against the warehouse and returns
rows, and every view and column it documents exists."""

import re
from pathlib import Path

import pytest

from qtickets_assets.assets.views import CONTRACT

BI = (Path(__file__).resolve().parents[1] / "docs" / "BI.md").read_text(encoding="utf-8")
QUERIES = re.findall(r"```sql\n(.*?)```", BI, re.S)


def test_the_guide_has_the_usual_charts():
    assert len(QUERIES) >= 10
    for view in ("v_sales_14d", "v_sales_latest", "v_show_occupancy", "v_sales_pace"):
        assert any(view in q for q in QUERIES), view


@pytest.mark.slow
@pytest.mark.parametrize("sql", QUERIES, ids=[f"query{i + 1}" for i in range(len(QUERIES))])
def test_every_query_in_the_guide_returns_rows(bi_warehouse, sql):
    with bi_warehouse.get_client() as client:
        result = client.query(sql)
    assert result.result_rows, f"no rows:\n{sql}"


@pytest.mark.slow
def test_every_documented_view_column_exists_and_every_view_column_is_documented(bi_warehouse):
    with bi_warehouse.get_client() as client:
        for view, contract in CONTRACT.items():
            section = BI.split(f"### `{view}`", 1)[1].split("\n### ", 1)[0]
            documented = set()
            for row in re.findall(r"^\| (`[^|]*`) \|", section, re.M):
                documented |= set(re.findall(r"`(\w+)`", row))
            columns = [r[0] for r in client.query(f"DESCRIBE TABLE {view}").result_rows]
            assert set(columns) == documented, view
            assert set(contract) <= set(columns), view
