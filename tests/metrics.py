"""Prometheus text as Prometheus reads it, for the tests that scrape `/metrics`."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

# (metric, its labels) -> value, for every sample of a scrape.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str) -> float:
    """The sum of a metric's samples over all their labels."""
    return sum(found for (sample, _), found in samples.items() if sample == name)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 for one not exposed yet (a counter no request has touched)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
