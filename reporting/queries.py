"""The statistics questions, asked two ways that must always agree.

`summary_from_events` reads the day's events and counts them in Python; `summary_from_pipelines`
lets MongoDB count with aggregation pipelines. Both return a `DaySummary`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pymongo.database import Database

from app import storage

TOP_PATHS = 10


@dataclass(frozen=True)
class PathViews:
    path: str
    views: int


@dataclass(frozen=True)
class DaySummary:
    site_id: str
    date: date
    total_views: int = 0
    unique_users: int = 0
    top_paths: list[PathViews] = field(default_factory=list)


def rank_paths(views_by_path: dict[str, int], limit: int = TOP_PATHS) -> list[PathViews]:
    """The `limit` paths with most views, ties broken by path ascending."""
    ranked = sorted(views_by_path.items(), key=lambda item: (-item[1], item[0]))
    return [PathViews(path, views) for path, views in ranked[:limit]]


def summary_from_events(db: Database[Any], site_id: str, day: date) -> DaySummary:
    events_filter = storage.site_events_filter(site_id, *storage.utc_day_bounds(day))
    total = 0
    users: set[str] = set()
    views_by_path: Counter[str] = Counter()
    for event in db[storage.EVENTS].find(events_filter, {"_id": 0, "path": 1, "user_id": 1}):
        total += 1
        if event.get("user_id"):
            users.add(event["user_id"])
        if event.get("path"):
            views_by_path[event["path"]] += 1
    return DaySummary(site_id, day, total, len(users), rank_paths(views_by_path))


def summary_from_pipelines(db: Database[Any], site_id: str, day: date) -> DaySummary:
    # The local FerretDB has no $facet and its $group knows only $sum and $count, so each
    # figure is its own small pipeline, and distinct users are grouped, then counted.
    events = db[storage.EVENTS]
    events_filter = storage.site_events_filter(site_id, *storage.utc_day_bounds(day))
    total = events.count_documents(events_filter)
    users = _first_count(
        events.aggregate(
            [
                {"$match": storage.with_value(events_filter, "user_id")},
                {"$group": {"_id": "$user_id"}},
                {"$group": {"_id": None, "count": {"$sum": 1}}},
            ]
        )
    )
    top = events.aggregate(
        [
            {"$match": storage.with_value(events_filter, "path")},
            {"$group": {"_id": "$path", "views": {"$sum": 1}}},
            {"$sort": {"views": -1, "_id": 1}},
            {"$limit": TOP_PATHS},
        ]
    )
    top_paths = [PathViews(row["_id"], row["views"]) for row in top]
    return DaySummary(site_id, day, total, users, top_paths)


def _first_count(rows: Any) -> int:
    for row in rows:
        count: int = row["count"]
        return count
    return 0
